/**
 * The file lists a sending server writes (the send side of rsync's flist.c: send_file_list,
 * send_extra_file_list) and the lists still active, which the client's requests index into.
 *
 * With incremental recursion (CF_INC_RECURSE) the first list holds the args and the contents of
 * `dir/` args; every other directory's children follow as a sub-list (NDX_FLIST_OFFSET - d),
 * depth-first, built only when it is about to be sent (walk.ts). Lists the client has finished
 * (its per-list NDX_DONE) are dropped, so memory stays flat however large the tree is.
 */
import { digestLength } from '../../protocol/checksum.js';
import { CF } from '../../protocol/compat.js';
import { isDir, isRegular, isSymlink } from '../../protocol/flist/entry.js';
import { sortFileList } from '../../protocol/flist/flist-sort.js';
import { FlistWriter } from '../../protocol/flist/flist-writer.js';
import { MsgTag } from '../../protocol/mux.js';
import { NDX_FLIST_EOF, NDX_FLIST_OFFSET } from '../../protocol/ndx.js';
import { localIds } from '../../sandbox/idmap.js';
import type { ServerOptions } from '../../policy/server-options.js';
import { flistOptionsFor, type SessionContext } from '../context.js';
import { fileChecksum, READ_CHUNK } from '../file-hash.js';
import { physOf, type DirNode, type SEntry } from './entry.js';
import type { SenderWalker } from './walk.js';
import { entryOverhead, listBytes } from '../budget.js';

/** rsync's MIN_FILECNT_LOOKAHEAD: unfinished files the client should always have listed. */
const MIN_FILECNT_LOOKAHEAD = 1000;
/** rsync's MAX_FILECNT_LOOKAHEAD: how far ahead we list while the client is quiet. */
const MAX_FILECNT_LOOKAHEAD = 2500;

/** One file list sent to the client: the first list, or (incremental recursion) a directory's. */
interface SendList {
  ndxStart: number;
  /** Sorted; entries[i].ndx === ndxStart + i (duplicates stay, so indexes match the client's). */
  entries: SEntry[];
  /** The directory a sub-list belongs to (ndx_start - 1 names it in requests). */
  parent: SEntry | null;
}

export class SendLists {
  /** NDX_FLIST_EOF has been sent (always, without incremental recursion). */
  flistEof = false;
  /** Bytes of the listed files and symlinks (the stats' total size). */
  totalSize = 0;
  private readonly opts: ServerOptions;
  private readonly protocol: number;
  private readonly flw: FlistWriter;
  /** Active lists, oldest first (one list without incremental recursion). */
  private readonly lists: SendList[] = [];
  private nextNdxStart = 0;
  /** Entries in active lists (rsync's file_total - file_old_total). */
  private activeFiles = 0;
  private readonly hlinkLeaders = new Map<string, number>();
  private readonly userNames = new Map<number, string | null>();
  private readonly groupNames = new Map<number, string | null>();
  private readonly ids = localIds();
  /** --checksum's read buffer, made on first use. */
  private readBuffer: Buffer | undefined;
  private lastMemLog = 0;

  constructor(
    private readonly ctx: SessionContext,
    private readonly walker: SenderWalker,
    private readonly inc: boolean,
  ) {
    this.opts = ctx.opts;
    this.protocol = ctx.protocol;
    this.flw = new FlistWriter(flistOptionsFor(ctx));
  }

  /** Lists the client has not finished. */
  get activeCount(): number {
    return this.lists.length;
  }

  /** Entries in the first list (protocol 29's keep-alive request names this index). */
  get firstListLength(): number | undefined {
    return this.lists[0]?.entries.length;
  }

  private get ioError(): number {
    return this.walker.ioError;
  }

  private get safeFlist(): boolean {
    return (this.ctx.compatFlags & CF.SAFE_FLIST) !== 0 || this.protocol >= 31;
  }

  sendFirstList(entries: SEntry[]): void {
    const w = this.ctx.writer;
    this.nextNdxStart = this.inc ? 1 : 0;
    if (!this.inc) this.prepareHardLinksWhole(entries);
    const list = this.writeList(entries, null, 0);
    if (this.inc) {
      // The first list's "parent" is its "." entry (rsync: parent_ndx 0 iff it sorts first as ".").
      const first = list.entries[0];
      if (first && first.name === '.' && isDir(first)) list.parent = first;
      this.walker.registerList(list.entries, null);
    } else {
      if ((this.opts.owner || this.opts.group) && !this.opts.numericIds) this.writeIdLists();
      this.flistEof = true;
    }
    if (this.protocol < 30) this.flw.writeTrailingIoError(w, this.opts.ignoreErrors ? 0 : this.ioError);
    else if (!this.safeFlist && this.ioError && !this.opts.ignoreErrors) this.sendIoErrorMsg();
    if (this.inc) {
      if (entries.length === 0) {
        w.ndx(NDX_FLIST_EOF);
        this.flistEof = true;
      } else {
        this.sendMoreLists(false);
      }
    }
    w.flush();
  }

  /**
   * Writes one list in send order (arrival indexes from ndxStart), sorts it and makes it active.
   * `savedIoError` is the io_error before the list was built: a change rides on the end marker.
   */
  private writeList(entries: SEntry[], parent: SEntry | null, savedIoError: number): SendList {
    const w = this.ctx.writer;
    const ndxStart = this.nextNdxStart;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      e.arrival = ndxStart + i;
      this.prepareEntry(e);
      this.flw.writeEntry(w, e);
    }
    const io = this.ioError;
    if (io === savedIoError || this.opts.ignoreErrors) this.flw.writeEnd(w, 0);
    else this.flw.writeEnd(w, io);
    const sorted = sortFileList(entries, this.protocol, ndxStart) as SEntry[];
    const list: SendList = { ndxStart, entries: sorted, parent };
    this.lists.push(list);
    this.activeFiles += sorted.length;
    this.nextNdxStart = ndxStart + sorted.length + (this.inc ? 1 : 0);
    return list;
  }

  private prepareEntry(e: SEntry): void {
    const o = this.opts;
    if (isRegular(e)) {
      this.totalSize += e.size;
      if (o.checksum) e.checksum = this.checksumOf(e);
    } else if (isSymlink(e)) {
      this.totalSize += e.size;
    }
    if (this.inc && !o.numericIds) {
      if (o.owner) {
        const n = this.lookupName(this.userNames, e.uid, (id) => this.ids.userName(id));
        if (n) e.userName = n;
      }
      if (o.group) {
        const n = this.lookupName(this.groupNames, e.gid, (id) => this.ids.groupName(id));
        if (n) e.groupName = n;
      }
    }
    if (this.inc && o.hardLinks && e.dev !== undefined && e.ino !== undefined) {
      // proto >= 30: the group is named by its first member's arrival index (across lists).
      const key = `${e.dev}:${e.ino}`;
      const leader = this.hlinkLeaders.get(key);
      if (leader === undefined) this.hlinkLeaders.set(key, e.arrival);
      e.hlinkGroup = leader ?? e.arrival;
    }
  }

  private lookupName(cache: Map<number, string | null>, id: number, look: (id: number) => string | undefined): string | null {
    let n = cache.get(id);
    if (n === undefined) {
      n = look(id) ?? null;
      cache.set(id, n);
    }
    return n;
  }

  /** Without incremental recursion: groups are known up front; lone members are not links (proto >= 30). */
  private prepareHardLinksWhole(entries: SEntry[]): void {
    if (!this.opts.hardLinks) return;
    const counts = new Map<string, number>();
    for (const e of entries) {
      if (e.dev === undefined || e.ino === undefined) continue;
      const key = `${e.dev}:${e.ino}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const leaders = new Map<string, number>();
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (e.dev === undefined || e.ino === undefined) continue;
      const key = `${e.dev}:${e.ino}`;
      if (counts.get(key) === 1 && this.protocol >= 30) {
        e.dev = undefined;
        e.ino = undefined;
        continue;
      }
      const leader = leaders.get(key);
      if (leader === undefined) leaders.set(key, i);
      e.hlinkGroup = leader ?? i;
    }
  }

  private writeIdLists(): void {
    const users = new Map<number, string>();
    const groups = new Map<number, string>();
    for (const e of this.lists[0].entries) {
      if (this.opts.owner && e.uid !== 0 && !users.has(e.uid)) {
        const n = this.ids.userName(e.uid);
        if (n) users.set(e.uid, n);
      }
      if (this.opts.group && e.gid !== 0 && !groups.has(e.gid)) {
        const n = this.ids.groupName(e.gid);
        if (n) groups.set(e.gid, n);
      }
    }
    this.flw.writeIdLists(this.ctx.writer, users, groups);
  }

  sendIoErrorMsg(): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(this.ioError, 0);
    this.ctx.writer.message(MsgTag.IO_ERROR, b);
  }

  /**
   * Incremental recursion look-ahead (rsync's send_extra_file_list): sends sub-lists until the
   * client has MIN_FILECNT_LOOKAHEAD unfinished files listed, and always at least one list
   * beyond the oldest (or NDX_FLIST_EOF), so finishing everything it has never looks like the end
   * of phase 1 to the client. While the client is quiet, lists up to MAX_FILECNT_LOOKAHEAD.
   */
  sendMoreLists(idle: boolean): void {
    if (this.flistEof) return;
    const w = this.ctx.writer;
    const saved = this.ioError;
    while (
      !this.flistEof &&
      (this.activeFiles < MIN_FILECNT_LOOKAHEAD || this.lists.length < 2 || (idle && this.activeFiles < MAX_FILECNT_LOOKAHEAD))
    ) {
      const node = this.walker.nextDir();
      if (!node) {
        w.ndx(NDX_FLIST_EOF);
        this.flistEof = true;
        break;
      }
      this.sendSubList(node);
    }
    if (this.ioError !== saved && this.protocol === 30 && !this.opts.ignoreErrors) this.sendIoErrorMsg();
    this.logMemory();
  }

  private sendSubList(node: DirNode): void {
    const w = this.ctx.writer;
    const saved = this.ioError;
    w.ndx(NDX_FLIST_OFFSET - node.index);
    const entries = this.walker.buildSubList(node);
    const dir = node.members[0];
    const list = this.writeList(entries, dir, saved);
    this.walker.registerList(list.entries, node);
  }

  freeOldestList(): void {
    const l = this.lists.shift();
    if (!l) return;
    this.activeFiles -= l.entries.length;
    this.ctx.budget.release(listBytes(l.entries, entryOverhead('sender', this.opts)));
  }

  private logMemory(): void {
    const now = Date.now();
    if (now - this.lastMemLog < 250) return;
    this.lastMemLog = now;
    const m = process.memoryUsage();
    this.ctx.log.debug(
      { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, lists: this.lists.length, activeFiles: this.activeFiles },
      'sender memory',
    );
  }

  /** The active list holding `ndx` (ndx_start - 1 counts for a list with a parent dir). */
  private listFor(ndx: number): SendList | undefined {
    const lists = this.lists;
    let lo = 0;
    let hi = lists.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const l = lists[mid];
      if (ndx < l.ndxStart - (this.inc ? 1 : 0)) hi = mid - 1;
      else if (ndx >= l.ndxStart + l.entries.length) lo = mid + 1;
      else {
        if (ndx === l.ndxStart - 1 && !l.parent) return undefined;
        return l;
      }
    }
    return undefined;
  }

  entryFor(ndx: number): SEntry | undefined {
    const l = this.listFor(ndx);
    if (!l) return undefined;
    return ndx < l.ndxStart ? l.parent ?? undefined : l.entries[ndx - l.ndxStart];
  }

  private checksumOf(e: SEntry): Buffer {
    this.readBuffer ??= Buffer.allocUnsafe(READ_CHUNK * 4);
    const sum = fileChecksum(this.ctx.sandbox, physOf(e), this.ctx.fileSum, this.readBuffer, { dev: e.sdev, ino: e.sino });
    // A digest owns its own ArrayBuffer (about 300 bytes held per entry); a copy shares a pool slab.
    return sum ? Buffer.from(sum) : Buffer.alloc(digestLength(this.ctx.fileSum.name));
  }
}
