/**
 * The optional native addon (native/): utimensat/futimens with exact nanoseconds and pre-1970
 * times, which Node's fs cannot set (libuv truncates to microseconds). Absent => null, and the
 * sandbox falls back to Node (µs) plus touch(1).
 */
import { createRequire } from 'node:module';
import type { Timestamp } from './times.js';

interface NativeBinding {
  utimensat(dirfd: number, name: Buffer, as: number, an: number, ms: number, mn: number, follow?: boolean): void;
  futimens(fd: number, as: number, an: number, ms: number, mn: number): void;
  mknodat(dirfd: number, name: Buffer, mode: number, major: number, minor: number): void;
  openat(dirfd: number, leaf: Buffer, flags: number, mode: number): number;
  lstatat(dirfd: number, leaf: Buffer, out: Float64Array): boolean;
  renameat(fromDir: number, fromLeaf: Buffer, toDir: number, toLeaf: Buffer): void;
  linkat(fromDir: number, fromLeaf: Buffer, toDir: number, toLeaf: Buffer): void;
  unlinkat(dirfd: number, leaf: Buffer, isDir: boolean): void;
  mkdirat(dirfd: number, leaf: Buffer, mode: number): void;
  symlinkat(target: Buffer, dirfd: number, leaf: Buffer): void;
  flockex?(fd: number): boolean;
}

/** Sets (atime, mtime); an undefined one is left unchanged (UTIME_OMIT). */
export type NativeTimeSetter = (atime: Timestamp | undefined, mtime: Timestamp | undefined) => void;

function load(): NativeBinding | null {
  try {
    const require = createRequire(import.meta.url);
    const b = require('rrsyncd-native') as NativeBinding | null;
    return b && typeof b.utimensat === 'function' && typeof b.openat === 'function' ? b : null;
  } catch {
    return null;
  }
}

const binding = load();

function parts(t: Timestamp | undefined): [number, number] {
  return t === undefined ? [0, -1] : [t.sec, t.nsec];
}

export const nativeBinding = binding;

export const nativeTimes = binding
  ? {
      onFd(fd: number): NativeTimeSetter {
        return (a, m) => binding.futimens(fd, ...parts(a), ...parts(m));
      },
      /** `name` relative to `dirfd` (-100 = AT_FDCWD); `follow` only for /proc/self/fd magic links. */
      onPath(dirfd: number, name: string | Buffer, follow: boolean): NativeTimeSetter {
        const nameBuf = typeof name === 'string' ? Buffer.from(name, 'latin1') : name;
        return (a, m) => binding.utimensat(dirfd, nameBuf, ...parts(a), ...parts(m), follow);
      },
    }
  : null;
