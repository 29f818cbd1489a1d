import type { BigIntStats } from 'node:fs';

export type EntryType = 'file' | 'dir' | 'symlink' | 'chr' | 'blk' | 'fifo' | 'sock';

export interface EntryStat {
  type: EntryType;
  /** full st_mode (type bits included) */
  mode: number;
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  atimeSec: number;
  atimeNsec: number;
  uid: number;
  gid: number;
  dev: number;
  ino: number;
  nlink: number;
  rdev: number;
}

export const S_IFMT = 0o170000;
const TYPE_BY_FORMAT: ReadonlyMap<number, EntryType> = new Map([
  [0o100000, 'file'],
  [0o040000, 'dir'],
  [0o120000, 'symlink'],
  [0o020000, 'chr'],
  [0o060000, 'blk'],
  [0o010000, 'fifo'],
  [0o140000, 'sock'],
]);

export function typeOfMode(mode: number): EntryType {
  const type = TYPE_BY_FORMAT.get(mode & S_IFMT);
  if (type === undefined) throw new Error(`unknown file type in mode ${mode.toString(8)}`);
  return type;
}

const NS_PER_SEC = 1_000_000_000n;

/** Splits a bigint nanosecond timestamp into (sec, nsec) with 0 <= nsec < 1e9, also before 1970. */
function splitNs(ns: bigint): [number, number] {
  let sec = ns / NS_PER_SEC;
  let nsec = ns - sec * NS_PER_SEC;
  if (nsec < 0n) {
    nsec += NS_PER_SEC;
    sec -= 1n;
  }
  return [Number(sec), Number(nsec)];
}

export function toEntryStat(st: BigIntStats): EntryStat {
  const mode = Number(st.mode);
  const [mtimeSec, mtimeNsec] = splitNs(st.mtimeNs);
  const [atimeSec, atimeNsec] = splitNs(st.atimeNs);
  return {
    type: typeOfMode(mode),
    mode,
    size: Number(st.size),
    mtimeSec,
    mtimeNsec,
    atimeSec,
    atimeNsec,
    uid: Number(st.uid),
    gid: Number(st.gid),
    dev: Number(st.dev),
    ino: Number(st.ino),
    nlink: Number(st.nlink),
    rdev: Number(st.rdev),
  };
}
