/**
 * Engine entry point: one `rsync --server ...` exec request, run over any duplex byte stream.
 * The ssh layer calls this with the channel; tests may call it with pipes.
 */
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { Grant } from '../policy/grant.js';

export interface SessionIO {
  /** Bytes from the client (the channel's readable side). */
  input: Readable;
  /** Bytes to the client (the channel's writable side). */
  output: Writable;
  /** The channel's stderr (extended data). */
  stderr: Writable;
}

export interface SessionRequest {
  /** The exec command split into words (byte strings); argv[0] is rsync, argv[1] is --server. */
  argv: string[];
  grant: Grant;
  log: Logger;
  /** Aborted on shutdown deadline or connection loss. */
  signal?: AbortSignal;
}

export interface SessionResult {
  exitCode: number;
  role: 'sender' | 'receiver' | 'none';
  bytesIn: number;
  bytesOut: number;
  files?: number;
}

/** Placeholder until the engine lands: refuses with an rsync-style message. */
export async function runRsyncSession(io: SessionIO, req: SessionRequest): Promise<SessionResult> {
  void req;
  io.stderr.write('rrsyncd: the rsync engine is not available yet\n');
  return { exitCode: 4, role: 'none', bytesIn: 0, bytesOut: 0 };
}
