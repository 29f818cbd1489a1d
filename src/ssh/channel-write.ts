/** Writes to an SSH channel (or its stderr) that respect backpressure and the channel's close. */
import { once } from 'node:events';
import type { Writable } from 'node:stream';

/** Writes text, waiting for 'drain' when write() asks us to. */
export async function writeAll(w: Writable, text: string | Buffer, closer: NodeJS.EventEmitter = w): Promise<void> {
  if (!w.writable) return;
  if (w.write(text)) return;
  const ac = new AbortController();
  await Promise.race([once(w, 'drain', ac), once(closer, 'close', ac)]).catch(() => undefined);
  ac.abort();
}

/**
 * Resolves once everything written so far has been handed to the SSH layer (a zero-length write
 * is a barrier: its callback runs after the earlier chunks left the stream's buffer).
 */
export function flushWritable(w: Writable, closer: NodeJS.EventEmitter = w, timeoutMs = 30_000): Promise<void> {
  if (!w.writable || w.writableEnded || w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      closer.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    closer.once('close', done);
    w.write(Buffer.alloc(0), done);
  });
}
