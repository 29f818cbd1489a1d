/**
 * Works around two flow-control bugs in ssh2 1.17's server channels (lib/Channel.js and the
 * CHANNEL_WINDOW_ADJUST handler in lib/server.js), without copying data or wrapping the stream:
 *
 * 1. A chunk that waited for window space stays in `_chunk` after it was finally sent; the next
 *    window adjust that finds `_waitWindow` set (e.g. for stderr) re-sends that stale chunk.
 * 2. stdout and stderr share one window, but an adjust resumes only one of them (stdout first);
 *    a stderr write that waited while stdout also waited is never sent and its callback never runs.
 *
 * The patch clears a chunk before its callback runs, and when one stream's pending chunk
 * completes it resumes the other's (or re-arms `_waitWindow` if the window is empty again).
 */
import type { Socket } from 'node:net';
import type { ServerChannel } from 'ssh2';

type WriteCb = (err?: Error | null) => void;
type WriteFn = (data: Buffer, encoding: BufferEncoding | null, cb: WriteCb) => void;

interface ChannelInternals {
  _write: WriteFn;
  _chunk?: Buffer;
  _chunkcb?: WriteCb;
  _chunkErr?: Buffer;
  _chunkcbErr?: WriteCb;
  _waitWindow: boolean;
  outgoing: { window: number };
  stderr: { _write: WriteFn };
}

const patched = new WeakSet<object>();

export function fixChannelFlowControl(channel: ServerChannel): void {
  const ch = channel as unknown as ChannelInternals;
  if (patched.has(ch) || typeof ch._write !== 'function' || typeof ch.stderr?._write !== 'function') return;
  patched.add(ch);
  const writeOut = ch._write.bind(ch);
  const writeErr = ch.stderr._write.bind(ch.stderr);

  const resumeStderr = () => {
    if (!ch._chunkErr) return;
    if (ch.outgoing.window <= 0) {
      ch._waitWindow = true;
      return;
    }
    const data = ch._chunkErr;
    const cb = ch._chunkcbErr!;
    ch._chunkErr = undefined;
    ch._chunkcbErr = undefined;
    ch.stderr._write(data, null, cb);
  };
  const resumeStdout = () => {
    if (!ch._chunk) return;
    if (ch.outgoing.window <= 0) {
      ch._waitWindow = true;
      return;
    }
    const data = ch._chunk;
    const cb = ch._chunkcb!;
    ch._chunk = undefined;
    ch._chunkcb = undefined;
    ch._write(data, null, cb);
  };

  ch._write = (data, encoding, cb) =>
    writeOut(data, encoding, (err) => {
      ch._chunk = undefined;
      ch._chunkcb = undefined;
      resumeStderr();
      cb(err);
    });
  ch.stderr._write = (data, encoding, cb) =>
    writeErr(data, encoding, (err) => {
      ch._chunkErr = undefined;
      ch._chunkcbErr = undefined;
      resumeStdout();
      cb(err);
    });
}

/**
 * ssh2 writes every packet (at most 32 KiB of channel data) to the socket on its own: one
 * write(2) per packet, ~30 000 per GiB sent. Corking the socket while one channel write is cut
 * into packets hands them to the kernel in one writev(2). It is uncorked right after, not on the
 * next tick: a small message (a list's NDX_DONE) must not wait behind a long run of microtasks.
 */
export function batchSocketWrites(channel: ServerChannel, socket: Socket): void {
  const ch = channel as unknown as ChannelInternals;
  const write = ch._write;
  ch._write = (data, encoding, cb) => {
    socket.cork();
    try {
      write(data, encoding, cb);
    } finally {
      socket.uncork();
    }
  };
}
