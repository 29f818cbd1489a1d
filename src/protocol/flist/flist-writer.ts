/**
 * Writing file lists (rsync's flist.c send_file_entry / write_end_of_flist, protocols 27-32):
 * per-entry encoding with the "same as previous" compression, end markers and id lists.
 */
import type { ProtocolWriter } from '../output.js';
import { writeIdList, writeIdName } from '../idlist.js';
import { isDevice, isDir, isRegular, isSpecial, isSymlink, wireName, type FileEntry, type FlistOptions } from './entry.js';
import { XMIT, freshPrev, packRdev32, sendsRdev } from './xmit.js';

/** Writes name[from..] as raw bytes. */
function writeLatin1(w: ProtocolWriter, s: string, from: number): void {
  if (s.length - from > 32) {
    w.bytes(Buffer.from(from ? s.slice(from) : s, 'latin1'));
    return;
  }
  for (let i = from; i < s.length; i++) w.u8(s.charCodeAt(i));
}

function commonPrefixLength(a: string, b: string, max: number): number {
  const n = Math.min(a.length, b.length, max);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

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

