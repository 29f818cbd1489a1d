/**
 * The optional native addon (native/, built by `npm ci`): the *at(2) syscalls and nanosecond
 * times the sandbox needs (Node's fs lacks them), and the weak block checksum, several times
 * faster in C (vectorised) than in JavaScript. Absent => null, and callers fall back.
 */
import { createRequire } from 'node:module';

export interface NativeBinding {
  utimensat(dirfd: number, name: Buffer, as: number, an: number, ms: number, mn: number, follow?: boolean): void;
  futimens(fd: number, as: number, an: number, ms: number, mn: number): void;
  mknodat(dirfd: number, name: Buffer, mode: number, major: number, minor: number): void;
  openat(dirfd: number, leaf: Buffer, flags: number, mode: number): number;
  lstatat(dirfd: number, leaf: Buffer, out: Float64Array): boolean;
  /** lstat of each name in dirfd: out[13 i] = 0 or the errno, then the 12 lstatat fields. */
  lstatmany?(dirfd: number, names: readonly string[], out: Float64Array): number;
  renameat(fromDir: number, fromLeaf: Buffer, toDir: number, toLeaf: Buffer): void;
  linkat(fromDir: number, fromLeaf: Buffer, toDir: number, toLeaf: Buffer): void;
  unlinkat(dirfd: number, leaf: Buffer, isDir: boolean): void;
  mkdirat(dirfd: number, leaf: Buffer, mode: number): void;
  symlinkat(target: Buffer, dirfd: number, leaf: Buffer): void;
  flockex?(fd: number): boolean;
  /** Names an O_TMPFILE file: linkat of /proc/self/fd/<fd>; false when the name exists. */
  linkfd?(fd: number, dirfd: number, leaf: Buffer): boolean;
  /** The names in a directory (O_PATH fd), without . and .., sorted bytewise, latin1. */
  readdirfd?(dirfd: number): string[];
  /** malloc_trim(0): returns memory malloc keeps after frees to the kernel (glibc). */
  releaseFreedMemory?(): void;
  /** V8's memory-reducing full GC (Isolate::LowMemoryNotification); stop-the-world, for idle times. */
  lowMemoryNotification?(): void;
  /** sync_file_range(SYNC_FILE_RANGE_WRITE): starts writeback of a range, does not wait. */
  startWriteback?(fd: number, offset: number, length: number): void;
  /** fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE); throws with the errno as `code`. */
  punchHole?(fd: number, offset: number, length: number): void;
  /** sum1 of each blength-sized block of buf[start, end) into out[index..]; returns the count. */
  sum1Blocks?(buf: Uint8Array, start: number, end: number, blength: number, out: Uint32Array, index: number): number;
}

function load(): NativeBinding | null {
  // RRSYNCD_NATIVE=off runs the pure-Node fallbacks (CI runs the sandbox tests so, see .ci/run).
  if (process.env.RRSYNCD_NATIVE === 'off') return null;
  try {
    const require = createRequire(import.meta.url);
    const b = require('rrsyncd-native') as NativeBinding | null;
    return b && typeof b.utimensat === 'function' && typeof b.openat === 'function' ? b : null;
  } catch {
    return null;
  }
}

export const nativeBinding = load();
