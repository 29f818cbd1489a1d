/**
 * generator.c itemize() and rsync.c set_file_attrs() / dest_mode(): what differs between a list
 * entry and what is on disk, the itemize record that tells the client, and the attributes set.
 */
import { isDir, isRegular, isSymlink, type FileEntry } from '../../protocol/flist/entry.js';
import { SandboxError, type EntryStat } from '../../sandbox/sandbox.js';
import { type Attrs } from '../../sandbox/attrs.js';
import { localIds } from '../../sandbox/idmap.js';
import { ITEM, isSignificant } from '../../protocol/itemize.js';
import { sendInfo } from '../messages.js';
import { parseIdMap } from '../../policy/idmap-rules.js';
import { wildmatch } from '../wildmatch.js';
import { MsgTag } from '../../protocol/mux.js';
import type { ReceiverState } from './state.js';

/** The server's umask, read once at start (process.umask() with no argument sets and resets it). */
export const PROCESS_UMASK = process.umask();
/** ACCESSPERMS & ~umask (the reference's dflt_perms): new files and dirs without -p. */
const DFLT_PERMS = 0o777 & ~PROCESS_UMASK;
/** generator.c ITEM_MATCHED: internal to itemize() (bits >= 16 never go on the wire). */
export const ITEM_MATCHED = 1 << 18;

/** uidlist.c parse_name_map() for --usermap / --groupmap (--chown arrives as both). */
export function setupIdMaps(s: ReceiverState): void {
  const warn = (text: string): void => s.ctx.writer.message(MsgTag.ERROR, Buffer.from(text, 'latin1'));
  const ids = localIds();
  if (s.opts.usermap !== undefined) s.uidRules = parseIdMap(s.opts.usermap, 'usermap', ids.uidOf, wildmatch, warn);
  if (s.opts.groupmap !== undefined) s.gidRules = parseIdMap(s.opts.groupmap, 'groupmap', ids.gidOf, wildmatch, warn);
}

export class Attributes {
  constructor(private readonly s: ReceiverState) {}

  itemize(e: FileEntry, iflags: number, xname?: string): void {
    this.itemizeNdx(e.ndx, iflags, xname);
  }

  /** generator.c itemize(): the record goes out when significant, with -vv or -ii, or with a name. */
  itemizeNdx(ndx: number, iflags: number, xname?: string): void {
    if (this.s.protocol < 29) return;
    iflags &= 0xffff;
    if (xname !== undefined) iflags |= ITEM.XNAME_FOLLOWS;
    if (!isSignificant(iflags) && this.s.infoName < 2 && this.s.hasI < 2 && !xname) return;
    const w = this.s.ctx.writer;
    w.ndx(ndx);
    w.u16(iflags);
    if (xname !== undefined) w.vstring(Buffer.from(xname, 'latin1'));
  }

  /**
   * The attribute part of generator.c itemize() for an item compared with `st` (null: the item
   * is new). `iflags` carries the caller's TRANSFER/LOCAL_CHANGE/... bits.
   */
  itemAttrs(e: FileEntry, st: EntryStat | null, iflags: number, xname?: string): number {
    if (!st) return iflags | ITEM.IS_NEW;
    const o = this.s.opts;
    const link = isSymlink(e);
    const keepTime = !o.times ? false : isDir(e) ? !o.omitDirTimes : link ? !o.omitLinkTimes : true;
    if (isRegular(e) && e.size !== st.size) iflags |= ITEM.REPORT_SIZE;
    if (keepTime) {
      if (!this.sameMtime(e, st)) iflags |= ITEM.REPORT_TIME;
    } else if (iflags & (ITEM.TRANSFER | ITEM.LOCAL_CHANGE) && !(iflags & ITEM_MATCHED) && (!(iflags & ITEM.XNAME_FOLLOWS) || xname)) {
      iflags |= ITEM.REPORT_TIME;
    }
    if (!link && this.atimeWanted(e, link) && (e.atime ?? 0) !== st.atimeSec) iflags |= ITEM.REPORT_ATIME;
    if (!link) {
      if (o.perms) {
        if ((st.mode & 0o7777) !== (e.mode & 0o7777)) iflags |= ITEM.REPORT_PERMS;
      } else if (o.executability && (st.mode & 0o111 ? 1 : 0) !== (e.mode & 0o111 ? 1 : 0)) {
        iflags |= ITEM.REPORT_PERMS;
      }
    }
    return iflags | this.ownerChanges(e, st);
  }

  /** What set_file_attrs() would change on an existing item (0: nothing; its "updated"). */
  attrChanges(e: FileEntry, st: EntryStat, isLink: boolean): number {
    let flags = 0;
    if (this.timesWanted(e, isLink) && !this.sameMtime(e, st)) flags |= ITEM.REPORT_TIME;
    if (this.atimeWanted(e, isLink) && (e.atime ?? 0) !== st.atimeSec) flags |= ITEM.REPORT_ATIME;
    if (!isLink) {
      const want = this.s.opts.perms ? e.mode & 0o7777 : this.destMode(e.mode, st.mode, true, isRegular(e)) & 0o7777;
      if ((st.mode & 0o7777) !== want) flags |= ITEM.REPORT_PERMS;
    }
    return flags | this.ownerChanges(e, st);
  }

  /**
   * set_file_attrs() on an unchanged item: what it updates. With --checksum the reference
   * compares times exactly (ATTRS_ACCURATE_TIME), so a protocol without nanoseconds resets them.
   */
  updateNeeded(e: FileEntry, st: EntryStat, isLink: boolean): number {
    let changes = this.attrChanges(e, st, isLink);
    if (this.s.opts.checksum && this.timesWanted(e, isLink) && (st.mtimeSec !== e.mtime || st.mtimeNsec !== e.mtimeNsec)) {
      changes |= ITEM.REPORT_TIME;
    }
    return changes;
  }

  /** generator.c unchanged_attrs(): times (even for dirs), perms/-E, ownership. */
  unchangedAttrs(e: FileEntry, st: EntryStat): boolean {
    const o = this.s.opts;
    if (isSymlink(e)) {
      if (o.times && !o.omitLinkTimes && !this.sameMtime(e, st)) return false;
    } else {
      if (o.times && !this.sameMtime(e, st)) return false;
      if (o.perms ? (st.mode & 0o7777) !== (e.mode & 0o7777) : o.executability && (st.mode & 0o111 ? 1 : 0) !== (e.mode & 0o111 ? 1 : 0)) return false;
    }
    return this.ownerChanges(e, st) === 0;
  }

  /** rsync.c dest_mode(): the permissions a file gets without -p (existing: keep them, -E tweaks x). */
  destMode(flistMode: number, stMode: number, exists: boolean, regular: boolean): number {
    if (!exists) return flistMode & (~0o7777 | DFLT_PERMS);
    let mode = (flistMode & ~0o7777) | (stMode & 0o7777);
    if (this.s.opts.executability && regular) {
      if (!(flistMode & 0o111)) mode &= ~0o111;
      else if (!(stMode & 0o111)) mode |= (mode & 0o444) >> 2;
    }
    return mode;
  }

  /** The mode a regular file gets: the sender's with -p, else dest_mode() against `st`. */
  fileMode(e: FileEntry, st: EntryStat | null): number {
    return this.s.opts.perms ? e.mode : this.destMode(e.mode, st ? st.mode : 0, st !== null, true);
  }

  /** Whether set_file_attrs() has anything to do on a freshly made directory. */
  newDirAttrsDiffer(e: FileEntry): boolean {
    const o = this.s.opts;
    if (o.times && !o.omitDirTimes) return true;
    if (o.perms && (e.mode & 0o7777) !== (e.mode & 0o777 & DFLT_PERMS)) return true;
    return (o.owner || o.group) && this.s.isRoot;
  }

  /** set_file_attrs() with ATTRS_REPORT at -vv: "name" when something changed, else "name is uptodate". */
  reportAttrs(name: string, updated: boolean): void {
    if (this.s.infoName >= 2 && this.maybeAttrsReport) sendInfo(this.s.ctx, `${name}${updated ? '' : ' is uptodate'}\n`);
  }

  /** maybe_ATTRS_REPORT of a server generator: only when the client does not itemize (or proto < 29). */
  get maybeAttrsReport(): boolean {
    return this.s.protocol < 29 || this.s.hasI === 0;
  }

  /** rsync's same_time: whole seconds, unless --modify-window is negative (then also ns) or wider. */
  sameMtime(e: FileEntry, st: EntryStat): boolean {
    return this.sameTime(st.mtimeSec, st.mtimeNsec, e.mtime, e.mtimeNsec);
  }

  sameTime(aSec: number, aNsec: number, bSec: number, bNsec: number): boolean {
    const win = this.s.opts.modifyWindow;
    if (win === 0) return aSec === bSec;
    if (win < 0) return aSec === bSec && aNsec === bNsec;
    return Math.abs(aSec - bSec) <= win;
  }

  /**
   * set_file_attrs() on an existing item (`st`: only what differs is changed, so e.g. an mtime
   * that matches to the second keeps its nanoseconds) or a freshly made one (no `st`).
   */
  applyAttrs(dest: string, e: FileEntry, isLink: boolean, mode?: number, st?: EntryStat): void {
    const attrs = this.attrsFor(e, isLink, false);
    if (!isLink && attrs.mode === undefined && this.s.opts.executability) {
      const cur = st ?? this.s.lstatQuiet(dest);
      if (cur) attrs.mode = (mode ?? this.destMode(e.mode, cur.mode, true, isRegular(e))) & 0o7777;
    }
    if (st) {
      const accurate = this.s.opts.checksum; // maybe_ATTRS_ACCURATE_TIME
      const same = accurate ? st.mtimeSec === e.mtime && st.mtimeNsec === e.mtimeNsec : this.sameMtime(e, st);
      if (same) delete attrs.mtime;
      if (!accurate && attrs.atime !== undefined && attrs.atime.sec === st.atimeSec) delete attrs.atime;
      if (attrs.mode !== undefined && (st.mode & 0o7777) === attrs.mode) delete attrs.mode;
      if (attrs.uid === st.uid) delete attrs.uid;
      if (attrs.gid === st.gid) delete attrs.gid;
    }
    this.s.fs.setAttrs(dest, attrs, { isSymlink: isLink });
  }

  attrsFor(e: FileEntry, isLink: boolean, isNew: boolean): Attrs {
    const o = this.s.opts;
    const attrs: Attrs = {};
    if (!isLink) {
      if (o.perms) attrs.mode = e.mode & 0o7777;
      else if (isNew) attrs.mode = e.mode & 0o777 & DFLT_PERMS;
    }
    if (this.timesWanted(e, isLink)) attrs.mtime = { sec: e.mtime, nsec: e.mtimeNsec };
    // rsync.c set_file_attrs(): -U sets the sender's atime (whole seconds), never on directories.
    if (this.atimeWanted(e, isLink)) attrs.atime = { sec: e.atime ?? 0, nsec: 0 };
    if (this.s.ctx.grant.limits.allowChown) {
      if (o.owner && this.s.isRoot) attrs.uid = this.mappedUid(e);
      if (o.group && this.canSetGroup(this.mappedGid(e))) attrs.gid = this.mappedGid(e);
    }
    return attrs;
  }

  /** Directory attributes last, deepest first, once everything below them is written. */
  fixDirectories(dirs: readonly FileEntry[], isNew: (e: FileEntry) => boolean): void {
    if (this.s.opts.dryRun) return;
    for (let i = dirs.length - 1; i >= 0; i--) {
      const e = dirs[i]!;
      const dest = this.s.destOf(e);
      try {
        const made = isNew(e);
        const attrs = this.attrsFor(e, false, made);
        if (attrs.mode === undefined && made) attrs.mode = e.mode & 0o777 & DFLT_PERMS;
        if (!made) {
          // set_file_attrs(): a time equal to the second (or within --modify-window) is left alone.
          const st = this.s.lstatQuiet(dest);
          if (st && this.sameMtime(e, st)) delete attrs.mtime;
        }
        this.s.fs.setAttrs(dest, attrs);
      } catch (err) {
        if (err instanceof SandboxError) this.s.reportEntryError(e, err);
        else throw err;
      }
    }
  }

  private timesWanted(e: FileEntry, isLink: boolean): boolean {
    const o = this.s.opts;
    return o.times && !(isLink && o.omitLinkTimes) && !(isDir(e) && o.omitDirTimes);
  }

  private atimeWanted(e: FileEntry, isLink: boolean): boolean {
    const o = this.s.opts;
    return o.atimes > 0 && !isDir(e) && !(isLink && o.omitLinkTimes);
  }

  private ownerChanges(e: FileEntry, st: EntryStat): number {
    const o = this.s.opts;
    let flags = 0;
    if (o.owner && this.s.isRoot && st.uid !== this.mappedUid(e)) flags |= ITEM.REPORT_OWNER;
    if (o.group && this.canSetGroup(this.mappedGid(e)) && st.gid !== this.mappedGid(e)) flags |= ITEM.REPORT_GROUP;
    return flags;
  }

  /** The group may be set: root, or (like FLAG_SKIP_GROUP) a group the server user is in. */
  private canSetGroup(gid: number): boolean {
    if (this.s.isRoot) return true;
    try {
      return gid === process.getgid?.() || (process.getgroups?.() ?? []).includes(gid);
    } catch {
      return false;
    }
  }

  /** uidlist.c recv_add_id(): the first --usermap rule that matches, else the local name's id. */
  private mappedUid(e: FileEntry): number {
    const name = this.s.opts.numericIds ? undefined : (e.userName ?? this.s.userNames.get(e.uid) ?? (e.uid === 0 ? 'root' : undefined));
    const ruled = this.s.uidRules?.map(e.uid, name ?? '');
    if (ruled !== undefined) return ruled;
    return name && e.uid !== 0 ? (localIds().uidOf(name) ?? e.uid) : e.uid;
  }

  private mappedGid(e: FileEntry): number {
    const name = this.s.opts.numericIds ? undefined : (e.groupName ?? this.s.groupNames.get(e.gid) ?? (e.gid === 0 ? 'root' : undefined));
    const ruled = this.s.gidRules?.map(e.gid, name ?? '');
    if (ruled !== undefined) return ruled;
    return name && e.gid !== 0 ? (localIds().gidOf(name) ?? e.gid) : e.gid;
  }
}
