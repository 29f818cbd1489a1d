/**
 * Messages between the roles and the client: what we send (info, errors, deletions) and what we
 * accept from the client (protocol-notes §3.3).
 */
import { MsgTag } from '../protocol/mux.js';
import { ProtocolError } from '../protocol/errors.js';
import type { SessionContext } from './context.js';
import { PeerExitSignal } from './peer-exit.js';

export function sendInfo(ctx: SessionContext, text: string): void {
  ctx.writer.message(MsgTag.INFO, Buffer.from(text, 'latin1'));
}

/** A per-file error: the client prints it and ends with exit 23 (MSG_ERROR_XFER). */
export function sendTransferError(ctx: SessionContext, text: string): void {
  ctx.hadTransferError = true;
  ctx.log.warn({ err: Buffer.from(text, 'latin1').toString('utf8').trimEnd() }, 'transfer error');
  ctx.writer.message(MsgTag.ERROR_XFER, Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'latin1'));
}

export function sendWarning(ctx: SessionContext, text: string): void {
  ctx.writer.message(MsgTag.WARNING, Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'latin1'));
}

export type RoleMessageHandler = (tag: number, payload: Buffer) => boolean;

/** io_error bits a peer may report; anything else is masked off. */
const IOERR_MASK = 0x7;

/**
 * Installs the reader's message handler: common client messages handled here, role-specific ones
 * (MSG_NO_SEND, MSG_SUCCESS ...) passed to `role`, which returns false for tags it does not know.
 */
export function installMessageHandler(ctx: SessionContext, role: RoleMessageHandler): { peerIoError: () => number } {
  let peerIoError = 0;
  ctx.reader.onMessage = (tag, payload) => {
    switch (tag) {
      case MsgTag.INFO:
      case MsgTag.ERROR_XFER:
      case MsgTag.ERROR:
      case MsgTag.WARNING:
        ctx.log.info({ clientMessage: payload.toString('utf8').trimEnd(), tag }, 'client message');
        return;
      case MsgTag.NOOP:
        return;
      case MsgTag.IO_ERROR:
        if (payload.length !== 4) throw new ProtocolError('invalid MSG_IO_ERROR');
        peerIoError |= payload.readInt32LE(0) & IOERR_MASK;
        return;
      case MsgTag.ERROR_EXIT: {
        const code = payload.length >= 4 ? payload.readInt32LE(0) : 0;
        throw new PeerExitSignal(code);
      }
      default:
        if (!role(tag, payload)) throw new ProtocolError(`unexpected tag ${tag}`);
    }
  };
  return { peerIoError: () => peerIoError };
}
