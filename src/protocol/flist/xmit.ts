/**
 * The XMIT_* flag bits of a file-list entry and the "same as previous" registers that both
 * directions keep (rsync's flist.c send_file_entry / recv_file_entry statics).
 */
import type { FileEntry, FlistOptions } from './entry.js';
import { isDevice, isSpecial } from './entry.js';

export const XMIT = {
  TOP_DIR: 0x1,
  SAME_MODE: 0x2,
  EXTENDED_FLAGS: 0x4,
  SAME_RDEV_pre28: 0x4,
  SAME_UID: 0x8,
  SAME_GID: 0x10,
  SAME_NAME: 0x20,
  LONG_NAME: 0x40,
  SAME_TIME: 0x80,
  SAME_RDEV_MAJOR: 0x100,
  NO_CONTENT_DIR: 0x100,
  HLINKED: 0x200,
  SAME_DEV_pre30: 0x400,
  USER_NAME_FOLLOWS: 0x400,
  RDEV_MINOR_8_pre30: 0x800,
  GROUP_NAME_FOLLOWS: 0x800,
  HLINK_FIRST: 0x1000,
  IO_ERROR_ENDLIST: 0x1000,
  MOD_NSEC: 0x2000,
  SAME_ATIME: 0x4000,
  CRTIME_EQ_MTIME: 0x20000,
} as const;

/** Protocol 27 sends rdev as one 32-bit dev_t with Linux's makedev layout. */
export function packRdev32(major: number, minor: number): number {
  return (((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12)) >>> 0;
}

export function unpackRdev32(rdev: number): [number, number] {
  const major = (rdev >>> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  return [major, minor];
}

/** The "previous entry" registers (one set per direction, persisting across lists). */
export interface PrevState {
  mtime: number;
  atime: number;
  crtime: number;
  mode: number;
  /** proto < 30: dev+1 as on the wire */
  dev: number;
  /** proto 27: the whole 32-bit rdev */
  rdev: number;
  rdevMajor: number;
  uid: number;
  gid: number;
  name: string;
}

export function freshPrev(): PrevState {
  return { mtime: 0, atime: 0, crtime: 0, mode: 0, dev: 0, rdev: 0, rdevMajor: 0, uid: 0, gid: 0, name: '' };
}

export function sendsRdev(opts: FlistOptions, e: FileEntry): boolean {
  return (opts.devices && isDevice(e)) || (opts.specials && isSpecial(e) && opts.protocol < 31);
}
