/**
 * The sending side of a pull (`rsync --server --sender`): builds and sends the file list(s), then
 * answers the client generator's requests with token streams (protocol-notes §6.8, §7.7, §8).
 *
 * With incremental recursion (CF_INC_RECURSE) the first list holds the args and the contents of
 * `dir/` args; every other directory's children follow as a sub-list (NDX_FLIST_OFFSET - d),
 * depth-first, written between complete request replies and built only when it is about to be
 * sent (sender-walk.ts). Lists the client has finished (its per-list NDX_DONE) are dropped, so
 * memory stays flat however large the tree is.
 */
import type { ServerOptions } from '../policy/server-options.js';
import { ExitCode, ProtocolError, RsyncError } from '../protocol/errors.js';
import { createFileListHasher, createTransferHasher, digestLength } from '../protocol/checksum.js';
import { readFilterList, type FilterRule } from '../protocol/filter.js';
import { FlistWriter, isDir, isRegular, isSymlink, sortFileList, type FlistOptions } from '../protocol/flist.js';
import { MsgTag } from '../protocol/mux.js';
import { NDX_DEL_STATS, NDX_DONE, NDX_FLIST_EOF, NDX_FLIST_OFFSET } from '../protocol/ndx.js';
import { readBlockSums, readSumHead, validateSumHead, writeSumHead, type SumHead } from '../protocol/sumhead.js';
import { createTokenEncoder, type TokenEncoder } from '../protocol/token.js';
import { SandboxError } from '../sandbox/sandbox.js';
import { localIds } from '../sandbox/idmap.js';
import { DeltaMatcher } from './delta.js';
import { IoTimeout } from './io-timeout.js';
import { readMergeFile } from './merge-file.js';
import { FilterSet } from './filter-match.js';
import { IOERR, incRecurse, flistOptionsFor, type SessionContext } from './context.js';
import { ITEM } from './itemize.js';
import { installMessageHandler, sendInfo, sendTransferError, sendWarning } from './messages.js';
import { yieldToLoop } from './notifier.js';
import { dirOf, joinRel, printable } from './relpath.js';
import { SenderWalker, physOf, describeCode, type DirNode, type SEntry } from './sender-walk.js';

const READ_CHUNK = 256 * 1024;
const MAX_FILES_FROM_NAME = 4096;
const MAX_FILES_FROM_NAMES = 1_000_000;
const MAX_FILES_FROM_BYTES = 64 << 20;
/** rsync's MIN_FILECNT_LOOKAHEAD: unfinished files the client should always have listed. */
export const MIN_FILECNT_LOOKAHEAD = 1000;
/** rsync's MAX_FILECNT_LOOKAHEAD: how far ahead we list while the client is quiet. */
export const MAX_FILECNT_LOOKAHEAD = 2500;

/** The reference's allow_inc_recurse for a sending server: -r, not --use-qsort (the 'i' letter is checked by the caller). */
export function allowIncRecurseForSender(opts: ServerOptions): boolean {
  return opts.recursive && !opts.useQsort;
}

/** One file list sent to the client: the first list, or (incremental recursion) a directory's. */
interface SendList {
  ndxStart: number;
  /** Sorted; entries[i].ndx === ndxStart + i (duplicates stay, so indexes match the client's). */
  entries: SEntry[];
  /** The directory a sub-list belongs to (ndx_start - 1 names it in requests). */
  parent: SEntry | null;
}

const S_IFMT = 0o170000;

class Sender {
  private readonly opts: ServerOptions;
  private readonly protocol: number;
  private readonly inc: boolean;
  private filters: FilterSet | undefined;
  private walker!: SenderWalker;
  private flw!: FlistWriter;
  /** Active lists, oldest first (one list without incremental recursion). */
  private readonly lists: SendList[] = [];
  private nextNdxStart = 0;
  /** Entries in active lists (rsync's file_total - file_old_total). */
  private activeFiles = 0;
  private flistEof = false;
  private encoder!: TokenEncoder;
  private flistBuildMs = 0;
  private flistXferMs = 0;
  private totalSize = 0;
  private readonly hlinkLeaders = new Map<string, number>();
  private readonly userNames = new Map<number, string | null>();
  private readonly groupNames = new Map<number, string | null>();
  private readonly ids = localIds();
  /** Where a directory whose contents were reached through a followed symlink lives. */
  private mergeDir = { name: '', phys: '', base: '' };
  private lastMemLog = 0;

  constructor(private readonly ctx: SessionContext) {
    this.opts = ctx.opts;
    this.protocol = ctx.protocol;
    this.inc = incRecurse(ctx);
  }

  private get maxPhase(): number {
    return this.protocol >= 29 ? 2 : 1;
  }

  private get ioError(): number {
    return this.walker.ioError;
  }

  async run(): Promise<number> {
    installMessageHandler(this.ctx, (tag, payload) => this.onRoleMessage(tag, payload));
    const r = this.ctx.reader;
    const rules = await readFilterList(r, this.protocol);
    this.setupFilters(rules);
    this.walker = new SenderWalker(this.ctx, {
      inc: this.inc,
      filters: this.filters,
      setMergeDir: (name, phys, base) => {
        this.mergeDir = { name, phys, base };
      },
    });
    const names = this.opts.filesFrom !== undefined ? await this.readFilesFrom() : null;
    this.flw = new FlistWriter(this.flistOptions());
    const t0 = Date.now();
    const args = this.opts.args.length ? this.opts.args : ['.'];
    const first = this.walker.buildFirstList(args, names);
    this.flistBuildMs = Math.max(1, Date.now() - t0);
    const t1 = Date.now();
    this.sendFirstList(first);
    this.flistXferMs = Date.now() - t1;
    if (first.length === 0) {
      // Nothing to send: the reference exits right after the list (protocol-notes §9.5).
      await this.ctx.writer.drain();
      return this.exitCode();
    }
    this.encoder = createTokenEncoder(this.ctx.writer, this.ctx.compress, this.ctx.compressLevel, this.protocol);
    // --timeout: keep-alives while idle and exit 30 when the client goes silent (started after the
    // first list: pre-3.1 clients must not see a keep-alive while they read it, protocol-notes §3.4).
    const timeout = this.opts.timeout > 0 ? new IoTimeout(this.ctx, this.opts.timeout, 'sender') : null;
    timeout?.start();
    try {
      const work = this.serveRequests();
      work.catch(() => undefined);
      await (timeout ? Promise.race([work, timeout.expired]) : work);
    } finally {
      timeout?.stop();
    }
    return this.exitCode();
  }

  private exitCode(): number {
    if (this.ctx.hadTransferError || this.ioError & IOERR.GENERAL) return ExitCode.PARTIAL;
    if (this.ioError & IOERR.VANISHED) return ExitCode.VANISHED;
    return ExitCode.OK;
  }

  private onRoleMessage(tag: number, payload: Buffer): boolean {
    if (tag === MsgTag.SUCCESS) {
      if (payload.length < 4) throw new ProtocolError('invalid MSG_SUCCESS');
      this.removeSent(payload.readInt32LE(0));
      return true;
    }
    return false;
  }

  // ---- filters and files-from --------------------------------------------------------------

  private setupFilters(rules: FilterRule[]): void {
    if (rules.length === 0 && !this.opts.cvsExclude) return;
    this.filters = new FilterSet(rules, {
      side: 'sender',
      cvsExclude: this.opts.cvsExclude,
      protocol: this.protocol,
      readMergeFile: (dirRel, name) => this.readMergeFile(dirRel, name),
    });
  }

  private readMergeFile(dirRel: string, name: string): Buffer | null {
    const m = this.mergeDir;
    const dir = dirRel === m.name ? m.phys : joinRel(m.base, dirRel);
    return readMergeFile(this.ctx.sandbox, joinRel(dir, name));
  }

  /**
   * --files-from=- : NUL-terminated names follow the filter list, ended by an empty name; raw (not
   * multiplexed) for protocol < 31 (protocol-notes §1.6).
   */
  private async readFilesFrom(): Promise<string[]> {
    if (this.opts.filesFrom !== '-') {
      throw new RsyncError('rrsyncd: --files-from must name a client-side file here', ExitCode.SYNTAX);
    }
    const r = this.ctx.reader;
    const raw = this.protocol < 31 && r.isMultiplexed;
    if (raw) r.setMultiplexed(false);
    const names: string[] = [];
    let nameBytes = 0;
    let cur: number[] = [];
    const eol = this.opts.from0 ? 0 : 0x0a;
    for (;;) {
      const b = await r.readU8();
      if (b === eol || b === 0 || (!this.opts.from0 && b === 0x0d)) {
        if (cur.length === 0) {
          if (b === 0 || this.opts.from0) break;
          continue;
        }
        names.push(Buffer.from(cur).toString('latin1'));
        nameBytes += cur.length + 1;
        cur = [];
        // All names are held until the list is built: bound them (a flood of millions of names
        // otherwise costs ~1 GiB and minutes of lstat work).
        if (names.length > MAX_FILES_FROM_NAMES || nameBytes > MAX_FILES_FROM_BYTES) {
          throw new ProtocolError(`too many --files-from names (limit ${MAX_FILES_FROM_NAMES} names, ${MAX_FILES_FROM_BYTES >> 20} MiB)`);
        }
        continue;
      }
      if (cur.length >= MAX_FILES_FROM_NAME) throw new ProtocolError('--files-from name too long');
      cur.push(b);
    }
    if (raw) r.setMultiplexed(true);
    return names;
  }

  // ---- sending lists -----------------------------------------------------------------------

  private flistOptions(): FlistOptions {
    return flistOptionsFor(this.ctx);
  }

  private get safeFlist(): boolean {
    return (this.ctx.compatFlags & 0x08) !== 0 || this.protocol >= 31;
  }

  private sendFirstList(entries: SEntry[]): void {
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

  private sendIoErrorMsg(): void {
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
  private sendMoreLists(idle: boolean): void {
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

  private freeOldestList(): void {
    const l = this.lists.shift();
    if (l) this.activeFiles -= l.entries.length;
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

  private entryFor(ndx: number): SEntry | undefined {
    const l = this.listFor(ndx);
    if (!l) return undefined;
    return ndx < l.ndxStart ? l.parent ?? undefined : l.entries[ndx - l.ndxStart];
  }

  private checksumOf(e: SEntry): Buffer | undefined {
    const h = createFileListHasher(this.ctx.fileSum);
    const sandbox = this.ctx.sandbox;
    try {
      const { fd, stat } = sandbox.openRead(physOf(e), { dev: e.sdev, ino: e.sino });
      try {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK * 4, Math.max(1, stat.size)));
        for (let pos = 0; pos < stat.size; ) {
          const n = sandbox.read(fd, buf, 0, Math.min(buf.length, stat.size - pos), pos);
          if (n <= 0) break;
          h.update(buf.subarray(0, n));
          pos += n;
        }
      } finally {
        sandbox.close(fd);
      }
    } catch {
      return Buffer.alloc(digestLength(this.ctx.fileSum.name));
    }
    return h.digest();
  }

  // ---- serving requests --------------------------------------------------------------------

  private readNdx(): number | Promise<number> {
    return this.ctx.reader.readNdx();
  }

  private async serveRequests(): Promise<void> {
    const r = this.ctx.reader;
    const w = this.ctx.writer;
    let phase = 0;
    const savedIoError = this.ioError;
    for (;;) {
      if (this.inc && !this.flistEof) {
        this.sendMoreLists(false);
        if (!this.flistEof && r.idle) this.sendMoreLists(true);
      }
      const ndx = await this.readNdx();
      if (ndx === NDX_DONE) {
        if (this.inc && this.lists.length > 0) {
          this.freeOldestList();
          if (this.lists.length > 0) {
            w.ndx(NDX_DONE);
            continue;
          }
          if (!this.flistEof) throw new ProtocolError('client finished every file list before NDX_FLIST_EOF');
        }
        phase++;
        if (phase > this.maxPhase) break;
        w.ndx(NDX_DONE);
        w.flush();
        continue;
      }
      if (ndx === NDX_DEL_STATS && this.protocol >= 31) {
        await this.echoDeleteStats();
        continue;
      }
      if (ndx < 0) throw new ProtocolError(`Invalid file index: ${ndx}`);
      const iflags = this.protocol >= 29 ? await r.readU16() : ITEM.TRANSFER;
      const e = this.entryFor(ndx);
      if (!e) {
        // Protocol 29 keep-alive: a fake request for ndx == list count with ITEM_IS_NEW.
        const l = this.lists[0];
        if (this.protocol === 29 && !this.inc && l && ndx === l.entries.length && iflags === ITEM.IS_NEW) {
          w.keepAlive();
          continue;
        }
        throw new ProtocolError(`Invalid file index: ${ndx} (not in an active file list)`);
      }
      const basisType = iflags & ITEM.BASIS_TYPE_FOLLOWS ? await r.readU8() : undefined;
      const xname = iflags & ITEM.XNAME_FOLLOWS ? await r.readVstring(4095) : undefined;
      const echo = (): void => {
        w.ndx(ndx);
        if (this.protocol >= 29) w.u16(iflags);
        if (basisType !== undefined) w.u8(basisType);
        if (xname !== undefined) w.vstring(xname);
      };
      if (!(iflags & ITEM.TRANSFER)) {
        echo();
        continue;
      }
      if (phase >= 2 && this.protocol >= 29) throw new ProtocolError('got transfer request in phase 2');
      if (!isRegular(e)) throw new ProtocolError(`transfer request for a non-regular file: ${printable(e.name)}`);
      if (this.opts.dryRun) {
        echo();
        continue;
      }
      const head = await readSumHead(r);
      validateSumHead(head, this.protocol, digestLength(this.ctx.xferSum.name));
      const append = this.opts.append > 0 && !e.sent ? (this.opts.append > 1 || this.protocol < 30 ? 2 : 1) : 0;
      const sums = append ? null : await readBlockSums(r, head);
      await this.sendFile(e, ndx, head, sums, append, echo);
      e.sent = true;
      await w.writable();
    }
    if (this.ioError !== savedIoError && this.protocol >= 30 && !this.opts.ignoreErrors) this.sendIoErrorMsg();
    w.ndx(NDX_DONE);
    this.writeStats();
    w.flush();
    await this.goodbye();
  }

  private async echoDeleteStats(): Promise<void> {
    const r = this.ctx.reader;
    const w = this.ctx.writer;
    const counts: number[] = [];
    for (let i = 0; i < 5; i++) counts.push(await r.readVarint());
    w.ndx(NDX_DEL_STATS);
    for (const c of counts) w.varint(c);
    w.flush();
  }

  private async sendFile(
    e: SEntry,
    ndx: number,
    head: SumHead,
    sums: Awaited<ReturnType<typeof readBlockSums>> | null,
    append: number,
    echo: () => void,
  ): Promise<void> {
    const w = this.ctx.writer;
    const sandbox = this.ctx.sandbox;
    let fd: number;
    let size: number;
    try {
      const opened = sandbox.openRead(physOf(e), { dev: e.sdev, ino: e.sino });
      fd = opened.fd;
      size = opened.stat.size;
    } catch (err) {
      this.reportOpenFailure(e, ndx, err);
      return;
    }
    try {
      if (append && size < e.size) {
        sendWarning(this.ctx, `skipped diminished file: "${printable(physOf(e))}"`);
        this.sendNoSend(ndx);
        return;
      }
      echo();
      writeSumHead(w, head);
      const hasher = createTransferHasher(this.ctx.xferSum);
      this.encoder.beginFile({ level: this.levelFor(e) });
      const enc = this.encoder;
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      let pos = 0;
      let lastYield = Date.now();
      if (append) {
        // --append: only the data past what the client has (count*blength less the short block).
        let have = head.count * head.blength;
        if (head.remainder) have -= head.blength - head.remainder;
        have = Math.max(0, Math.min(have, size));
        if (append === 2) {
          for (let p = 0; p < have; ) {
            const n = sandbox.read(fd, buf, 0, Math.min(READ_CHUNK, have - p), p);
            if (n <= 0) break;
            hasher.update(buf.subarray(0, n));
            p += n;
          }
        }
        pos = have;
      }
      const matcher =
        sums && head.count > 0
          ? new DeltaMatcher(sums, this.ctx.xferSum, { literal: (d) => enc.literal(d), match: (i, d) => enc.match(i, d) }, { inplace: this.opts.inplace || this.opts.append > 0 })
          : null;
      while (pos < size) {
        const n = sandbox.read(fd, buf, 0, Math.min(READ_CHUNK, size - pos), pos);
        if (n <= 0) break;
        const chunk = buf.subarray(0, n);
        hasher.update(chunk);
        if (matcher) matcher.push(chunk);
        else enc.literal(chunk);
        pos += n;
        await w.writable();
        if (Date.now() - lastYield > 50) {
          await yieldToLoop();
          lastYield = Date.now();
        }
      }
      matcher?.finish();
      enc.endFile();
      w.bytes(hasher.digest());
      if (pos !== size) {
        this.walker.ioError |= IOERR.GENERAL;
        sendTransferError(this.ctx, `rsync: [sender] read errors mapping "${printable(e.name)}": file changed size during transfer`);
      }
    } finally {
      sandbox.close(fd);
    }
  }

  private levelFor(e: SEntry): number | undefined {
    if (this.ctx.compress === 'none') return undefined;
    const base = e.name.slice(e.name.lastIndexOf('/') + 1);
    const dot = base.lastIndexOf('.');
    if (dot < 0) return undefined;
    const suffix = base.slice(dot + 1).toLowerCase();
    return skipCompressSuffixes(this.opts.skipCompress).has(suffix) ? 0 : undefined;
  }

  private reportOpenFailure(e: SEntry, ndx: number, err: unknown): void {
    const vanished = err instanceof SandboxError && (err.code === 'ENOENT' || err.code === 'ECHANGED');
    if (vanished) {
      this.walker.ioError |= IOERR.VANISHED;
      sendWarning(this.ctx, `file has vanished: "${printable(physOf(e))}"`);
    } else {
      this.walker.ioError |= IOERR.GENERAL;
      const why = err instanceof SandboxError ? describeCode(err.code) : err instanceof Error ? err.message : String(err);
      sendTransferError(this.ctx, `rsync: [sender] send_files failed to open "${printable(physOf(e))}": ${why}`);
    }
    this.sendNoSend(ndx);
  }

  private sendNoSend(ndx: number): void {
    if (this.protocol < 30) return;
    const b = Buffer.alloc(4);
    b.writeInt32LE(ndx, 0);
    this.ctx.writer.message(MsgTag.NO_SEND, b);
  }

  private writeStats(): void {
    const w = this.ctx.writer;
    const read = this.ctx.reader.totalRead;
    const written = w.totalWritten + w.pendingBytes;
    if (this.protocol < 29) {
      w.longint(read);
      w.longint(written);
      w.longint(this.totalSize);
      return;
    }
    for (const v of [read, written, this.totalSize, this.flistBuildMs, this.flistXferMs]) w.varlong30(v, 3);
  }

  private async goodbye(): Promise<void> {
    const r = this.ctx.reader;
    const w = this.ctx.writer;
    if (this.protocol < 29) {
      const v = await r.readI32();
      if (v !== -1) throw new ProtocolError(`bad goodbye from client: ${v}`);
      return;
    }
    let ndx = await this.readGoodbyeNdx();
    if (this.protocol >= 31 && ndx === NDX_DONE) {
      w.ndx(NDX_DONE);
      w.flush();
      ndx = await this.readGoodbyeNdx();
    }
    if (ndx !== NDX_DONE) throw new ProtocolError(`bad goodbye from client: ${ndx}`);
  }

  private async readGoodbyeNdx(): Promise<number> {
    for (;;) {
      const ndx = await this.readNdx();
      if (ndx === NDX_DEL_STATS && this.protocol >= 31) {
        await this.echoDeleteStats();
        continue;
      }
      return ndx;
    }
  }

  /** --remove-source-files: the client confirmed `ndx`; remove the source if it is unchanged. */
  private removeSent(ndx: number): void {
    if (!this.opts.removeSourceFiles) return;
    const e = ndx >= 0 ? this.entryFor(ndx) : undefined;
    if (!e) throw new ProtocolError(`Invalid file index in MSG_SUCCESS: ${ndx}`);
    if (isDir(e)) return;
    const sandbox = this.ctx.sandbox;
    const rel = physOf(e);
    try {
      const st = sandbox.lstat(rel);
      if (!st) {
        sendInfo(this.ctx, `sender file already removed: ${printable(e.name)}\n`);
        return;
      }
      if (st.ino !== e.sino || st.dev !== e.sdev) return;
      const nsecChanged = this.protocol >= 31 && e.mtimeNsec !== 0 && st.mtimeNsec !== e.mtimeNsec;
      const sizeChanged = (st.type === 'file' || st.type === 'symlink') && st.size !== e.size && !isSymlink(e);
      if (sizeChanged || st.mtimeSec !== e.mtime || nsecChanged) {
        sendTransferError(this.ctx, `ERROR: Skipping sender remove for changed file: ${printable(e.name)}`);
        return;
      }
      this.ctx.gateway.unlink(rel, 'remove-source');
      if (this.opts.verbose > 1) sendInfo(this.ctx, `sender removed ${printable(e.name)}\n`);
    } catch (err) {
      const why = err instanceof SandboxError ? describeCode(err.code) : err instanceof Error ? err.message : String(err);
      sendTransferError(this.ctx, `rsync: [sender] sender failed to remove ${printable(e.name)}: ${why}`);
    }
  }
}

const DEFAULT_SKIP_COMPRESS =
  '3g2/3gp/7z/aac/ace/apk/avi/bz2/deb/dmg/ear/f4v/flac/flv/gpg/gz/iso/jar/jpeg/jpg/lrz/lz/lz4/lzma/lzo/m1a/m1v/m2a/m2ts/m2v/m4a/m4b/m4p/m4r/m4v/mka/mkv/mov/mp1/mp2/mp3/mp4/mpa/mpeg/mpg/mpv/mts/odb/odf/odg/odi/odm/odp/ods/odt/oga/ogg/ogm/ogv/ogx/opus/otg/oth/otp/ots/ott/oxt/png/qt/rar/rpm/rz/rzip/spx/squashfs/sxc/sxd/sxg/sxm/sxw/sz/tbz/tbz2/tgz/tlz/ts/txz/tzo/vob/war/webm/webp/xz/z/zip/zst';
const skipCache = new Map<string, Set<string>>();

function skipCompressSuffixes(option: string | undefined): Set<string> {
  const key = option ?? DEFAULT_SKIP_COMPRESS;
  let set = skipCache.get(key);
  if (!set) {
    set = new Set(key.split('/').filter(Boolean).map((s) => s.toLowerCase()));
    skipCache.set(key, set);
  }
  return set;
}

export async function runSender(ctx: SessionContext): Promise<number> {
  return new Sender(ctx).run();
}

export { dirOf, S_IFMT };
