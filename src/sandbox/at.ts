/**
 * Leaf operations relative to a pinned directory fd. With the native addon they are the real
 * *at(2) syscalls (openat, fstatat, renameat, ...): race-free and without resolving
 * /proc/self/fd/N magic links on every call (that costs ~10-25 µs per operation). Without the
 * addon they fall back to the same operations on `/proc/self/fd/<dirfd>/<leaf>` through node:fs.
 * `leaf` is always a single validated path component (a byte string).
 */
import {
  constants as fsConstants,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  type BigIntStats,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { nativeBinding } from './native.js';
import { toEntryStat, type EntryStat } from './stat.js';
import { fileTypeOf } from '../protocol/file-mode.js';

/** `/proc/self/fd/<fd>[/<name>]` as a Buffer so non-UTF-8 names survive. */
export function procPath(fd: number, name?: string): Buffer {
  return Buffer.from(name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`, 'latin1');
}

export const O_PATH = 0o10000000; // Linux (all common architectures)
/** How every directory of a path is opened: pinned, never through a symlink. */
export const DIR_FLAGS = O_PATH | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW;

function leafBuf(leaf: string): Buffer {
  return Buffer.from(leaf, 'latin1');
}

const statOut = new Float64Array(12);

/**
 * A number read from a Float64Array is a boxed double even when it is a small integer; stored in
 * an object field it turns that field into a double field for every object of the same shape
 * (16 more bytes each: a file-list entry kept five of them). `x | 0` gives V8's small integer.
 */
function int(x: number): number {
  const i = x | 0;
  return i === x ? i : x;
}

function entryFromNative(o: Float64Array, at = 0): EntryStat {
  return {
    type: fileTypeOf(o[at]) ?? 'file',
    mode: int(o[at]),
    size: int(o[at + 1]),
    mtimeSec: int(o[at + 2]),
    mtimeNsec: int(o[at + 3]),
    atimeSec: int(o[at + 4]),
    atimeNsec: int(o[at + 5]),
    uid: int(o[at + 6]),
    gid: int(o[at + 7]),
    dev: int(o[at + 8]),
    ino: int(o[at + 9]),
    nlink: int(o[at + 10]),
    rdev: int(o[at + 11]),
  };
}

/** errno number -> name, as node:fs reports codes. */
const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));
const { ENOENT, ENOTDIR } = osConstants.errno;

let manyOut = new Float64Array(13 * 1024);

/**
 * lstat of many single-component names in dirFd: an EntryStat, null when the name is missing
 * (ENOENT/ENOTDIR, as lstatAt), or the errno code of the failure.
 */
export function lstatManyAt(dirFd: number, names: readonly string[]): Array<EntryStat | null | string> {
  if (!nativeBinding?.lstatmany) {
    return names.map((n) => {
      try {
        return lstatAt(dirFd, n);
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? 'EIO';
      }
    });
  }
  if (manyOut.length < 13 * names.length) manyOut = new Float64Array(13 * names.length);
  nativeBinding.lstatmany(dirFd, names, manyOut);
  const out: Array<EntryStat | null | string> = new Array(names.length);
  for (let i = 0; i < names.length; i++) {
    const errno = manyOut[13 * i];
    out[i] = errno === 0 ? entryFromNative(manyOut, 13 * i + 1) : errno === ENOENT || errno === ENOTDIR ? null : ERRNO_NAMES.get(errno) ?? 'EIO';
  }
  return out;
}

/** lstat of a leaf; null when it does not exist. */
export function lstatAt(dirFd: number, leaf: string): EntryStat | null {
  if (nativeBinding) {
    return nativeBinding.lstatat(dirFd, leafBuf(leaf), statOut) ? entryFromNative(statOut) : null;
  }
  try {
    const st = lstatSync(procPath(dirFd, leaf), { bigint: true, throwIfNoEntry: false }) as BigIntStats | undefined;
    return st === undefined ? null : toEntryStat(st);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
}

export function openAt(dirFd: number, leaf: string, flags: number, mode = 0): number {
  if (nativeBinding) return nativeBinding.openat(dirFd, leafBuf(leaf), flags, mode);
  return openSync(procPath(dirFd, leaf), flags, mode);
}

export function renameAt(fromDir: number, fromLeaf: string, toDir: number, toLeaf: string): void {
  if (nativeBinding) nativeBinding.renameat(fromDir, leafBuf(fromLeaf), toDir, leafBuf(toLeaf));
  else renameSync(procPath(fromDir, fromLeaf), procPath(toDir, toLeaf));
}

export function linkAt(fromDir: number, fromLeaf: string, toDir: number, toLeaf: string): void {
  if (nativeBinding) nativeBinding.linkat(fromDir, leafBuf(fromLeaf), toDir, leafBuf(toLeaf));
  else linkSync(procPath(fromDir, fromLeaf), procPath(toDir, toLeaf));
}

/** Gives the open (O_TMPFILE) file `fd` the name leaf in dirFd; false when the name exists. */
export function linkFdAt(fd: number, dirFd: number, leaf: string): boolean {
  if (!nativeBinding?.linkfd) throw Object.assign(new Error('linkat: needs the native addon'), { code: 'ENOTSUP' });
  return nativeBinding.linkfd(fd, dirFd, leafBuf(leaf));
}

/** The names in the directory dirFd (sorted bytewise, without . and ..). */
export function readdirAt(dirFd: number): string[] {
  if (nativeBinding?.readdirfd) return nativeBinding.readdirfd(dirFd);
  return readdirSync(procPath(dirFd, '.'), { encoding: 'buffer' }).map((b) => b.toString('latin1'));
}

export function unlinkAt(dirFd: number, leaf: string): void {
  if (nativeBinding) nativeBinding.unlinkat(dirFd, leafBuf(leaf), false);
  else unlinkSync(procPath(dirFd, leaf));
}

export function rmdirAt(dirFd: number, leaf: string): void {
  if (nativeBinding) nativeBinding.unlinkat(dirFd, leafBuf(leaf), true);
  else rmdirSync(procPath(dirFd, leaf));
}

export function mkdirAt(dirFd: number, leaf: string, mode: number): void {
  if (nativeBinding) nativeBinding.mkdirat(dirFd, leafBuf(leaf), mode);
  else mkdirSync(procPath(dirFd, leaf), mode);
}

export function symlinkAt(target: string, dirFd: number, leaf: string): void {
  if (nativeBinding) nativeBinding.symlinkat(Buffer.from(target, 'latin1'), dirFd, leafBuf(leaf));
  else symlinkSync(Buffer.from(target, 'latin1'), procPath(dirFd, leaf));
}
