/**
 * Whole-file reads of small files the server itself parses (filter merge files): one helper, so
 * every reader bounds the size the same way and an oversize file is an error, never skipped.
 */
import { SandboxError } from './errors.js';
import { quoted } from '../printable.js';
import type { Sandbox } from './sandbox.js';

/**
 * The content of the regular file `rel`, or null when there is none to read (missing, not a
 * regular file, unreadable: as rsync treats a merge file it cannot open). A file larger than
 * maxBytes is a SandboxError 'EFBIG'.
 */
export function readSmallFile(sandbox: Sandbox, rel: string, maxBytes: number): Buffer | null {
  try {
    const st = sandbox.lstat(rel);
    if (!st || st.type !== 'file') return null;
    tooLarge(rel, st.size, maxBytes);
    const { fd, stat } = sandbox.openRead(rel, { dev: st.dev, ino: st.ino });
    try {
      tooLarge(rel, stat.size, maxBytes);
      return readAll(sandbox, fd, stat.size);
    } finally {
      sandbox.close(fd);
    }
  } catch (err) {
    if (err instanceof SandboxError && err.code !== 'EFBIG') return null;
    throw err;
  }
}

function readAll(sandbox: Sandbox, fd: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  let got = 0;
  while (got < size) {
    const n = sandbox.read(fd, buf, got, size - got, got);
    if (n <= 0) break;
    got += n;
  }
  return got === size ? buf : buf.subarray(0, got);
}

function tooLarge(rel: string, size: number, maxBytes: number): void {
  if (size > maxBytes) throw new SandboxError('EFBIG', rel, `${quoted(rel)} is larger than ${maxBytes} bytes`);
}
