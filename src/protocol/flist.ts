/**
 * File-list codec for protocols 27-32 (protocol-notes §6, §10.1): per-entry encoding with the
 * "same as previous" compression, end markers, id lists, the f_name_cmp sort and duplicate removal.
 * Names and link targets are byte strings (char codes = raw bytes).
 */
import { ProtocolError, ExitCode } from './errors.js';
import type { ProtocolReader } from './input.js';
import type { ProtocolWriter } from './output.js';
import { readIdList, readIdName, writeIdList, writeIdName } from './idlist.js';

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

// ---------------------------------------------------------------------------------------------
// File types

const S_IFMT = 0o170000;
const S_IFSOCK = 0o140000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;
const S_IFBLK = 0o060000;
const S_IFDIR = 0o040000;
const S_IFCHR = 0o020000;
const S_IFIFO = 0o010000;

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

function isKnownFileType(mode: number): boolean {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Limits and name checks

/** Longest accepted name / symlink target in bytes (the reference's MAXPATHLEN is 4096). */
export const MAX_PATH_BYTES = 4096;
export const MAX_WIRE_NSEC = 999_999_999;
const IOERR_VALID_MASK = 0x7;

function unsafePath(name: string): ProtocolError {
  const shown = name.length > 200 ? `${name.slice(0, 200)}...` : name;
  return new ProtocolError(`ABORTING due to unsafe pathname from sender: ${shown}`, ExitCode.UNSUPPORTED);
}

/**
 * rsync's clean_fname(CFN_REFUSE_DOT_DOT_DIRS): drops duplicate slashes, interior "." components
 * and a trailing slash; returns null when a ".." component is present. A leading '/' is kept.
 */
export function cleanFileName(name: string): string | null {
  if (isAlreadyClean(name)) return name;
  const anchored = name.charCodeAt(0) === 0x2f;
  const parts: string[] = [];
  const comps = name.split('/');
  for (let i = 0; i < comps.length; i++) {
    const c = comps[i];
    if (c === '') continue;
    if (c === '..') return null;
    // interior "." dirs are discarded; a final "." is kept (the reference only drops "./")
    if (c === '.' && i < comps.length - 1) continue;
    parts.push(c);
  }
  const body = parts.join('/');
  if (anchored) return `/${body}`;
  return body === '' ? '.' : body;
}

/** True when no component is empty, "." (except a lone "." name) or "..": the common case. */
function isAlreadyClean(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  let start = 0;
  for (let i = 0; i <= n; i++) {
    if (i < n && name.charCodeAt(i) !== 0x2f) continue;
    const len = i - start;
    if (len === 0 && !(i === 0 && n > 1)) return false; // "//", trailing '/' (a leading '/' is fine)
    if (len === 1 && name.charCodeAt(start) === 0x2e && n > 1) return false;
    if (len === 2 && name.charCodeAt(start) === 0x2e && name.charCodeAt(start + 1) === 0x2e) return false;
    start = i + 1;
  }
  return true;
}

/** Validates and normalises one received name: returns [name without leading '/', hadSlash]. */
function checkReceivedName(raw: string, relative: boolean): [string, boolean] {
  if (raw.length === 0) throw unsafePath(raw);
  const cleaned = cleanFileName(raw);
  if (cleaned === null) throw unsafePath(raw);
  let name = cleaned;
  let slash = false;
  if (name.charCodeAt(0) === 0x2f) {
    if (!relative) throw unsafePath(raw);
    slash = true;
    name = name.replace(/^\/+/, '');
    if (name === '') throw unsafePath(raw);
  }
  // A "." component survives cleaning only at the end ("a/."); only the root may be ".".
  if (name !== '.' && (name.endsWith('/.') || name.includes('\0'))) throw unsafePath(raw);
  return [name, slash];
}

/** Writes name[from..] as raw bytes. */
function writeLatin1(w: ProtocolWriter, s: string, from: number): void {
  if (s.length - from > 32) {
    w.bytes(Buffer.from(from ? s.slice(from) : s, 'latin1'));
    return;
  }
  for (let i = from; i < s.length; i++) w.u8(s.charCodeAt(i));
}

function wireName(e: FileEntry): string {
  return e.leadingSlash ? `/${e.name}` : e.name;
}

function dirnameOf(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

// ---------------------------------------------------------------------------------------------
// rdev packing for protocol 27 (a 32-bit dev_t with Linux's makedev layout)

function packRdev32(major: number, minor: number): number {
  return (((major & 0xfff) << 8) | (minor & 0xff) | ((minor & 0xfff00) << 12)) >>> 0;
}

function unpackRdev32(rdev: number): [number, number] {
  const major = (rdev >>> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  return [major, minor];
}

// ---------------------------------------------------------------------------------------------
// The "previous entry" registers (one set per direction, persisting across lists)

interface PrevState {
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

function freshPrev(): PrevState {
  return { mtime: 0, atime: 0, crtime: 0, mode: 0, dev: 0, rdev: 0, rdevMajor: 0, uid: 0, gid: 0, name: '' };
}

function commonPrefixLength(a: string, b: string, max: number): number {
  const n = Math.min(a.length, b.length, max);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function sendsRdev(opts: FlistOptions, e: FileEntry): boolean {
  return (opts.devices && isDevice(e)) || (opts.specials && isSpecial(e) && opts.protocol < 31);
}

// ---------------------------------------------------------------------------------------------
// Writer

export class FlistWriter {
  private readonly prev = freshPrev();
  private readonly uidsSeen = new Set<number>();
  private readonly gidsSeen = new Set<number>();
  /** proto >= 30 -H: group id -> first member (its arrival ndx is what later members send) */
  private readonly hlinkFirsts = new Map<number, FileEntry>();
  /** ndx_start of the list being written; taken from the first entry's arrival */
  private listStart = 0;
  private atListStart = true;
  private syntheticIno = 0;

  constructor(private readonly opts: FlistOptions) {}

  writeEntry(w: ProtocolWriter, e: FileEntry): void {
    const o = this.opts;
    const proto = o.protocol;
    const p = this.prev;
    if (this.atListStart) {
      this.listStart = e.arrival;
      this.atListStart = false;
    }
    const name = wireName(e);
    const dir = isDir(e);
    let x = this.initialFlags(e);

    if (e.mode === p.mode) x |= XMIT.SAME_MODE;
    else p.mode = e.mode;

    x |= this.rdevFlags(e);

    if (!o.owner || (e.uid === p.uid && p.name !== '')) x |= XMIT.SAME_UID;
    else {
      p.uid = e.uid;
      if (!o.numericIds && !this.uidsSeen.has(e.uid)) {
        this.uidsSeen.add(e.uid);
        if (o.incRecurse && e.userName) x |= XMIT.USER_NAME_FOLLOWS;
      }
    }
    if (!o.group || (e.gid === p.gid && p.name !== '')) x |= XMIT.SAME_GID;
    else {
      p.gid = e.gid;
      if (!o.numericIds && !this.gidsSeen.has(e.gid)) {
        this.gidsSeen.add(e.gid);
        if (o.incRecurse && e.groupName) x |= XMIT.GROUP_NAME_FOLLOWS;
      }
    }

    if (e.mtime === p.mtime) x |= XMIT.SAME_TIME;
    else p.mtime = e.mtime;
    if (e.mtimeNsec && proto >= 31) x |= XMIT.MOD_NSEC;
    const atime = e.atime ?? 0;
    if (o.atimes && !dir) {
      if (atime === p.atime) x |= XMIT.SAME_ATIME;
      else p.atime = atime;
    }
    const crtime = e.crtime ?? e.mtime;
    if (o.crtimes) {
      p.crtime = crtime;
      if (crtime === e.mtime) x |= XMIT.CRTIME_EQ_MTIME;
    }

    // Hard links.
    let firstHlink: FileEntry | undefined;
    let devIno: [number, number] | undefined;
    if (o.hardLinks && !dir) {
      if (proto >= 30) {
        if (e.hlinkGroup !== undefined) {
          firstHlink = this.hlinkFirsts.get(e.hlinkGroup);
          if (!firstHlink) {
            this.hlinkFirsts.set(e.hlinkGroup, e);
            x |= XMIT.HLINK_FIRST;
          }
          x |= XMIT.HLINKED;
        }
      } else {
        devIno = this.devInoFor(e);
        if (devIno) {
          if (devIno[0] + 1 === p.dev) {
            if (proto >= 28) x |= XMIT.SAME_DEV_pre30;
          } else p.dev = devIno[0] + 1;
          x |= XMIT.HLINKED;
        }
      }
    }

    const l1 = commonPrefixLength(name, p.name, 255);
    const l2 = name.length - l1;
    if (l1 > 0) x |= XMIT.SAME_NAME;
    if (l2 > 255) x |= XMIT.LONG_NAME;

    x = this.writeFlags(w, x, dir);
    if (x & XMIT.SAME_NAME) w.u8(l1);
    if (x & XMIT.LONG_NAME) this.varint30(w, l2);
    else w.u8(l2);
    writeLatin1(w, name, l1);
    p.name = name;

    if (firstHlink) {
      w.varint(firstHlink.arrival);
      if (firstHlink.arrival >= this.listStart) {
        // Abbreviated: the receiver copies the first member's attributes into its registers.
        this.adoptFirstHlink(firstHlink);
        return;
      }
    }

    this.writeAttributes(w, e, x, devIno);
  }

  private initialFlags(e: FileEntry): number {
    if (!isDir(e)) return 0;
    if (this.opts.protocol >= 30) {
      if (e.xflags & XMIT.NO_CONTENT_DIR) return e.xflags & (XMIT.TOP_DIR | XMIT.NO_CONTENT_DIR);
      return e.xflags & XMIT.TOP_DIR;
    }
    return e.xflags & XMIT.TOP_DIR;
  }

  private rdevFlags(e: FileEntry): number {
    const o = this.opts;
    const p = this.prev;
    const proto = o.protocol;
    let x = 0;
    if (o.devices && isDevice(e)) {
      if (proto < 28) {
        const rdev = packRdev32(e.rdevMajor, e.rdevMinor);
        if (rdev === p.rdev) x |= XMIT.SAME_RDEV_pre28;
        else p.rdev = rdev;
      } else {
        if (e.rdevMajor === p.rdevMajor) x |= XMIT.SAME_RDEV_MAJOR;
        else p.rdevMajor = e.rdevMajor;
        if (proto < 30 && e.rdevMinor <= 0xff) x |= XMIT.RDEV_MINOR_8_pre30;
      }
    } else if (o.specials && isSpecial(e) && proto < 31) {
      // Specials carry a dummy rdev before 31: "same" major and minor 0.
      if (proto < 28) x |= XMIT.SAME_RDEV_pre28;
      else {
        x |= XMIT.SAME_RDEV_MAJOR;
        if (proto < 30) x |= XMIT.RDEV_MINOR_8_pre30;
      }
    } else if (proto < 28) p.rdev = 0;
    return x;
  }

  /** proto < 30: the (dev, ino) pair sent for a hard-link-eligible entry, or undefined. */
  private devInoFor(e: FileEntry): [number, number] | undefined {
    if (e.dev !== undefined && e.ino !== undefined) {
      if (this.opts.protocol >= 28 || isRegular(e)) return [e.dev, e.ino];
      return undefined;
    }
    // proto 27 receivers expect dev/ino for every regular file: invent a unique pair.
    if (this.opts.protocol < 28 && isRegular(e)) return [0xfffffffe, 2 ** 40 + this.syntheticIno++];
    return undefined;
  }

  private adoptFirstHlink(first: FileEntry): void {
    const o = this.opts;
    const p = this.prev;
    p.mtime = first.mtime;
    p.mode = first.mode;
    if (o.atimes && !isDir(first)) p.atime = first.atime ?? 0;
    if (o.crtimes) p.crtime = first.crtime ?? first.mtime;
    if (o.owner) p.uid = first.uid;
    if (o.group) p.gid = first.gid;
    if (o.devices && isDevice(first)) p.rdevMajor = first.rdevMajor;
  }

  /** Writes the flags word per dialect; returns the flags as written (fillers included). */
  private writeFlags(w: ProtocolWriter, flags: number, dir: boolean): number {
    const proto = this.opts.protocol;
    let x = flags;
    if (this.opts.varintFlags) {
      w.varint(x || XMIT.EXTENDED_FLAGS);
    } else if (proto >= 28) {
      if (!x && !dir) x |= XMIT.TOP_DIR;
      if (x & 0xff00 || !x) {
        x |= XMIT.EXTENDED_FLAGS;
        w.u16(x);
      } else w.u8(x);
    } else {
      // proto 27: a dir with no low bits gets XMIT_LONG_NAME, so its name length is an int32.
      if (!(x & 0xff)) x |= dir ? XMIT.LONG_NAME : XMIT.TOP_DIR;
      w.u8(x);
    }
    return x;
  }

  private writeAttributes(w: ProtocolWriter, e: FileEntry, x: number, devIno: [number, number] | undefined): void {
    const o = this.opts;
    const proto = o.protocol;
    const p = this.prev;
    w.varlong30(this.wireSize(e), 3);
    if (!(x & XMIT.SAME_TIME)) {
      if (proto >= 30) w.varlong(e.mtime, 4);
      else w.i32(e.mtime);
    }
    if (x & XMIT.MOD_NSEC) w.varint(e.mtimeNsec);
    if (o.crtimes && !(x & XMIT.CRTIME_EQ_MTIME)) w.varlong(p.crtime, 4);
    if (!(x & XMIT.SAME_MODE)) w.i32(e.mode);
    if (o.atimes && !isDir(e) && !(x & XMIT.SAME_ATIME)) w.varlong(p.atime, 4);
    if (o.owner && !(x & XMIT.SAME_UID)) {
      this.writeId(w, e.uid);
      if (proto >= 30 && x & XMIT.USER_NAME_FOLLOWS) writeIdName(w, e.userName ?? '');
    }
    if (o.group && !(x & XMIT.SAME_GID)) {
      this.writeId(w, e.gid);
      if (proto >= 30 && x & XMIT.GROUP_NAME_FOLLOWS) writeIdName(w, e.groupName ?? '');
    }
    if (sendsRdev(o, e)) this.writeRdev(w, e, x);
    if (o.links && isSymlink(e)) {
      const target = Buffer.from(e.linkTarget ?? '', 'latin1');
      this.varint30(w, target.length);
      w.bytes(target);
    }
    if (devIno) {
      if (!(x & XMIT.SAME_DEV_pre30)) w.longint(devIno[0] + 1);
      w.longint(devIno[1]);
    }
    if (o.checksumLength && (isRegular(e) || proto < 28)) {
      const sum = Buffer.alloc(o.checksumLength);
      if (isRegular(e) && e.checksum) e.checksum.copy(sum, 0, 0, o.checksumLength);
      w.bytes(sum);
    }
  }

  private wireSize(e: FileEntry): number {
    if (isDevice(e)) return 0;
    if (isSymlink(e) && e.linkTarget !== undefined) return e.linkTarget.length;
    return e.size;
  }

  private writeId(w: ProtocolWriter, id: number): void {
    if (this.opts.protocol < 30) w.i32(id);
    else w.varint(id);
  }

  private writeRdev(w: ProtocolWriter, e: FileEntry, x: number): void {
    const proto = this.opts.protocol;
    const special = isSpecial(e);
    if (proto < 28) {
      if (!(x & XMIT.SAME_RDEV_pre28)) w.i32(this.prev.rdev);
      return;
    }
    if (!(x & XMIT.SAME_RDEV_MAJOR)) this.varint30(w, e.rdevMajor);
    const minor = special ? 0 : e.rdevMinor;
    if (proto >= 30) w.varint(minor);
    else if (x & XMIT.RDEV_MINOR_8_pre30) w.u8(minor);
    else w.i32(minor);
  }

  private varint30(w: ProtocolWriter, v: number): void {
    if (this.opts.protocol < 30) w.i32(v);
    else w.varint(v);
  }

  /** End marker of a list; the io_error rides on it only in the safe-flist dialects. */
  writeEnd(w: ProtocolWriter, ioError: number): void {
    const o = this.opts;
    const err = o.safeFlist ? ioError : 0;
    if (o.varintFlags) {
      w.varint(0);
      w.varint(err);
    } else if (err) {
      w.u16(XMIT.EXTENDED_FLAGS | XMIT.IO_ERROR_ENDLIST);
      w.varint(err);
    } else w.u8(0);
    this.atListStart = true;
  }

  writeIdLists(w: ProtocolWriter, users: Map<number, string>, groups: Map<number, string>): void {
    const o = this.opts;
    if (o.numericIds) return;
    if (o.owner) writeIdList(w, o.protocol, users, o.id0Names);
    if (o.group) writeIdList(w, o.protocol, groups, o.id0Names);
  }

  writeTrailingIoError(w: ProtocolWriter, ioError: number): void {
    w.i32(ioError);
  }
}

// ---------------------------------------------------------------------------------------------
// Reader

/** Flag bits a peer may use in this session's dialect (anything else is a protocol error). */
function allowedFlagMask(o: FlistOptions): number {
  const proto = o.protocol;
  if (proto < 28) return 0xff;
  let m = XMIT.TOP_DIR | XMIT.SAME_MODE | XMIT.SAME_UID | XMIT.SAME_GID | XMIT.SAME_NAME | XMIT.LONG_NAME | XMIT.SAME_TIME;
  m |= XMIT.SAME_RDEV_MAJOR;
  if (proto < 30) {
    m |= XMIT.RDEV_MINOR_8_pre30;
    if (o.hardLinks) m |= XMIT.HLINKED | XMIT.SAME_DEV_pre30;
    return m;
  }
  m |= XMIT.USER_NAME_FOLLOWS | XMIT.GROUP_NAME_FOLLOWS;
  if (o.hardLinks) m |= XMIT.HLINKED | XMIT.HLINK_FIRST;
  if (proto >= 31) m |= XMIT.MOD_NSEC;
  if (o.atimes) m |= XMIT.SAME_ATIME;
  if (o.crtimes && o.varintFlags) m |= XMIT.CRTIME_EQ_MTIME;
  return m;
}

function invalidFlags(flags: number): ProtocolError {
  return new ProtocolError(`Invalid flist flag: 0x${flags.toString(16)}`);
}

export class FlistReader {
  private readonly prev = freshPrev();
  private readonly flagMask: number;
  /** proto < 30 -H: "dev:ino" -> group number (a session-wide counter, like the reference) */
  private readonly devInoGroups = new Map<string, number>();

  constructor(private readonly opts: FlistOptions) {
    this.flagMask = allowedFlagMask(opts);
  }

  /**
   * Reads one list (the first list, or a sub-list after NDX_FLIST_OFFSET). Returns the entries in
   * arrival order and the io_error carried by the end marker. With inc-recursion pass `expectDir`
   * (the sub-list's directory name, '' for the first list): entries elsewhere are rejected.
   */
  async readList(
    r: ProtocolReader,
    ndxStart: number,
    lookupArrival: (arrivalNdx: number) => FileEntry | undefined,
    expectDir?: string,
  ): Promise<{ entries: FileEntry[]; ioError: number }> {
    const entries: FileEntry[] = [];
    for (;;) {
      const flags = await this.readFlags(r);
      if (flags.end) return { entries, ioError: flags.ioError & IOERR_VALID_MASK };
      const e = await this.readEntry(r, flags.xflags, ndxStart, entries, lookupArrival);
      if (expectDir !== undefined && dirnameOf(e.name) !== expectDir && !(e.name === '.' && expectDir === '')) {
        throw new ProtocolError(`ABORTING due to invalid path from sender: ${e.name}`, ExitCode.UNSUPPORTED);
      }
      entries.push(e);
    }
  }

  private async readFlags(r: ProtocolReader): Promise<{ end: boolean; xflags: number; ioError: number }> {
    const o = this.opts;
    let flags: number;
    if (o.varintFlags) {
      flags = await r.readVarint();
      if (flags === 0) return { end: true, xflags: 0, ioError: await r.readVarint() };
    } else {
      flags = await r.readU8();
      if (flags === 0) return { end: true, xflags: 0, ioError: 0 };
      if (o.protocol >= 28 && flags & XMIT.EXTENDED_FLAGS) flags |= (await r.readU8()) << 8;
      if (flags === (XMIT.EXTENDED_FLAGS | XMIT.IO_ERROR_ENDLIST)) {
        if (!o.safeFlist) throw invalidFlags(flags);
        return { end: true, xflags: 0, ioError: await r.readVarint() };
      }
    }
    if (o.protocol >= 28) flags &= ~XMIT.EXTENDED_FLAGS;
    if (flags & ~this.flagMask) throw invalidFlags(flags);
    if (o.protocol >= 30 && flags & XMIT.HLINK_FIRST && !(flags & XMIT.HLINKED)) throw invalidFlags(flags);
    if (o.protocol >= 30 && !this.namesFollowAllowed(flags)) throw invalidFlags(flags);
    if (o.protocol < 30 && o.protocol >= 28 && flags & XMIT.SAME_DEV_pre30 && !(flags & XMIT.HLINKED)) {
      throw invalidFlags(flags);
    }
    return { end: false, xflags: flags, ioError: 0 };
  }

  /** proto >= 30: a user/group name may only follow an id that is actually sent. */
  private namesFollowAllowed(x: number): boolean {
    const o = this.opts;
    if (x & XMIT.USER_NAME_FOLLOWS && (!o.owner || x & XMIT.SAME_UID)) return false;
    if (x & XMIT.GROUP_NAME_FOLLOWS && (!o.group || x & XMIT.SAME_GID)) return false;
    return true;
  }

  private varint30(r: ProtocolReader): number | Promise<number> {
    return this.opts.protocol < 30 ? r.readI32() : r.readVarint();
  }

  private async readName(r: ProtocolReader, x: number): Promise<string> {
    const p = this.prev;
    const l1 = x & XMIT.SAME_NAME ? await r.readU8() : 0;
    const l2 = x & XMIT.LONG_NAME ? await this.varint30(r) : await r.readU8();
    if (l1 > p.name.length) throw unsafePath(p.name);
    if (l2 < 0 || l1 + l2 > MAX_PATH_BYTES) throw unsafePath(p.name.slice(0, l1));
    const raw = p.name.slice(0, l1) + (await r.readBytes(l2)).toString('latin1');
    p.name = raw;
    return raw;
  }

  private async readEntry(
    r: ProtocolReader,
    xflags: number,
    ndxStart: number,
    entries: FileEntry[],
    lookupArrival: (arrivalNdx: number) => FileEntry | undefined,
  ): Promise<FileEntry> {
    const o = this.opts;
    const proto = o.protocol;
    const p = this.prev;
    const arrival = ndxStart + entries.length;
    const raw = await this.readName(r, xflags);
    const [name, leadingSlash] = checkReceivedName(raw, o.relative);
    const e: FileEntry = {
      name,
      mode: 0,
      size: 0,
      mtime: 0,
      mtimeNsec: 0,
      uid: 0,
      gid: 0,
      rdevMajor: 0,
      rdevMinor: 0,
      xflags,
      ndx: arrival,
      arrival,
    };
    if (leadingSlash) e.leadingSlash = true;

    if (proto >= 30 && xflags & XMIT.HLINKED && !(xflags & XMIT.HLINK_FIRST)) {
      const first = await this.readHlinkReference(r, arrival, ndxStart, entries, lookupArrival);
      e.hlinkGroup = first.ndx;
      if (first.entry) {
        this.copyFromFirstHlink(e, first.entry);
        this.checkShape(e);
        return e;
      }
    }

    await this.readAttributes(r, e);
    this.checkShape(e);

    if (o.hardLinks && !isDir(e)) {
      if (proto >= 30) {
        if (xflags & XMIT.HLINK_FIRST) e.hlinkGroup = arrival;
      } else if (xflags & XMIT.HLINKED || (proto < 28 && isRegular(e))) {
        // proto 27 has no HLINKED bit: every regular file carries dev/ino.
        e.xflags |= XMIT.HLINKED;
        if (!(xflags & XMIT.SAME_DEV_pre30)) p.dev = await r.readLongint();
        const ino = await r.readLongint();
        e.dev = p.dev - 1;
        e.ino = ino;
        e.hlinkGroup = this.groupForDevIno(p.dev, ino);
      }
    }

    if (o.checksumLength && (isRegular(e) || proto < 28)) {
      const sum = Buffer.from(await r.readBytes(o.checksumLength));
      if (isRegular(e)) e.checksum = sum;
    }
    return e;
  }

  private groupForDevIno(devPlus1: number, ino: number): number {
    const key = `${devPlus1}:${ino}`;
    let g = this.devInoGroups.get(key);
    if (g === undefined) {
      g = this.devInoGroups.size;
      this.devInoGroups.set(key, g);
    }
    return g;
  }

  /**
   * proto >= 30: varint first_hlink_ndx (an ARRIVAL index). It must point before this entry; when it
   * lies in this list the entry is abbreviated (returns the first member to copy from).
   */
  private async readHlinkReference(
    r: ProtocolReader,
    arrival: number,
    ndxStart: number,
    entries: FileEntry[],
    lookupArrival: (arrivalNdx: number) => FileEntry | undefined,
  ): Promise<{ ndx: number; entry?: FileEntry }> {
    const ndx = await r.readVarint();
    if (ndx < 0 || ndx >= arrival) {
      throw new ProtocolError(`hard-link reference out of range: ${ndx} (${arrival})`);
    }
    const first = ndx >= ndxStart ? entries[ndx - ndxStart] : lookupArrival(ndx);
    if (first && !(first.xflags & XMIT.HLINK_FIRST)) {
      throw new ProtocolError(`hard-link reference to an entry that is not a group leader: ${ndx}`);
    }
    if (ndx >= ndxStart) return { ndx, entry: first };
    return { ndx };
  }

  /** An abbreviated hard-link entry: attributes (and the reader's registers) come from the first. */
  private copyFromFirstHlink(e: FileEntry, first: FileEntry): void {
    const o = this.opts;
    const p = this.prev;
    e.size = first.size;
    e.mtime = p.mtime = first.mtime;
    e.mtimeNsec = first.mtimeNsec;
    e.mode = p.mode = first.mode;
    if (o.atimes && !isDir(first)) e.atime = p.atime = first.atime ?? 0;
    if (o.crtimes) e.crtime = p.crtime = first.crtime ?? first.mtime;
    if (o.owner) e.uid = p.uid = first.uid;
    if (o.group) e.gid = p.gid = first.gid;
    if (isDevice(first)) {
      e.rdevMajor = first.rdevMajor;
      e.rdevMinor = first.rdevMinor;
      if (o.devices) p.rdevMajor = first.rdevMajor;
    }
    if (first.linkTarget !== undefined) e.linkTarget = first.linkTarget;
    if (first.checksum) e.checksum = first.checksum;
  }

  private async readAttributes(r: ProtocolReader, e: FileEntry): Promise<void> {
    const o = this.opts;
    const proto = o.protocol;
    const p = this.prev;
    const x = e.xflags;
    e.size = await r.readVarlong30(3);
    if (e.size < 0) throw new ProtocolError('Offset underflow: file-length is negative', ExitCode.UNSUPPORTED);
    if (!(x & XMIT.SAME_TIME)) {
      // Before 30 the time is an int32 that modern receivers read as unsigned (1970-2106).
      p.mtime = proto >= 30 ? await r.readVarlong(4) : await r.readU32();
    }
    e.mtime = p.mtime;
    if (x & XMIT.MOD_NSEC) {
      const nsec = await r.readVarint();
      if (nsec < 0 || nsec > MAX_WIRE_NSEC) throw new ProtocolError(`modtime_nsec out of range: ${nsec}`);
      e.mtimeNsec = nsec;
    }
    if (o.crtimes) {
      p.crtime = x & XMIT.CRTIME_EQ_MTIME ? p.mtime : await r.readVarlong(4);
      e.crtime = p.crtime;
    }
    if (!(x & XMIT.SAME_MODE)) {
      const mode = await r.readI32();
      if (mode < 0 || mode > 0o177777 || (!isKnownFileType(mode) && !(mode === 0 && o.missingArgs))) {
        throw new ProtocolError(`invalid file mode 0${(mode >>> 0).toString(8)} for ${e.name}`);
      }
      p.mode = mode;
    }
    e.mode = p.mode;
    const dir = isDir(e);
    if (o.atimes && !dir) {
      if (!(x & XMIT.SAME_ATIME)) p.atime = await r.readVarlong(4);
      e.atime = p.atime;
    }
    await this.readOwnership(r, e);
    await this.readRdev(r, e);
    if (isSymlink(e) && o.links) {
      const len = await this.varint30(r);
      if (len < 0 || len > MAX_PATH_BYTES) throw new ProtocolError(`overflow: linkname_len=${len}`);
      e.linkTarget = (await r.readBytes(len)).toString('latin1');
    }
  }

  private async readOwnership(r: ProtocolReader, e: FileEntry): Promise<void> {
    const o = this.opts;
    const p = this.prev;
    const x = e.xflags;
    const names = o.protocol >= 30;
    if (o.owner && !(x & XMIT.SAME_UID)) {
      p.uid = (await this.readId(r)) >>> 0;
      if (names && x & XMIT.USER_NAME_FOLLOWS) {
        const n = await readIdName(r);
        if (n) e.userName = n;
      }
    }
    if (o.group && !(x & XMIT.SAME_GID)) {
      p.gid = (await this.readId(r)) >>> 0;
      if (names && x & XMIT.GROUP_NAME_FOLLOWS) {
        const n = await readIdName(r);
        if (n) e.groupName = n;
      }
    }
    if (o.owner) e.uid = p.uid;
    if (o.group) e.gid = p.gid;
  }

  private readId(r: ProtocolReader): number | Promise<number> {
    return this.opts.protocol < 30 ? r.readI32() : r.readVarint();
  }

  private async readRdev(r: ProtocolReader, e: FileEntry): Promise<void> {
    const o = this.opts;
    const proto = o.protocol;
    const p = this.prev;
    const x = e.xflags;
    const device = isDevice(e);
    if (sendsRdev(o, e)) {
      let major: number;
      let minor: number;
      if (proto < 28) {
        if (!(x & XMIT.SAME_RDEV_pre28)) p.rdev = (await r.readI32()) >>> 0;
        [major, minor] = unpackRdev32(p.rdev);
      } else {
        if (!(x & XMIT.SAME_RDEV_MAJOR)) p.rdevMajor = (await this.varint30(r)) >>> 0;
        major = p.rdevMajor;
        if (proto >= 30) minor = (await r.readVarint()) >>> 0;
        else if (x & XMIT.RDEV_MINOR_8_pre30) minor = await r.readU8();
        else minor = (await r.readI32()) >>> 0;
      }
      if (device) {
        e.rdevMajor = major;
        e.rdevMinor = minor;
      }
      e.size = 0;
    } else if (device) {
      e.size = 0;
    } else if (proto < 28) {
      p.rdev = 0;
    }
  }

  /** Shape checks that need the mode: the root '.' must be a dir, dirs are never hard-linked. */
  private checkShape(e: FileEntry): void {
    if (e.name === '.' && !isDir(e)) {
      throw new ProtocolError(`ERROR: rejecting non-directory transfer-root entry: ${e.name}`);
    }
    if (isDir(e) && e.xflags & XMIT.HLINKED && this.opts.protocol >= 28) {
      throw invalidFlags(e.xflags);
    }
  }

  readIdLists(r: ProtocolReader): Promise<{ users: Map<number, string>; groups: Map<number, string> }> {
    return this.readBothIdLists(r);
  }

  private async readBothIdLists(r: ProtocolReader): Promise<{ users: Map<number, string>; groups: Map<number, string> }> {
    const o = this.opts;
    const users = o.owner && !o.numericIds ? await readIdList(r, o.protocol, o.id0Names) : new Map<number, string>();
    const groups = o.group && !o.numericIds ? await readIdList(r, o.protocol, o.id0Names) : new Map<number, string>();
    return { users, groups };
  }

  async readTrailingIoError(r: ProtocolReader): Promise<number> {
    return (await r.readI32()) & IOERR_VALID_MASK;
  }
}

// ---------------------------------------------------------------------------------------------
// Sorting (rsync's f_name_cmp) and duplicate removal

const enum Seg {
  Dir,
  Slash,
  Base,
  Trailing,
}
const ITEM = 0;
const PATH = 1;

/** One side of the comparison: walks dirname, "/", basename, ("/" for dirs). */
class NameCursor {
  s = '';
  i = 0;
  seg: Seg = Seg.Base;
  type = ITEM;

  constructor(
    private readonly dir: string | null,
    private readonly base: string,
    private readonly isDir: boolean,
    private readonly tPath: number,
  ) {
    if (dir === null) this.enterBase();
    else {
      this.type = tPath;
      this.seg = Seg.Dir;
      this.s = dir;
    }
  }

  enterBase(): void {
    this.type = this.isDir ? this.tPath : ITEM;
    this.i = 0;
    if (this.type === PATH && this.base === '.') {
      // proto >= 29: the root dir "." sorts before everything
      this.type = ITEM;
      this.seg = Seg.Trailing;
      this.s = '';
    } else {
      this.seg = Seg.Base;
      this.s = this.base;
    }
  }

  get atEnd(): boolean {
    return this.i >= this.s.length;
  }

  get char(): number {
    return this.i < this.s.length ? this.s.charCodeAt(this.i) : 0;
  }
}

function splitName(name: string): [string | null, string] {
  const i = name.lastIndexOf('/');
  return i < 0 ? [null, name] : [name.slice(0, i), name.slice(i + 1)];
}

function compareSplit(
  d1: string | null, b1: string, dir1: boolean,
  d2: string | null, b2: string, dir2: boolean,
  protocol: number,
): number {
  const tPath = protocol >= 29 ? PATH : ITEM;
  if (d1 !== null && d1 === d2) d1 = d2 = null;
  const c1 = new NameCursor(d1, b1, dir1, tPath);
  const c2 = new NameCursor(d2, b2, dir2, tPath);
  if (c1.type !== c2.type) return c1.type === PATH ? 1 : -1;
  for (;;) {
    if (c1.atEnd) {
      switch (c1.seg) {
        case Seg.Dir:
          c1.seg = Seg.Slash;
          c1.s = '/';
          c1.i = 0;
          break;
        case Seg.Slash:
          c1.enterBase();
          break;
        case Seg.Base:
          c1.seg = Seg.Trailing;
          if (c1.type === PATH) {
            c1.s = '/';
            c1.i = 0;
            break;
          }
          c1.type = ITEM;
          break;
        case Seg.Trailing:
          c1.type = ITEM;
          break;
      }
      if (!c2.atEnd && c1.type !== c2.type) return c1.type === PATH ? 1 : -1;
    }
    if (c2.atEnd) {
      switch (c2.seg) {
        case Seg.Dir:
          c2.seg = Seg.Slash;
          c2.s = '/';
          c2.i = 0;
          break;
        case Seg.Slash:
          c2.enterBase();
          break;
        case Seg.Base:
          c2.seg = Seg.Trailing;
          if (c2.type === PATH) {
            c2.s = '/';
            c2.i = 0;
            break;
          }
          if (c1.atEnd) return 0;
          c2.type = ITEM;
          break;
        case Seg.Trailing:
          if (c1.atEnd) return 0;
          c2.type = ITEM;
          break;
      }
      if (c1.type !== c2.type) return c1.type === PATH ? 1 : -1;
    }
    const dif = c1.char - c2.char;
    c1.i++;
    c2.i++;
    if (dif !== 0) return dif;
  }
}

/** rsync's f_name_cmp: bytewise before protocol 29; path-component order (dirs after files) from 29. */
export function compareFileNames(a: FileEntry, b: FileEntry, protocol: number): number {
  const [d1, b1] = splitName(wireName(a));
  const [d2, b2] = splitName(wireName(b));
  return compareSplit(d1, b1, isDir(a), d2, b2, isDir(b), protocol);
}

/**
 * A string whose plain (char code) order equals f_name_cmp's order, so sorting needs no per-pair
 * state machine. Proto >= 29: every path component is prefixed by a type char (\x01 = the final
 * non-directory name, \x02 = a directory / path component) and directory components end in '/';
 * type chars only ever meet type chars because they always follow a '/' (or start the key).
 * The root "." is an empty item. Proto < 29: the name itself.
 */
export function fileNameSortKey(e: FileEntry, protocol: number): string {
  const name = wireName(e);
  if (protocol < 29) return name;
  const dir = isDir(e);
  let key = '';
  let start = 0;
  for (;;) {
    const slash = name.indexOf('/', start);
    if (slash < 0) break;
    key += `\x02${name.slice(start, slash)}/`;
    start = slash + 1;
  }
  const base = name.slice(start);
  if (!dir) return `${key}\x01${base}`;
  if (base === '.') return `${key}\x01`;
  return `${key}\x02${base}/`;
}

/**
 * Sorts a list (stable), assigns e.ndx = ndxStart + position, and deactivates duplicates: the first
 * of equal names is kept, except that a directory wins over a non-directory of the same name.
 */
export function sortFileList(entries: FileEntry[], protocol: number, ndxStart: number): FileEntry[] {
  const items = entries.map((e) => ({ e, key: fileNameSortKey(e, protocol) }));
  items.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  const sorted = items.map((it) => it.e);
  const kept = new Map<string, FileEntry>();
  sorted.forEach((e, i) => {
    e.ndx = ndxStart + i;
    if (e.inactive) return;
    const key = wireName(e);
    const other = kept.get(key);
    if (!other) {
      kept.set(key, e);
      return;
    }
    if (isDir(e) && !isDir(other)) {
      other.inactive = true;
      kept.set(key, e);
      return;
    }
    if (isDir(e) && isDir(other)) mergeDuplicateDirFlags(other, e);
    e.inactive = true;
  });
  return sorted;
}

/** Two entries for one directory: it is a top dir if either says so, a content dir if either is. */
function mergeDuplicateDirFlags(keep: FileEntry, drop: FileEntry): void {
  keep.xflags |= drop.xflags & XMIT.TOP_DIR;
  if (!(drop.xflags & XMIT.NO_CONTENT_DIR)) keep.xflags &= ~XMIT.NO_CONTENT_DIR;
}

