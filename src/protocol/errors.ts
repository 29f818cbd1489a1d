/** rsync exit codes (rsync's errcode.h values), used for the server's exit status and MSG_ERROR_EXIT. */
export const ExitCode = {
  OK: 0,
  SYNTAX: 1,
  PROTOCOL: 2,
  FILESELECT: 3,
  UNSUPPORTED: 4,
  SOCKETIO: 10,
  FILEIO: 11,
  STREAMIO: 12,
  MESSAGEIO: 13,
  IPC: 14,
  SIGNAL: 20,
  MALLOC: 22,
  PARTIAL: 23,
  VANISHED: 24,
  DEL_LIMIT: 25,
  TIMEOUT: 30,
} as const;
/** io_error bits (rsync.h IOERR_*): sent at the end of a file list and in MSG_IO_ERROR. */
export const IOERR = { GENERAL: 1, VANISHED: 2, DEL_LIMIT: 4 } as const;
/** The io_error bits a peer may report; anything else is masked off. */
export const IOERR_MASK = IOERR.GENERAL | IOERR.VANISHED | IOERR.DEL_LIMIT;


/** A fatal error that ends the session with an rsync exit code and a message for the client. */
export class RsyncError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
    this.name = 'RsyncError';
  }
}

/** The peer sent something that violates the protocol (bad length, bad index, bad flags ...). */
export class ProtocolError extends RsyncError {
  constructor(message: string, code: number = ExitCode.PROTOCOL) {
    super(message, code);
    this.name = 'ProtocolError';
  }
}

/**
 * A fatal error of the sending side while it builds its file list (a filter merge file): the
 * reference dies there with nothing of the list written, so no MSG_ERROR_EXIT goes out and the
 * client reports the closed connection (12), whatever the protocol.
 */
export class FileListAbort extends ProtocolError {}

/** The input ended before the protocol said it would. */
export class UnexpectedEofError extends RsyncError {
  constructor(message = 'connection unexpectedly closed') {
    super(message, ExitCode.STREAMIO);
    this.name = 'UnexpectedEofError';
  }
}
