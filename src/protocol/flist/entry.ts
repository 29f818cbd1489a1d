/**
 * One file-list entry as both directions of the flist codec see it, the options that shape the
 * codec for a session, and the entry-type predicates (rsync's flist.c `struct file_struct`).
 * Names and link targets are byte strings (char codes = raw bytes).
 */
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../file-mode.js';

export interface FileEntry {
  /** byte string, cleaned relative path ('.' for the transfer root dir) */
  name: string;
  /** full st_mode (type bits + perms); symlinks 0o120000|perm */
  mode: number;
  size: number;
  /** seconds (may be negative for proto >= 30) */
  mtime: number;
  /** 0 unless XMIT_MOD_NSEC (proto >= 31) */
  mtimeNsec: number;
  atime?: number;
  crtime?: number;
  uid: number;
  gid: number;
  userName?: string;
  groupName?: string;
  rdevMajor: number;
  rdevMinor: number;
  linkTarget?: string;
  checksum?: Buffer;
  /** XMIT_* flags as sent/received (EXTENDED_FLAGS is not kept for proto >= 28) */
  xflags: number;
  /** -H: id shared by all members (proto >= 30: first member's arrival ndx; < 30: per (dev, ino)) */
  hlinkGroup?: number;
  dev?: number;
  ino?: number;
  /** sorted index incl. ndxStart (set by sortFileList) */
  ndx: number;
  /** arrival (send-order) index incl. ndxStart */
  arrival: number;
  /** duplicate removed by sortFileList */
  inactive?: boolean;
  /**
   * -R: the name was sent with a leading '/' (absolute source path). `name` has it stripped; the
   * sort order and the writer still use the '/' form, as the reference strips after sorting.
   */
  leadingSlash?: boolean;
}

export interface FlistOptions {
  protocol: number;
  varintFlags: boolean;
  safeFlist: boolean;
  incRecurse: boolean;
  id0Names: boolean;
  links: boolean;
  owner: boolean;
  group: boolean;
  devices: boolean;
  specials: boolean;
  hardLinks: boolean;
  atimes: boolean;
  crtimes: boolean;
  numericIds: boolean;
  checksumLength: number;
  relative: boolean;
  /** --delete-missing-args: a mode-0 entry names a missing source arg (to delete on the receiver). */
  missingArgs?: boolean;
}

export function isDir(e: FileEntry): boolean {
  return (e.mode & S_IFMT) === S_IFDIR;
}
export function isRegular(e: FileEntry): boolean {
  return (e.mode & S_IFMT) === S_IFREG;
}
export function isSymlink(e: FileEntry): boolean {
  return (e.mode & S_IFMT) === S_IFLNK;
}
export function isDevice(e: FileEntry): boolean {
  const t = e.mode & S_IFMT;
  return t === S_IFCHR || t === S_IFBLK;
}
export function isSpecial(e: FileEntry): boolean {
  const t = e.mode & S_IFMT;
  return t === S_IFIFO || t === S_IFSOCK;
}

/** Longest accepted name / symlink target in bytes (the reference's MAXPATHLEN is 4096). */
export const MAX_PATH_BYTES = 4096;
export const MAX_WIRE_NSEC = 999_999_999;

/** The name as the sender wrote it (with the -R leading '/'): what sorting and the writer use. */
export function wireName(e: FileEntry): string {
  return e.leadingSlash ? `/${e.name}` : e.name;
}
