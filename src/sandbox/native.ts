/**
 * The native addon's time setters (src/native.ts): utimensat/futimens with exact nanoseconds and
 * pre-1970 times, which Node's fs cannot set (libuv truncates to microseconds). Without the addon
 * => null, and the sandbox falls back to Node (µs) plus touch(1).
 */
import { nativeBinding } from '../native.js';
import type { Timestamp } from './times.js';

/** Sets (atime, mtime); an undefined one is left unchanged (UTIME_OMIT). */
export type NativeTimeSetter = (atime: Timestamp | undefined, mtime: Timestamp | undefined) => void;

function parts(t: Timestamp | undefined): [number, number] {
  return t === undefined ? [0, -1] : [t.sec, t.nsec];
}

export { nativeBinding };

const binding = nativeBinding;

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
