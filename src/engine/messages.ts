/**
 * Messages between the roles and the client: what we send (info, errors, deletions) and what we
 * accept from the client (docs/protocol.md §3.3).
 */
import { MsgTag } from '../protocol/mux.js';
import { ExitCode, IOERR_MASK, ProtocolError } from '../protocol/errors.js';
import type { SessionContext } from './context.js';
import { PeerExitSignal } from './peer-exit.js';

/**
 * Per-file messages a session may emit. Some are produced in long synchronous loops (a file list
 * built from a hostile --files-from of millions of missing names) where nothing waits for the
 * client to read them, so without a cap they pile up in the output buffer (measured: 1 GiB for
 * 4M names). Past the cap they are counted, not sent; the exit code is unaffected.
 */
export const MAX_MESSAGES_PER_KIND = 10_000;
const sentCounts = new WeakMap<SessionContext, { info: number; error: number }>();

function underCap(ctx: SessionContext, kind: 'info' | 'error'): boolean {
  let c = sentCounts.get(ctx);
  if (!c) sentCounts.set(ctx, (c = { info: 0, error: 0 }));
  const n = ++c[kind];
  if (n === MAX_MESSAGES_PER_KIND + 1) {
    ctx.log.warn({ kind }, 'too many messages; further ones are suppressed');
    const note = `rrsyncd: more than ${MAX_MESSAGES_PER_KIND} ${kind === 'error' ? 'errors' : 'messages'}; further ones are not shown\n`;
    ctx.writer.message(kind === 'error' ? MsgTag.ERROR_XFER : MsgTag.INFO, Buffer.from(note, 'latin1'));
  }
  return n <= MAX_MESSAGES_PER_KIND;
}

export function sendInfo(ctx: SessionContext, text: string): void {
  if (!underCap(ctx, 'info')) return;
  ctx.writer.message(MsgTag.INFO, Buffer.from(text, 'latin1'));
}

/** A per-file error: the client prints it and ends with exit 23 (MSG_ERROR_XFER). */
export function sendTransferError(ctx: SessionContext, text: string): void {
  ctx.hadTransferError = true;
  if (!underCap(ctx, 'error')) return;
  ctx.log.warn({ err: Buffer.from(text, 'latin1').toString('utf8').trimEnd() }, 'transfer error');
  ctx.writer.message(MsgTag.ERROR_XFER, Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'latin1'));
}

export function sendWarning(ctx: SessionContext, text: string): void {
  ctx.writer.message(MsgTag.WARNING, Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'latin1'));
}

export type RoleMessageHandler = (tag: number, payload: Buffer) => boolean;

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
        // io.c read_a_msg: "unexpected tag" is RERR_STREAMIO.
        if (!role(tag, payload)) throw new ProtocolError(`unexpected tag ${tag}`, ExitCode.STREAMIO);
    }
  };
  return { peerIoError: () => peerIoError };
}
