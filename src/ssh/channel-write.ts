/** Writes to an SSH channel (or its stderr) that respect backpressure and the channel's close. */
import { once } from 'node:events';
import type { Writable } from 'node:stream';

/**
 * What ends a wait for the client: the channel's 'close', and the connection's socket (a
 * connection that dies under a channel does not make ssh2 emit the channel's 'close').
 */
type Closer = NodeJS.EventEmitter & { destroyed?: boolean };

function closerList(closers: Closer | Closer[]): Closer[] {
  return Array.isArray(closers) ? closers : [closers];
}

/** Writes text, waiting for 'drain' when write() asks us to. */
export async function writeAll(w: Writable, text: string | Buffer, closers: Closer | Closer[] = w): Promise<void> {
  const list = closerList(closers);
  if (!w.writable || list.some((c) => c.destroyed === true)) return;
  if (w.write(text)) return;
  const ac = new AbortController();
  await Promise.race([once(w, 'drain', ac), ...list.map((c) => once(c, 'close', ac))]).catch(() => undefined);
  ac.abort();
}

/**
 * Resolves once everything written so far has been handed to the SSH layer (a zero-length write
 * is a barrier: its callback runs after the earlier chunks left the stream's buffer), or the
 * client is gone.
 */
export function flushWritable(w: Writable, closers: Closer | Closer[] = w, timeoutMs = 30_000): Promise<void> {
  const list = closerList(closers);
  if (!w.writable || w.writableEnded || w.destroyed || list.some((c) => c.destroyed === true)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      for (const c of list) c.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    for (const c of list) c.once('close', done);
    w.write(Buffer.alloc(0), done);
  });
}
