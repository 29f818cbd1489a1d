/**
 * Reading file lists (rsync's flist.c recv_file_entry / recv_file_list, protocols 27-32): every
 * flag, length and id checked against the session's dialect before use.
 */
import { ProtocolError, ExitCode, IOERR_MASK } from '../errors.js';
import type { ProtocolReader } from '../input.js';
import { readIdList, readIdName } from '../idlist.js';
import { isKnownFileType } from '../file-mode.js';
import { MAX_PATH_BYTES, MAX_WIRE_NSEC, isDevice, isDir, isRegular, isSymlink, type FileEntry, type FlistOptions } from './entry.js';
import { checkReceivedName, unsafePath } from './names.js';
import { XMIT, freshPrev, sendsRdev, unpackRdev32 } from './xmit.js';

function dirnameOf(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

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

/** Told the size of what a list is about to hold, so the owner can bound it (it may throw). */
export interface FlistCharges {
  entry(nameLength: number): void;
  idName(nameLength: number): void;
}

export class FlistReader {
  private readonly prev = freshPrev();
  charges: FlistCharges = { entry: () => undefined, idName: () => undefined };
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
      if (flags.end) return { entries, ioError: flags.ioError & IOERR_MASK };
      const e = await this.readEntry(r, flags.xflags, ndxStart, entries, lookupArrival);
      if (expectDir !== undefined && dirnameOf(e.name) !== expectDir && !(e.name === '.' && expectDir === '')) {
        throw new ProtocolError(`ABORTING due to invalid path from sender: ${e.name}`, ExitCode.UNSUPPORTED);
      }
      this.charges.entry(e.name.length);
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
    const charge = this.charges.idName;
    const users = o.owner && !o.numericIds ? await readIdList(r, o.protocol, o.id0Names, charge) : new Map<number, string>();
    const groups = o.group && !o.numericIds ? await readIdList(r, o.protocol, o.id0Names, charge) : new Map<number, string>();
    return { users, groups };
  }

  async readTrailingIoError(r: ProtocolReader): Promise<number> {
    return (await r.readI32()) & IOERR_MASK;
  }
}
