import { fstatSync, type BigIntStats } from 'node:fs';
import { fileTypeOf, type FileType } from '../protocol/file-mode.js';

export type EntryType = FileType;

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

export function typeOfMode(mode: number): EntryType {
  const type = fileTypeOf(mode);
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

export function statFd(fd: number): EntryStat {
  return toEntryStat(fstatSync(fd, { bigint: true }) as BigIntStats);
}
