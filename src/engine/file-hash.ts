/**
 * The one loop that reads a file's data through the sandbox, for every hash the roles compute over
 * local files: --checksum's file checksum, the --append-verify prefix, block sums of a basis.
 */
import { createFileListHasher, type ChecksumSpec } from '../protocol/checksum.js';
import type { Sandbox } from '../sandbox/sandbox.js';

/** Bytes read per call. */
export const READ_CHUNK = 256 * 1024;

/**
 * The bytes of the open file `fd` in [from, to), as views of `buf` (each valid until the next is
 * asked for). Ends early at end of file: a file that shrank yields less.
 */
export function* chunksOf(sandbox: Sandbox, fd: number, from: number, to: number, buf: Buffer): Generator<Buffer> {
  let pos = from;
  while (pos < to) {
    const n = sandbox.read(fd, buf, 0, Math.min(buf.length, to - pos), pos);
    if (n <= 0) return;
    yield buf.subarray(0, n);
    pos += n;
  }
}

/** Feeds the bytes of `fd` in [0, length) to `hasher`. */
export function hashPrefix(sandbox: Sandbox, fd: number, length: number, hasher: { update(b: Buffer): void }, buf: Buffer): void {
  for (const chunk of chunksOf(sandbox, fd, 0, length, buf)) hasher.update(chunk);
}

/**
 * --checksum's checksum of the regular file `rel` (opened as listed when `expect` is given), or
 * null when it cannot be read.
 */
export function fileChecksum(
  sandbox: Sandbox,
  rel: string,
  spec: ChecksumSpec,
  buf: Buffer,
  expect?: { dev: number; ino: number },
): Buffer | null {
  const h = createFileListHasher(spec);
  let fd: number;
  let size: number;
  try {
    ({ fd, stat: { size } } = sandbox.openRead(rel, expect));
  } catch {
    return null;
  }
  try {
    hashPrefix(sandbox, fd, size, h, buf);
  } catch {
    return null;
  } finally {
    sandbox.close(fd);
  }
  return h.digest();
}
