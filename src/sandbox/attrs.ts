/**
 * Metadata on pinned inodes (the file-system half of rsync's set_file_attrs): owner first (chown
 * clears set-id bits), then mode, then times. Times go through the native addon when present,
 * else through Node (µs, >= 1970), else through touch(1) given the pinned fd as its fd 3.
 */
import { chmodSync, chownSync, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lutimesSync, unlinkSync, utimesSync } from 'node:fs';
import { SandboxError } from './errors.js';
import { quoted } from '../printable.js';
import { procPath } from './at.js';
import { asciiTempName, runWithFd } from './special.js';
import { statFd, type EntryStat } from './stat.js';
import { type Timestamp, checkTimestamp, nodeTimeFor, touchDate } from './times.js';
import { nativeTimes, type NativeTimeSetter } from './native.js';

export interface Attrs {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Timestamp;
  atime?: Timestamp;
}

/** Owner, mode and times on an open file. */
export function setAttrsOnFd(fd: number, attrs: Attrs, label: string, exactTimes: boolean): void {
  if (attrs.uid !== undefined || attrs.gid !== undefined) fchownSync(fd, attrs.uid ?? -1, attrs.gid ?? -1);
  if (attrs.mode !== undefined) fchmodSync(fd, attrs.mode & 0o7777);
  if (attrs.mtime !== undefined || attrs.atime !== undefined) {
    setTimes(exactTimes, attrs, label, fd, () => statFd(fd), (a, m) => futimesSync(fd, a, m), undefined, nativeTimes?.onFd(fd));
  }
}

/** Owner, mode and times on a pinned non-symlink inode (an O_PATH fd), via its magic link. */
export function setAttrsOnPinned(pinnedFd: number, attrs: Attrs, rel: string, exactTimes: boolean): void {
  const path = procPath(pinnedFd);
  if (attrs.uid !== undefined || attrs.gid !== undefined) chownSync(path, attrs.uid ?? -1, attrs.gid ?? -1);
  if (attrs.mode !== undefined) chmodSync(path, attrs.mode & 0o7777);
  if (attrs.mtime !== undefined || attrs.atime !== undefined) {
    setTimes(exactTimes, attrs, rel, pinnedFd, () => statFd(pinnedFd), (a, m) => utimesSync(path, a, m), undefined, nativeTimes?.onPath(-100, path, true));
  }
}

export function setSymlinkAttrs(dirFd: number, leaf: string, leafFd: number, attrs: Attrs, rel: string, exactTimes: boolean): void {
  const path = procPath(dirFd, leaf);
  if (attrs.uid !== undefined || attrs.gid !== undefined) lchownSync(path, attrs.uid ?? -1, attrs.gid ?? -1);
  if (attrs.mtime === undefined && attrs.atime === undefined) return;
  const viaNode = (a: number, m: number): void => lutimesSync(path, a, m);
  const current = (): EntryStat => statFd(leafFd);
  // touch -h needs a name it can be given in argv: a temporary ASCII hard link to the symlink.
  setTimes(
    exactTimes,
    attrs,
    rel,
    dirFd,
    current,
    viaNode,
    () => {
      const tmp = asciiTempName();
      linkSync(path, procPath(dirFd, tmp));
      return { path: `/proc/self/fd/3/${tmp}`, noDeref: true, cleanup: () => unlinkSync(procPath(dirFd, tmp)) };
    },
    nativeTimes?.onPath(dirFd, leaf, false),
  );
}

/**
 * Sets atime/mtime through Node when it can express them (µs, >= 1970), else with touch(1).
 * `fd` becomes the child's fd 3; by default touch addresses `/proc/self/fd/3` (follows to it).
 */
function setTimes(
  exactTimes: boolean,
  attrs: Attrs,
  rel: string,
  fd: number,
  current: () => EntryStat,
  viaNode: (atime: number, mtime: number) => void,
  touchTarget: () => { path: string; noDeref: boolean; cleanup: () => void } = () => ({
    path: '/proc/self/fd/3',
    noDeref: false,
    cleanup: () => undefined,
  }),
  viaNative?: NativeTimeSetter,
): void {
  for (const t of [attrs.atime, attrs.mtime]) {
    if (t !== undefined && !checkTimestamp(t)) throw new SandboxError('EINVAL', rel, `bad timestamp for ${quoted(rel)}`);
  }
  if (viaNative) {
    viaNative(attrs.atime, attrs.mtime);
    return;
  }
  if (trySetTimesViaNode(exactTimes, attrs, current, viaNode)) return;
  const { atime, mtime } = attrs;
  const target = touchTarget();
  try {
    const base = target.noDeref ? ['-h', '-c'] : ['-c'];
    if (atime !== undefined && mtime !== undefined && atime.sec === mtime.sec && atime.nsec === mtime.nsec) {
      runWithFd('touch', [...base, '-d', touchDate(mtime), '--', target.path], fd, rel);
      return;
    }
    if (atime !== undefined) runWithFd('touch', [...base, '-a', '-d', touchDate(atime), '--', target.path], fd, rel);
    if (mtime !== undefined) runWithFd('touch', [...base, '-m', '-d', touchDate(mtime), '--', target.path], fd, rel);
  } finally {
    target.cleanup();
  }
}

function trySetTimesViaNode(
  exactTimes: boolean,
  attrs: Attrs,
  current: () => EntryStat,
  viaNode: (atime: number, mtime: number) => void,
): boolean {
  let a = attrs.atime === undefined ? null : nodeTimeFor(attrs.atime, exactTimes);
  let m = attrs.mtime === undefined ? null : nodeTimeFor(attrs.mtime, exactTimes);
  if ((attrs.atime !== undefined && a === null) || (attrs.mtime !== undefined && m === null)) return false;
  if (a === null || m === null) {
    // Node sets both: keep the other one as it is (to the microsecond)
    const st = current();
    a ??= nodeTimeFor({ sec: st.atimeSec, nsec: st.atimeNsec }, false);
    m ??= nodeTimeFor({ sec: st.mtimeSec, nsec: st.mtimeNsec }, false);
    if (a === null || m === null) return false;
  }
  viaNode(a, m);
  return true;
}
