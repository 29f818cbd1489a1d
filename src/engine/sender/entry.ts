/** A file-list entry as the sending side keeps it, and the directory nodes of incremental recursion. */
import type { ServerOptions } from '../../policy/server-options.js';
import { FORMAT_OF_TYPE } from '../../protocol/file-mode.js';
import type { FileEntry } from '../../protocol/flist/entry.js';
import { XMIT } from '../../protocol/flist/xmit.js';
import { unmungeSymlink } from '../../sandbox/paths.js';
import type { Sandbox } from '../../sandbox/sandbox.js';
import type { EntryStat } from '../../sandbox/stat.js';
import { joinRel } from '../relpath.js';

export const enum NameType {
  Normal,
  DotDir,
  SlashEnding,
  Missing,
}

/** A list entry as the sender keeps it: where its data lives and what it was when listed. */
export interface SEntry extends FileEntry {
  /** The transfer base (root-relative dir of the arg; shared string). */
  base: string;
  /** Root-relative, symlink-free path of the data when it is not joinRel(base, name). */
  phys?: string;
  /** Identity when listed (the open checks it: CVE-2024-12747). */
  sdev: number;
  sino: number;
  /** Directory whose children are listed (rsync's FLAG_CONTENT_DIR). */
  content?: boolean;
  /** -R with incremental recursion: names still to be sent below this (implied) dir. */
  relnames?: Array<{ rest: string; type: NameType }>;
  /** The data went out once; a later request for it is a redo. */
  sent?: boolean;
}

export function physOf(e: SEntry): string {
  return e.phys ?? joinRel(e.base, e.name);
}

export interface DirNode {
  /** dir_flist index of the first member: the sub-list is announced with it. */
  index: number;
  /** The directory entry and any duplicates of it (equal names), sent together in one sub-list. */
  members: SEntry[];
  parent: DirNode | null;
}

/** The stat of a --delete-missing-args name: mode 0 tells the client to delete it. */
export function zeroStat(): EntryStat {
  return { type: 'file', mode: 0, size: 0, mtimeSec: 0, mtimeNsec: 0, atimeSec: 0, atimeNsec: 0, uid: 0, gid: 0, dev: 0, ino: 0, nlink: 1, rdev: 0 };
}

export interface MakeFlags {
  top?: boolean;
  content?: boolean;
  implied?: boolean;
  /** apply the client's filters (rsync's ALL_FILTERS) */
  filtered?: boolean;
  /** follow every symlink (implied dirs: rsync forces copy_links there) */
  followAll?: boolean;
  /** follow a symlink to a directory (link_stat's follow_dirlinks) */
  followDirs?: boolean;
  /** -x checks apply (a directory below a top dir) */
  mountCheck?: boolean;
}

/** rsync's make_file body: the list entry for a stat'ed name (`target`: a symlink's, when known). */
export function makeEntry(
  o: ServerOptions,
  proto: number,
  sandbox: Sandbox,
  name: string,
  base: string,
  phys: string,
  st: EntryStat,
  target: string | undefined,
  flags: MakeFlags,
): SEntry {
  const dir = st.type === 'dir';
  const e: SEntry = {
    name,
    mode: st.mode === 0 ? 0 : (st.mode & 0o7777) | FORMAT_OF_TYPE[st.type],
    size: st.type === 'file' || st.type === 'symlink' || st.type === 'dir' ? st.size : 0,
    mtime: st.mtimeSec,
    mtimeNsec: proto >= 31 ? st.mtimeNsec : 0,
    uid: o.owner ? st.uid : 0,
    gid: o.group ? st.gid : 0,
    rdevMajor: 0,
    rdevMinor: 0,
    xflags: 0,
    ndx: 0,
    arrival: 0,
    base,
    sdev: st.dev,
    sino: st.ino,
  };
  if (phys !== joinRel(base, name)) e.phys = phys;
  if (o.atimes && !dir) e.atime = st.atimeSec;
  if (st.type === 'symlink') {
    if (target === undefined) {
      try {
        target = sandbox.readlink(phys);
        if (o.mungeLinks) target = unmungeSymlink(target);
      } catch {
        target = '';
      }
    }
    if (o.links) {
      e.linkTarget = target;
      e.size = target.length;
    }
  } else if (st.type === 'chr' || st.type === 'blk') {
    e.rdevMajor = ((st.rdev >> 8) & 0xfff) | (Math.floor(st.rdev / 2 ** 32) & ~0xfff);
    e.rdevMinor = (st.rdev & 0xff) | ((st.rdev >> 12) & ~0xff);
  }
  if (o.hardLinks && !dir && (proto >= 28 ? st.nlink > 1 : st.type === 'file')) {
    e.dev = st.dev;
    e.ino = st.ino;
  }
  if (dir) {
    if (flags.content) e.content = true;
    if (proto >= 30) {
      if (flags.content) e.xflags = flags.top ? XMIT.TOP_DIR : 0;
      else if (flags.implied) e.xflags = XMIT.TOP_DIR | XMIT.NO_CONTENT_DIR;
      else e.xflags = XMIT.NO_CONTENT_DIR;
    } else if (flags.top) e.xflags = XMIT.TOP_DIR;
  }
  return e;
}
