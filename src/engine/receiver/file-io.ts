/** Small file-data helpers of the receiving role: reading a file in chunks, local copies, cleanup. */
import type { Sandbox } from '../../sandbox/sandbox.js';
import { chunksOf } from '../file-hash.js';
import type { ChangePurpose, Gateway } from '../../gateway/gateway.js';

export const READ_CHUNK = 1024 * 1024;

/**
 * A file's data in order, as views of `buf` (each valid until the next one). The fd is closed
 * however the iteration ends (a return or a throw in the consumer's loop closes it too).
 */
export function* readChunks(sandbox: Sandbox, rel: string, buf: Buffer): Generator<Buffer> {
  const { fd, stat } = sandbox.openRead(rel);
  try {
    yield* chunksOf(sandbox, fd, 0, stat.size, buf);
  } finally {
    sandbox.close(fd);
  }
}

/** Copies an open file's data into a file opened through the gateway (--copy-dest, backups). */
export function copyFd(sandbox: Sandbox, fs: Gateway, inFd: number, outFd: number, size: number): void {
  const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(1, size)));
  for (let pos = 0; ; ) {
    const n = sandbox.read(inFd, buf, 0, buf.length, pos);
    if (n <= 0) break;
    fs.write(outFd, buf, 0, n, pos);
    pos += n;
  }
}

export function unlinkQuiet(fs: Gateway, rel: string, purpose: ChangePurpose = 'temp'): void {
  try {
    fs.unlink(rel, purpose);
  } catch {
    // already gone
  }
}

/** Closes (unless fd is -1: closed already) and removes a temp file that did not make it into place. */
export function discardTemp(fs: Gateway, tmp: { fd: number; rel: string }): void {
  try {
    if (tmp.fd >= 0) fs.close(tmp.fd);
  } catch {
    // a failed close still releases the fd
  }
  unlinkQuiet(fs, tmp.rel);
}
