/**
 * The receiving side of a push: the generator (walks the file list, decides what to update,
 * sends block checksums of basis files) and the receiver (rebuilds files from the sender's token
 * streams into temp files, verifies, renames into place) run as two concurrent tasks sharing the
 * session's reader and writer (protocol-notes §7).
 */
import type { ServerOptions } from '../policy/server-options.js';
import { confinePath } from '../policy/paths.js';
import { ExitCode, ProtocolError, RsyncError } from '../protocol/errors.js';
import { createTransferHasher, createFileListHasher, digestLength } from '../protocol/checksum.js';
import { readFilterList, type FilterRule } from '../protocol/filter.js';
import {
  FlistReader,
  isDir,
  isRegular,
  isSymlink,
  isDevice,
  isSpecial,
  sortFileList,
  XMIT,
  type FileEntry,
  type FlistOptions,
} from '../protocol/flist.js';
import { MsgTag } from '../protocol/mux.js';
import { NDX_DEL_STATS, NDX_DONE, NDX_FLIST_EOF, NDX_FLIST_OFFSET } from '../protocol/ndx.js';
import { chooseSumHead, readSumHead, writeBlockSums, writeSumHead, type SumHead } from '../protocol/sumhead.js';
import { createTokenDecoder, type TokenDecoder } from '../protocol/token.js';
import { SandboxError, type Attrs, type EntryStat, type Sandbox } from '../sandbox/sandbox.js';
import { isUnsafeSymlink, mungeSymlink } from '../sandbox/sandbox.js';
import { BlockSumsBuilder } from './delta.js';
import { FilterSet, type DirFilter } from './filter-match.js';
import { IOERR, incRecurse, type SessionContext } from './context.js';
import { ITEM, isSignificant } from './itemize.js';
import { installMessageHandler, sendInfo, sendTransferError } from './messages.js';
import { Notifier, yieldToLoop } from './notifier.js';
import { baseOf, dirOf, joinRel, printable } from './relpath.js';
import { localIds } from '../sandbox/idmap.js';

const READ_CHUNK = 1024 * 1024;
const WRITE_BUFFER = 256 * 1024;

/** The reference's allow_inc_recurse for a receiving server (protocol-notes §2.2). */
export function allowIncRecurseForReceiver(opts: ServerOptions): boolean {
  if (!opts.recursive || opts.useQsort || opts.pruneEmptyDirs || opts.delayUpdates) return false;
  if (opts.deleteMode && (opts.deleteTiming === 'before' || opts.deleteTiming === 'after')) return false;
  return true;
}

/** receiver_wants_list (protocol-notes §5.1): does the client send its filter list to us? */
export function receiverWantsFilterList(opts: ServerOptions, protocol: number): boolean {
  return opts.pruneEmptyDirs || (opts.deleteMode && (!opts.deleteExcluded || protocol >= 29));
}

interface Pending {
  list: FileList;
  entry: FileEntry;
  dest: string;
  head: SumHead;
  hasBasis: boolean;
  redo: boolean;
  iflags: number;
}

/** One received file list: the whole list, or (incremental recursion) one directory's children. */
interface FileList {
  ndxStart: number;
  /** Sorted entries; entries[i].ndx === ndxStart + i. Emptied once the list is finished. */
  entries: FileEntry[];
  /** The directory this sub-list belongs to (incremental recursion lists after the first). */
  parent?: FileEntry;
  /** Transfers requested from this list that have not completed yet. */
  pending: number;
  /** Files of this list that failed verification once and must be requested again. */
  redo: FileEntry[];
  processed: boolean;
  finished: boolean;
}

interface DeleteStats {
  files: number;
  dirs: number;
  symlinks: number;
  devices: number;
  specials: number;
}

function modeType(mode: number): number {
  return mode & 0o170000;
}

/** Writes file data in large pieces (one syscall per 256 KiB instead of per token). */
class CoalescingWriter {
  private used = 0;
  position: number;

  /** `buf` is the session's reusable write buffer (one file is written at a time). */
  constructor(
    private readonly sandbox: Sandbox,
    private readonly fd: number,
    start: number,
    private readonly buf: Buffer,
  ) {
    this.position = start;
  }

  write(data: Buffer): void {
    if (data.length >= WRITE_BUFFER) {
      this.flush();
      this.sandbox.write(this.fd, data, 0, data.length, this.position);
      this.position += data.length;
      return;
    }
    if (this.used + data.length > WRITE_BUFFER) this.flush();
    data.copy(this.buf, this.used);
    this.used += data.length;
  }

  flush(): void {
    if (this.used === 0) return;
    this.sandbox.write(this.fd, this.buf, 0, this.used, this.position);
    this.position += this.used;
    this.used = 0;
  }

  get length(): number {
    return this.position + this.used;
  }
}

class Receiver {
  private readonly opts: ServerOptions;
  private readonly protocol: number;
  private readonly sandbox: Sandbox;
  private readonly inc: boolean;
  /** Lists not yet finished, oldest first (all lists without incremental recursion). */
  private readonly lists: FileList[] = [];
  /** Finished lists whose NDX_DONE the sender has not echoed yet (its echoes may still name them). */
  private readonly unechoed: FileList[] = [];
  private nextToProcess = 0;
  private flistEof = false;
  private nextNdxStart = 0;
  /** Incremental recursion: every directory in list order; NDX_FLIST_OFFSET - d names dirList[d]. */
  private readonly dirList: FileEntry[] = [];
  private readonly dirsWithList = new Set<number>();
  private flistReader!: FlistReader;
  private destRel = '';
  private singleFile = false;
  private filters: FilterSet | undefined;
  private flistIoError = 0;
  private peer!: { peerIoError: () => number };
  private readonly pending = new Map<number, Pending>();
  private readonly progress = new Notifier();
  /** NDX_DONEs we wrote for finished lists, and whether the last one (G1, phase 1 end) is out. */
  private listDonesSent = 0;
  private phaseOneSent = false;
  private listEchoes = 0;
  private senderPhase = 0;
  private readonly deleted: DeleteStats = { files: 0, dirs: 0, symlinks: 0, devices: 0, specials: 0 };
  private deletionsLeft: number;
  private deleteLimitHit = 0;
  private deleting = false;
  private readonly delayedDeletes: Array<{ dir: FileEntry; keep: Set<string> }> = [];
  private readonly newDirs = new Set<string>();
  /** Directories whose attributes are set once everything below them is written. */
  private readonly dirFixups: FileEntry[] = [];
  private decoder!: TokenDecoder;
  private readonly isRoot = process.getuid?.() === 0;
  private readonly hlinkLeaders = new Map<number, FileEntry>();
  private readonly hlinkFollowers: FileEntry[] = [];
  private userNames = new Map<number, string>();
  private groupNames = new Map<number, string>();
  private currentTemp: { rel: string; dest: string } | null = null;
  private readonly writeBuffer = Buffer.allocUnsafe(WRITE_BUFFER);
  private blockBuffer = Buffer.alloc(0);
  filesTransferred = 0;

  constructor(private readonly ctx: SessionContext) {
    this.opts = ctx.opts;
    this.protocol = ctx.protocol;
    this.sandbox = ctx.sandbox;
    this.inc = incRecurse(ctx);
    this.deletionsLeft = this.opts.maxDelete === undefined ? Infinity : Math.max(0, this.opts.maxDelete);
  }

  private get maxPhase(): number {
    return this.protocol >= 29 ? 2 : 1;
  }

  async run(): Promise<number> {
    this.peer = installMessageHandler(this.ctx, (tag, payload) => this.onRoleMessage(tag, payload));
    await this.receiveFirstList();
    this.resolveDestination();
    this.decoder = createTokenDecoder(this.ctx.reader, this.ctx.compress, this.protocol);
    try {
      await Promise.all([this.generate(), this.receive()]);
    } catch (err) {
      this.abandonTemp();
      throw err;
    }
    return this.exitCode();
  }

  private onRoleMessage(tag: number, payload: Buffer): boolean {
    if (tag === MsgTag.NO_SEND) {
      if (payload.length !== 4) throw new ProtocolError('invalid MSG_NO_SEND');
      this.completeTransfer(payload.readInt32LE(0));
      return true;
    }
    return false;
  }

  private exitCode(): number {
    const io = this.flistIoError | this.peer.peerIoError() | this.ctx.ioError;
    if (this.ctx.hadTransferError || io & IOERR.GENERAL) return ExitCode.PARTIAL;
    if (io & IOERR.VANISHED) return ExitCode.VANISHED;
    if (this.deleteLimitHit) return ExitCode.DEL_LIMIT;
    return ExitCode.OK;
  }

  // ---- file lists ------------------------------------------------------------------------

  private flistOptions(): FlistOptions {
    const o = this.opts;
    return {
      protocol: this.protocol,
      varintFlags: (this.ctx.compatFlags & 0x80) !== 0,
      safeFlist: (this.ctx.compatFlags & 0x08) !== 0 || this.protocol >= 31,
      incRecurse: this.inc,
      id0Names: (this.ctx.compatFlags & 0x100) !== 0,
      links: o.links,
      owner: o.owner,
      group: o.group,
      devices: o.devices,
      specials: o.specials,
      hardLinks: o.hardLinks > 0,
      atimes: o.atimes > 0,
      crtimes: o.crtimes,
      numericIds: o.numericIds,
      checksumLength: o.checksum ? digestLength(this.ctx.fileSum.name) : 0,
      relative: o.relative,
    };
  }

  private async receiveFirstList(): Promise<void> {
    const r = this.ctx.reader;
    let rules: FilterRule[] = [];
    if (receiverWantsFilterList(this.opts, this.protocol)) rules = await readFilterList(r, this.protocol);
    if (rules.length > 0 || this.opts.cvsExclude) {
      this.filters = new FilterSet(rules, {
        side: 'receiver',
        deleteExcluded: this.opts.deleteExcluded,
        cvsExclude: this.opts.cvsExclude,
        protocol: this.protocol,
        readMergeFile: (dirRel, name) => this.readMergeFile(dirRel, name),
      });
    }
    this.flistReader = new FlistReader(this.flistOptions());
    // With incremental recursion the first list starts at 1; ndx_start - 1 names its parent.
    this.nextNdxStart = this.inc ? 1 : 0;
    await this.receiveList(undefined);
    if (!this.inc) {
      if ((this.opts.owner || this.opts.group) && !this.opts.numericIds) {
        const ids = await this.flistReader.readIdLists(r);
        this.userNames = ids.users;
        this.groupNames = ids.groups;
      }
      if (this.protocol < 30) this.flistIoError |= await this.flistReader.readTrailingIoError(r);
      this.flistEof = true;
    }
  }

  private async receiveList(parent: FileEntry | undefined): Promise<void> {
    const ndxStart = this.nextNdxStart;
    const { entries, ioError } = await this.flistReader.readList(this.ctx.reader, ndxStart, (a) => this.entryByArrival(a));
    this.flistIoError |= ioError;
    if (parent) {
      for (const e of entries) {
        if (dirOf(e.name) !== (parent.name === '.' ? '' : parent.name)) {
          throw new ProtocolError(`ABORTING due to invalid path from sender: ${printable(e.name)}`);
        }
      }
    }
    const sorted = sortFileList(entries, this.protocol, ndxStart);
    if (this.inc) for (const e of sorted) if (isDir(e) && !e.inactive) this.dirList.push(e);
    this.lists.push({ ndxStart, entries: sorted, parent, pending: 0, redo: [], processed: false, finished: false });
    this.nextNdxStart = ndxStart + sorted.length + (this.inc ? 1 : 0);
    this.progress.notify();
  }

  private entryByArrival(arrival: number): FileEntry | undefined {
    for (let i = this.lists.length - 1; i >= 0; i--) {
      const l = this.lists[i];
      if (arrival >= l.ndxStart) return l.entries.find((e) => e.arrival === arrival);
    }
    return undefined;
  }

  /** The list an index belongs to; with incremental recursion ndx_start - 1 names the list's directory. */
  private listOf(ndx: number): FileList | undefined {
    const low = this.inc ? 1 : 0;
    for (const group of [this.lists, this.unechoed]) {
      for (let i = group.length - 1; i >= 0; i--) {
        const l = group[i];
        if (ndx >= l.ndxStart - low && ndx < l.ndxStart + l.entries.length) return l;
      }
    }
    return undefined;
  }

  private readMergeFile(dirRel: string, name: string): Buffer | null {
    const rel = joinRel(joinRel(this.destRel, dirRel), name);
    try {
      const st = this.sandbox.lstat(rel);
      if (!st || st.type !== 'file' || st.size > 1024 * 1024) return null;
      const { fd } = this.sandbox.openRead(rel);
      try {
        const buf = Buffer.alloc(st.size);
        this.sandbox.read(fd, buf, 0, st.size, 0);
        return buf;
      } finally {
        this.sandbox.close(fd);
      }
    } catch {
      return null;
    }
  }

  /** rsync's get_local_name: a single file may be written under the destination name itself. */
  private resolveDestination(): void {
    const arg = this.opts.args[0] ?? '.';
    const dest = confinePath(arg, this.ctx.grant, 'destination');
    this.destRel = dest.rel;
    const first = this.lists[0].entries.filter((e) => !e.inactive);
    const st = this.sandbox.lstat(this.destRel);
    const onlyOneFile = first.length === 1 && !isDir(first[0]);
    if (onlyOneFile && !dest.trailingSlash && (!st || st.type !== 'dir')) {
      this.singleFile = true;
      return;
    }
    if (st && st.type !== 'dir') {
      throw new RsyncError('ERROR: destination must be a directory when copying more than 1 file', ExitCode.FILESELECT);
    }
    if (!st && !this.opts.dryRun && this.destRel !== '') {
      try {
        if (this.opts.mkpath) this.sandbox.mkdirp(this.destRel, 0o755);
        else this.sandbox.mkdir(this.destRel, 0o755);
      } catch (err) {
        throw new RsyncError(`rsync: [Receiver] mkdir "${printable(arg)}" failed: ${describe(err)}`, ExitCode.FILESELECT);
      }
      // As get_local_name: the transfer root "." counts as created (itemized cd+++++++++).
      if (first.some((e) => e.name === '.')) this.newDirs.add('.');
      if (this.opts.verbose > 0 || this.opts.logFormat) sendInfo(this.ctx, `created directory ${arg.replace(/(.)\/+$/, '$1')}\n`);
    }
  }

  private destOf(e: FileEntry): string {
    return this.singleFile ? this.destRel : joinRel(this.destRel, e.name);
  }

  // ---- generator -------------------------------------------------------------------------

  private async generate(): Promise<void> {
    const w = this.ctx.writer;
    this.deleting = this.deletionEnabled();
    if (this.deleting && this.deleteTiming() === 'before') await this.deleteInAllDirs();
    for (;;) {
      if (this.nextToProcess < this.lists.length) {
        await this.processList(this.lists[this.nextToProcess++]);
        this.finishReadyLists();
        continue;
      }
      if (this.flistEof) break;
      w.flush();
      const seen = this.lists.length;
      await this.progress.until(() => this.lists.length > seen || this.flistEof || this.listReadyToFinish());
      this.finishReadyLists();
    }
    w.flush();
    await this.progress.until(() => {
      this.finishReadyLists();
      return this.phaseOneSent;
    });
    w.flush();
    await this.progress.until(() => this.senderPhase >= 1);
    w.ndx(NDX_DONE); // G2: redo requests were already sent before each list's NDX_DONE
    w.flush();
    const late = this.deleting && (this.deleteTiming() === 'after' || this.deleteTiming() === 'delay');
    if (this.protocol < 29) {
      await this.progress.until(() => this.senderPhase >= 2);
      if (late) await this.runLateDeletions();
      this.fixDirectoryAttributes();
      w.ndx(NDX_DONE); // G3: goodbye
      w.flush();
      return;
    }
    if (this.opts.delayUpdates) await this.progress.until(() => this.senderPhase >= 2);
    w.ndx(NDX_DONE); // G3
    w.flush();
    if (this.protocol < 31) {
      await this.progress.until(() => this.senderPhase >= 3);
      if (late) await this.runLateDeletions();
      this.fixDirectoryAttributes();
      w.ndx(NDX_DONE); // G4: goodbye
      w.flush();
      return;
    }
    if (late) {
      await this.progress.until(() => this.senderPhase >= 3);
      await this.runLateDeletions();
    }
    if (this.deleting || this.opts.force) this.writeDeleteStats();
    w.ndx(NDX_DONE); // G4
    w.flush();
    await this.progress.until(() => this.senderPhase >= 4);
    this.fixDirectoryAttributes();
    w.ndx(NDX_DONE); // G5: goodbye
    w.flush();
  }

  private async processList(list: FileList): Promise<void> {
    const w = this.ctx.writer;
    if (list.parent) await this.processDirectory(list.parent, list.ndxStart - 1, list);
    let lastYield = Date.now();
    for (const e of list.entries) {
      if (e.inactive) continue;
      try {
        await this.generateEntry(e, list);
      } catch (err) {
        if (err instanceof SandboxError) this.reportEntryError(e, err);
        else throw err;
      }
      await w.writable();
      if (Date.now() - lastYield > 50) {
        await yieldToLoop();
        lastYield = Date.now();
      }
    }
    list.processed = true;
  }

  /** Whether finishReadyLists() can act on the oldest list now. */
  private listReadyToFinish(): boolean {
    const l = this.lists[0];
    if (!l || !l.processed || l.pending > 0) return false;
    return l.redo.length > 0 || this.lists.length > 1 || this.flistEof;
  }

  /**
   * Lists finish strictly in order once every transfer from them completed; a failed verification
   * is requested again (full-length sums) before the list's NDX_DONE (protocol-notes §7.7, §7.8).
   * The NDX_DONE of the last list, once no more lists can come, ends phase 1 (G1).
   */
  private finishReadyLists(): void {
    const w = this.ctx.writer;
    while (this.lists.length > 0) {
      const l = this.lists[0];
      if (!l.processed || l.pending > 0) return;
      if (l.redo.length > 0) {
        for (const e of l.redo.splice(0)) this.requestRedo(l, e);
        w.flush();
        return;
      }
      // Like the reference, a list is only finished once a newer one arrived or none can come.
      const last = this.flistEof && this.lists.length === 1;
      if (!last && this.lists.length === 1) return;
      this.finishHardLinks();
      w.ndx(NDX_DONE);
      this.listDonesSent++;
      l.finished = true;
      this.unechoed.push(l);
      this.lists.shift();
      this.nextToProcess--;
      if (last) {
        this.phaseOneSent = true;
        w.flush();
        this.progress.notify();
        return;
      }
    }
  }

  private writeDeleteStats(): void {
    const d = this.deleted;
    const w = this.ctx.writer;
    w.ndx(NDX_DEL_STATS);
    w.varint(d.files);
    w.varint(d.dirs);
    w.varint(d.symlinks);
    w.varint(d.devices);
    w.varint(d.specials);
  }

  private reportEntryError(e: FileEntry, err: SandboxError): void {
    sendTransferError(this.ctx, `rsync: [generator] ${printable(e.name)}: ${err.message}`);
  }

  private async generateEntry(e: FileEntry, list: FileList): Promise<void> {
    const dest = this.destOf(e);
    const st = this.sandbox.lstat(dest);
    if (isDir(e)) {
      if (!this.inc) {
        await this.processDirectory(e, e.ndx, list);
      } else if (e.name === '.' && !list.parent) {
        // The transfer root of the first list: its children are this very list.
        await this.processDirectory(e, list.ndxStart - 1, list);
      } else {
        // Created now so its children can land; fully handled when its own list arrives.
        this.ensureDir(e, dest, st);
        this.dirFixups.push(e);
      }
      return;
    }
    if (isSymlink(e)) return this.generateSymlink(e, dest, st);
    if (isDevice(e) || isSpecial(e)) return this.generateSpecial(e, dest, st);
    if (isRegular(e)) return this.generateFile(e, list, dest, st);
  }

  /** A directory: create or fix it, itemize it (as `itemNdx`), and delete extraneous entries in it. */
  private async processDirectory(e: FileEntry, itemNdx: number, list: FileList): Promise<void> {
    const dest = this.destOf(e);
    const st = this.sandbox.lstat(dest);
    this.ensureDir(e, dest, st);
    const created = this.newDirs.has(e.name);
    if (!this.inc || e.name === '.') this.dirFixups.push(e);
    const iflags = created ? ITEM.LOCAL_CHANGE | ITEM.IS_NEW : st ? this.attrChanges(e, st, false) : 0;
    this.itemizeNdx(itemNdx, iflags);
    if (created && this.protocol < 29 && this.opts.verbose > 0) sendInfo(this.ctx, `${e.name}/\n`);
    if (this.deleting && this.isContentDir(e) && !created) {
      const keep = this.childrenIn(e, list);
      if (this.deleteTiming() === 'during') await this.deleteInDir(e, keep);
      else if (this.deleteTiming() === 'delay' || this.deleteTiming() === 'after') this.delayedDeletes.push({ dir: e, keep });
    }
  }

  /** Makes sure a directory exists; returns true when it had to be created. */
  private ensureDir(e: FileEntry, dest: string, st: EntryStat | null): boolean {
    if (st && st.type === 'dir') return false;
    if (this.newDirs.has(e.name)) return false;
    if (st && !this.opts.dryRun) this.removeInTheWay(dest, st);
    this.newDirs.add(e.name);
    if (!this.opts.dryRun && dest !== '') this.sandbox.mkdir(dest, 0o700);
    return true;
  }

  private itemize(e: FileEntry, iflags: number, xname?: string): void {
    this.itemizeNdx(e.ndx, iflags, xname);
  }

  private itemizeNdx(ndx: number, iflags: number, xname?: string): void {
    if (this.protocol < 29) return;
    if (!isSignificant(iflags) && this.opts.verbose < 2 && !(this.opts.logFormat ?? '').includes('%i%I')) return;
    const w = this.ctx.writer;
    w.ndx(ndx);
    w.u16(iflags | (xname !== undefined ? ITEM.XNAME_FOLLOWS : 0));
    if (xname !== undefined) w.vstring(Buffer.from(xname, 'latin1'));
  }

  private attrChanges(e: FileEntry, st: EntryStat, isLink: boolean): number {
    let flags = 0;
    if (this.opts.times && !(isLink && this.opts.omitLinkTimes) && !(isDir(e) && this.opts.omitDirTimes)) {
      if (!this.sameMtime(e, st)) flags |= ITEM.REPORT_TIME;
    }
    if (this.opts.perms && !isLink && (st.mode & 0o7777) !== (e.mode & 0o7777)) flags |= ITEM.REPORT_PERMS;
    if (this.opts.owner && this.isRoot && st.uid !== this.mappedUid(e)) flags |= ITEM.REPORT_OWNER;
    if (this.opts.group && this.isRoot && st.gid !== this.mappedGid(e)) flags |= ITEM.REPORT_GROUP;
    return flags;
  }

  /** rsync's same_time: whole seconds, unless --modify-window is negative (then also ns) or wider. */
  private sameMtime(e: FileEntry, st: EntryStat): boolean {
    const win = this.opts.modifyWindow;
    if (win === 0) return st.mtimeSec === e.mtime;
    if (win < 0) return st.mtimeSec === e.mtime && st.mtimeNsec === e.mtimeNsec;
    return Math.abs(st.mtimeSec - e.mtime) <= win;
  }

  private mappedUid(e: FileEntry): number {
    if (this.opts.numericIds) return e.uid;
    const name = e.userName ?? this.userNames.get(e.uid);
    return name ? (localIds().uidOf(name) ?? e.uid) : e.uid;
  }

  private mappedGid(e: FileEntry): number {
    if (this.opts.numericIds) return e.gid;
    const name = e.groupName ?? this.groupNames.get(e.gid);
    return name ? (localIds().gidOf(name) ?? e.gid) : e.gid;
  }

  private removeInTheWay(dest: string, st: EntryStat): void {
    if (st.type === 'dir') this.sandbox.removeTree(dest);
    else this.sandbox.unlink(dest);
  }

  private symlinkTarget(e: FileEntry): string {
    const target = e.linkTarget ?? '';
    return this.opts.mungeLinks ? mungeSymlink(target) : target;
  }

  private generateSymlink(e: FileEntry, dest: string, st: EntryStat | null): void {
    if (!this.opts.links) return;
    const target = this.symlinkTarget(e);
    if (this.opts.safeLinks && isUnsafeSymlink(e.linkTarget ?? '', e.name)) {
      sendInfo(this.ctx, `ignoring unsafe symlink "${e.name}" -> "${e.linkTarget ?? ''}"\n`);
      return;
    }
    if (st && st.type === 'symlink' && this.sandbox.readlink(dest) === target) {
      const changes = this.attrChanges(e, st, true);
      if (changes && !this.opts.dryRun) this.applyAttrs(dest, e, true);
      this.itemize(e, changes);
      return;
    }
    const iflags = ITEM.LOCAL_CHANGE | ITEM.REPORT_CHANGE | (st ? 0 : ITEM.IS_NEW);
    if (!this.opts.dryRun) {
      this.atomicCreate(dest, st, (tmp) => this.sandbox.symlink(target, tmp));
      this.applyAttrs(dest, e, true);
    }
    this.itemize(e, iflags);
    if (this.protocol < 29 && this.opts.verbose > 0) sendInfo(this.ctx, `${e.name} -> ${e.linkTarget ?? ''}\n`);
  }

  private generateSpecial(e: FileEntry, dest: string, st: EntryStat | null): void {
    const device = isDevice(e);
    if (device ? !this.opts.devices : !this.opts.specials) return;
    if (!this.ctx.grant.limits.allowDevices || (device && !this.isRoot)) {
      this.ctx.log.info({ name: printable(e.name) }, 'skipping device/special (not granted)');
      return;
    }
    if (st && modeType(st.mode) === modeType(e.mode) && (!device || st.rdev === makedev(e.rdevMajor, e.rdevMinor))) {
      this.itemize(e, this.attrChanges(e, st, false));
      return;
    }
    if (!this.opts.dryRun) {
      this.atomicCreate(dest, st, (tmp) => {
        if (device) this.sandbox.mknod(tmp, e.mode, makedev(e.rdevMajor, e.rdevMinor));
        else this.sandbox.mkfifo(tmp, e.mode & 0o7777);
      });
      this.applyAttrs(dest, e, false);
    }
    this.itemize(e, ITEM.LOCAL_CHANGE | ITEM.REPORT_CHANGE | (st ? 0 : ITEM.IS_NEW));
    if (this.protocol < 29 && this.opts.verbose > 0) sendInfo(this.ctx, `${e.name}\n`);
  }

  /** Creates a non-regular item under a temp name, then renames it over the destination. */
  private atomicCreate(dest: string, st: EntryStat | null, create: (tmpRel: string) => void): void {
    if (st && st.type === 'dir') this.sandbox.removeTree(dest);
    const base = baseOf(dest).replace(/^\./, '').slice(0, 200);
    const tmp = joinRel(dirOf(dest), `.${base}.${process.pid}${Math.floor(Math.random() * 1e6)}`);
    create(tmp);
    try {
      this.sandbox.rename(tmp, dest);
    } catch (err) {
      this.sandbox.unlink(tmp);
      throw err;
    }
  }

  private skipByOptions(e: FileEntry, st: EntryStat | null): boolean {
    const o = this.opts;
    if (o.existing && !st) return true;
    if (o.ignoreExisting && st) return true;
    if (o.maxSize !== undefined && e.size > o.maxSize) return true;
    if (o.minSize !== undefined && e.size < o.minSize) return true;
    if (o.update && st && st.type === 'file' && st.mtimeSec > e.mtime) return true;
    const limit = this.ctx.grant.limits.maxFileSize;
    if (limit !== undefined && e.size > limit) {
      sendTransferError(this.ctx, `rrsyncd: ${printable(e.name)} is larger than the allowed maximum file size (${limit} bytes)`);
      return true;
    }
    return false;
  }

  private fileIsUnchanged(e: FileEntry, dest: string, st: EntryStat): boolean {
    if (st.type !== 'file' || st.size !== e.size) return false;
    if (this.opts.checksum) return e.checksum !== undefined && this.fileChecksum(dest).equals(e.checksum);
    if (this.opts.sizeOnly) return true;
    if (this.opts.ignoreTimes) return false;
    return this.sameMtime(e, st);
  }

  private fileChecksum(rel: string): Buffer {
    const h = createFileListHasher(this.ctx.fileSum);
    this.forEachChunk(rel, (chunk) => h.update(chunk));
    return h.digest();
  }

  private forEachChunk(rel: string, fn: (chunk: Buffer) => void): void {
    const { fd, stat } = this.sandbox.openRead(rel);
    try {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(1, stat.size)));
      let pos = 0;
      while (pos < stat.size) {
        const n = this.sandbox.read(fd, buf, 0, Math.min(buf.length, stat.size - pos), pos);
        if (n <= 0) break;
        fn(buf.subarray(0, n));
        pos += n;
      }
    } finally {
      this.sandbox.close(fd);
    }
  }

  private generateFile(e: FileEntry, list: FileList, dest: string, st: EntryStat | null): void {
    if (this.skipByOptions(e, st)) return;
    if (this.opts.hardLinks && e.hlinkGroup !== undefined) {
      const leader = this.hlinkLeaders.get(e.hlinkGroup);
      if (leader) {
        this.hlinkFollowers.push(e);
        return;
      }
      this.hlinkLeaders.set(e.hlinkGroup, e);
    }
    if (st && st.type === 'dir') {
      if (!this.opts.dryRun) this.sandbox.removeTree(dest);
      st = null;
    }
    if (st && this.fileIsUnchanged(e, dest, st)) {
      const changes = this.attrChanges(e, st, false);
      if (changes && !this.opts.dryRun) this.applyAttrs(dest, e, false);
      this.itemize(e, changes);
      return;
    }
    let iflags = ITEM.TRANSFER;
    if (!st || st.type !== 'file') iflags |= ITEM.IS_NEW;
    else {
      if (st.size !== e.size) iflags |= ITEM.REPORT_SIZE;
      iflags |= this.attrChanges(e, st, false);
      if (this.opts.checksum) iflags |= ITEM.REPORT_CHANGE;
    }
    this.requestFile(list, e, dest, st, iflags, false);
  }

  private requestFile(list: FileList, e: FileEntry, dest: string, st: EntryStat | null, iflags: number, redo: boolean): void {
    const w = this.ctx.writer;
    const useBasis = !!st && st.type === 'file' && st.size > 0 && this.opts.wholeFile !== true && this.ctx.xferSum.name !== 'none';
    const digestLen = digestLength(this.ctx.xferSum.name);
    let head: SumHead = { count: 0, blength: 0, s2length: 0, remainder: 0 };
    let sums;
    if (useBasis && !this.opts.dryRun) {
      head = chooseSumHead(st.size, this.protocol, digestLen, { blockSize: this.opts.blockSize, redo });
      const builder = new BlockSumsBuilder(head, this.ctx.xferSum);
      this.forEachChunk(dest, (chunk) => builder.push(chunk));
      sums = builder.finish();
    }
    w.ndx(e.ndx);
    if (this.protocol >= 29) w.u16(iflags);
    this.pending.set(e.ndx, { list, entry: e, dest, head, hasBasis: useBasis, redo, iflags });
    list.pending++;
    if (this.opts.dryRun) return;
    writeSumHead(w, head);
    if (sums) writeBlockSums(w, sums);
  }

  private requestRedo(list: FileList, e: FileEntry): void {
    const dest = this.destOf(e);
    this.requestFile(list, e, dest, this.sandbox.lstat(dest), ITEM.TRANSFER, true);
  }

  private completeTransfer(ndx: number): void {
    const p = this.pending.get(ndx);
    if (!p) return;
    this.pending.delete(ndx);
    p.list.pending--;
    this.progress.notify();
  }

  private finishHardLinks(): void {
    const waiting: FileEntry[] = [];
    for (const f of this.hlinkFollowers.splice(0)) {
      const leader = this.hlinkLeaders.get(f.hlinkGroup!);
      if (!leader) continue;
      // The leader's data may still be on its way (it can sit in a later, unfinished list).
      if (this.pending.has(leader.ndx) || this.lists.some((l) => l.redo.includes(leader))) {
        waiting.push(f);
        continue;
      }
      const dest = this.destOf(f);
      const leaderDest = this.destOf(leader);
      try {
        const st = this.sandbox.lstat(dest);
        const lst = this.sandbox.lstat(leaderDest);
        if (st && lst && st.dev === lst.dev && st.ino === lst.ino) continue;
        if (!this.opts.dryRun) {
          if (!lst) continue;
          if (st) this.removeInTheWay(dest, st);
          this.sandbox.link(leaderDest, dest);
        }
        this.itemize(f, ITEM.LOCAL_CHANGE | (st ? 0 : ITEM.IS_NEW), leader.name);
      } catch (err) {
        if (err instanceof SandboxError) this.reportEntryError(f, err);
        else throw err;
      }
    }
    this.hlinkFollowers.push(...waiting);
  }

  private applyAttrs(dest: string, e: FileEntry, isLink: boolean): void {
    const attrs = this.attrsFor(e, isLink, false);
    this.sandbox.setAttrs(dest, attrs, { isSymlink: isLink });
  }

  private attrsFor(e: FileEntry, isLink: boolean, isNew: boolean): Attrs {
    const o = this.opts;
    const attrs: Attrs = {};
    if (!isLink) {
      if (o.perms) attrs.mode = e.mode & 0o7777;
      else if (isNew) attrs.mode = e.mode & 0o777 & ~0o022;
    }
    const timesWanted = o.times && !(isLink && o.omitLinkTimes) && !(isDir(e) && o.omitDirTimes);
    if (timesWanted) attrs.mtime = { sec: e.mtime, nsec: e.mtimeNsec };
    if (this.isRoot && this.ctx.grant.limits.allowChown) {
      if (o.owner) attrs.uid = this.mappedUid(e);
      if (o.group) attrs.gid = this.mappedGid(e);
    }
    return attrs;
  }

  private fixDirectoryAttributes(): void {
    if (this.opts.dryRun) return;
    for (let i = this.dirFixups.length - 1; i >= 0; i--) {
      const e = this.dirFixups[i];
      const dest = this.destOf(e);
      try {
        const isNew = this.newDirs.has(e.name);
        const attrs = this.attrsFor(e, false, isNew);
        if (attrs.mode === undefined && isNew) attrs.mode = (e.mode & 0o777 & ~0o022) | 0o700;
        this.sandbox.setAttrs(dest, attrs);
      } catch (err) {
        if (err instanceof SandboxError) this.reportEntryError(e, err);
        else throw err;
      }
    }
  }

  // ---- deletion --------------------------------------------------------------------------

  private deletionEnabled(): boolean {
    if (!this.opts.deleteMode || this.singleFile) return false;
    if ((this.flistIoError | this.peer.peerIoError()) & IOERR.GENERAL && !this.opts.ignoreErrors) {
      sendInfo(this.ctx, 'IO error encountered -- skipping file deletion\n');
      return false;
    }
    return true;
  }

  private deleteTiming(): 'before' | 'during' | 'delay' | 'after' {
    return this.opts.deleteTiming ?? (this.protocol >= 30 ? 'during' : 'before');
  }

  private isContentDir(e: FileEntry): boolean {
    if (this.protocol >= 30) return (e.xflags & XMIT.NO_CONTENT_DIR) === 0 && (this.opts.recursive || e.name === '.');
    return this.opts.recursive || (e.xflags & XMIT.TOP_DIR) !== 0;
  }

  /** Names (last components) of the directory's children as the sender listed them. */
  private childrenIn(dir: FileEntry, list: FileList): Set<string> {
    const parent = dir.name === '.' ? '' : dir.name;
    const names = new Set<string>();
    for (const e of list.entries) {
      if (e.inactive || e.name === '.') continue;
      if (dirOf(e.name) === parent) names.add(baseOf(e.name));
    }
    return names;
  }

  private async deleteInAllDirs(): Promise<void> {
    const list = this.lists[0];
    for (const e of list.entries) {
      if (!e.inactive && isDir(e) && this.isContentDir(e)) await this.deleteInDir(e, this.childrenIn(e, list));
    }
  }

  private async runLateDeletions(): Promise<void> {
    for (const d of this.delayedDeletes.splice(0)) await this.deleteInDir(d.dir, d.keep);
  }

  private dirFilterCache = new Map<string, DirFilter>();

  private dirFilter(dirName: string): DirFilter | undefined {
    if (!this.filters) return undefined;
    let f = this.dirFilterCache.get(dirName);
    if (!f) {
      const parent = dirName === '.' ? undefined : dirOf(dirName) || '.';
      if (parent !== undefined && !this.dirFilterCache.has(parent)) this.dirFilter(parent);
      f = this.filters.enterDir(dirName === '.' ? '' : dirName);
      this.dirFilterCache.set(dirName, f);
    }
    return f;
  }

  private async deleteInDir(dirEntry: FileEntry, keep: Set<string>): Promise<void> {
    const dirName = dirEntry.name;
    const destDir = this.destOf(dirEntry);
    const st = this.sandbox.lstat(destDir);
    if (!st || st.type !== 'dir') return;
    const filter = this.dirFilter(dirName);
    const names = this.sandbox.readdir(destDir).sort().reverse();
    for (const name of names) {
      if (keep.has(name)) continue;
      const rel = dirName === '.' ? name : `${dirName}/${name}`;
      const est = this.sandbox.lstat(joinRel(destDir, name));
      if (!est) continue;
      if (filter && filter.protectedFromDelete(rel, est.type === 'dir').protected) continue;
      this.deleteItem(joinRel(destDir, name), rel, est);
      await this.ctx.writer.writable();
    }
  }

  private deleteItem(destRel: string, rel: string, st: EntryStat): void {
    if (st.type === 'dir') {
      for (const child of this.sandbox.readdir(destRel).sort().reverse()) {
        const cst = this.sandbox.lstat(joinRel(destRel, child));
        if (cst) this.deleteItem(joinRel(destRel, child), `${rel}/${child}`, cst);
      }
    }
    if (this.deletionsLeft <= 0) {
      this.deleteLimitHit++;
      return;
    }
    if (!this.opts.dryRun) {
      try {
        if (st.type === 'dir') this.sandbox.rmdir(destRel);
        else this.sandbox.unlink(destRel);
      } catch (err) {
        if (err instanceof SandboxError) {
          if (st.type === 'dir' && err.code === 'ENOTEMPTY') sendInfo(this.ctx, `cannot delete non-empty directory: ${rel}\n`);
          else sendTransferError(this.ctx, `rsync: [generator] delete_file: ${rel}: ${err.message}`);
          return;
        }
        throw err;
      }
    }
    this.deletionsLeft--;
    this.countDeleted(st);
    this.reportDeleted(rel, st.type === 'dir');
  }

  private countDeleted(st: EntryStat): void {
    if (st.type === 'dir') this.deleted.dirs++;
    else if (st.type === 'symlink') this.deleted.symlinks++;
    else if (st.type === 'chr' || st.type === 'blk') this.deleted.devices++;
    else if (st.type === 'fifo' || st.type === 'sock') this.deleted.specials++;
    else this.deleted.files++;
  }

  private reportDeleted(rel: string, dir: boolean): void {
    if (this.protocol >= 29) {
      const payload = Buffer.from(dir ? `${rel}\0` : rel, 'latin1');
      this.ctx.writer.message(MsgTag.DELETED, payload);
    } else if (this.opts.verbose > 0) {
      sendInfo(this.ctx, `deleting ${rel}${dir ? '/' : ''}\n`);
    }
  }

  // ---- receiver --------------------------------------------------------------------------

  private async receive(): Promise<void> {
    const r = this.ctx.reader;
    for (;;) {
      const ndx = await r.readNdx();
      if (ndx === NDX_DONE) {
        this.onSenderDone();
        if (this.senderPhase > this.maxPhase) break;
        continue;
      }
      if (ndx < 0) {
        await this.onNegativeNdx(ndx);
        continue;
      }
      const list = this.listOf(ndx);
      if (!list) throw new ProtocolError(`Invalid file index: ${ndx}`);
      const iflags = this.protocol >= 29 ? await r.readU16() : ITEM.TRANSFER;
      if (iflags & ITEM.BASIS_TYPE_FOLLOWS) {
        // We never ask for an alternate basis, so a sender naming one is lying (CVE-2024-12086).
        throw new ProtocolError('rsync: received basis type we did not request');
      }
      if (iflags & ITEM.XNAME_FOLLOWS) await r.readVstring(4095);
      if (!(iflags & ITEM.TRANSFER)) continue;
      const p = this.pending.get(ndx);
      if (!p) throw new ProtocolError(`got transfer request for file not requested: ${ndx}`);
      if (!this.opts.dryRun) await this.receiveFile(p);
      this.completeTransfer(ndx);
    }
    if (this.protocol >= 31) {
      // The sender's goodbye echo (E4) arrives after our G4.
      const ndx = await r.readNdx();
      if (ndx !== NDX_DONE) throw new ProtocolError(`expected goodbye, got ndx ${ndx}`);
      this.senderPhase++;
      this.progress.notify();
    }
  }

  /** The sender echoes one NDX_DONE per finished list; the echo of G1 starts its phase 1. */
  private onSenderDone(): void {
    if (this.senderPhase === 0) {
      this.listEchoes++;
      const freed = this.unechoed.shift();
      if (freed) freed.entries = [];
      if (this.listEchoes > this.listDonesSent) throw new ProtocolError('unexpected NDX_DONE from sender');
      if (!(this.phaseOneSent && this.listEchoes === this.listDonesSent)) return;
    }
    this.senderPhase++;
    this.progress.notify();
  }

  private async onNegativeNdx(ndx: number): Promise<void> {
    if (!this.inc) throw new ProtocolError(`Invalid file index: ${ndx}`);
    if (ndx === NDX_FLIST_EOF) {
      this.flistEof = true;
      this.progress.notify();
      return;
    }
    const dirIndex = NDX_FLIST_OFFSET - ndx;
    if (ndx > NDX_FLIST_OFFSET || this.flistEof || dirIndex >= this.dirList.length) {
      throw new ProtocolError(`Invalid dir index: ${dirIndex} (count=${this.dirList.length})`);
    }
    if (this.dirsWithList.has(dirIndex)) throw new ProtocolError(`refusing malicious duplicate flist for dir ${dirIndex}`);
    this.dirsWithList.add(dirIndex);
    await this.receiveList(this.dirList[dirIndex]);
  }

  private async receiveFile(p: Pending): Promise<void> {
    const r = this.ctx.reader;
    const head = await readSumHead(r);
    if (head.count !== p.head.count || head.blength !== p.head.blength || head.remainder !== p.head.remainder) {
      throw new ProtocolError(`sum head mismatch for ${printable(p.entry.name)}`);
    }
    const e = p.entry;
    const dest = p.dest;
    const hasher = createTransferHasher(this.ctx.xferSum);
    let basisFd = -1;
    let outFd = -1;
    let tempRel: string | null = null;
    let failed: string | null = null;
    try {
      if (p.hasBasis) {
        try {
          basisFd = this.sandbox.openRead(dest).fd;
        } catch (err) {
          failed = `open basis failed: ${describe(err)}`;
        }
      }
      if (!failed) {
        try {
          if (this.opts.inplace && basisFd >= 0) {
            outFd = this.sandbox.openWrite(dest).fd;
          } else {
            const t = this.sandbox.createTemp(dirOf(dest), baseOf(dest));
            outFd = t.fd;
            tempRel = t.rel;
            this.currentTemp = { rel: t.rel, dest };
          }
        } catch (err) {
          failed = `mkstemp failed: ${describe(err)}`;
        }
      }
      const out = outFd >= 0 ? new CoalescingWriter(this.sandbox, outFd, 0, this.writeBuffer) : null;
      if (this.blockBuffer.length < head.blength) this.blockBuffer = Buffer.allocUnsafe(head.blength);
      const block = this.blockBuffer;
      const maxSize = this.ctx.grant.limits.maxFileSize;
      this.decoder.beginFile(head.count);
      for (;;) {
        const t = await this.decoder.next();
        if (t.kind === 'end') break;
        if (t.kind === 'literal') {
          hasher.update(t.data);
          out?.write(t.data);
        } else {
          const len = t.index === head.count - 1 && head.remainder ? head.remainder : head.blength;
          const data = block.subarray(0, len);
          if (basisFd >= 0) {
            const n = this.sandbox.read(basisFd, data, 0, len, t.index * head.blength);
            if (n < len) data.fill(0, n);
          } else {
            data.fill(0);
          }
          hasher.update(data);
          this.decoder.matched(data);
          out?.write(data);
        }
        if (out && maxSize !== undefined && out.length > maxSize) failed ??= `exceeds the maximum file size (${maxSize} bytes)`;
        if (out && out.length > e.size + (64 << 20) && !failed) {
          // Much more data than announced: keep consuming the stream but stop writing.
          failed = 'received more data than the file list announced';
        }
      }
      const sum = await r.readBytes(digestLength(this.ctx.xferSum.name));
      if (failed) {
        sendTransferError(this.ctx, `rsync: [receiver] ${printable(e.name)}: ${failed}`);
        return;
      }
      out!.flush();
      if (this.opts.inplace && tempRel === null) this.sandbox.truncate(outFd, out!.length);
      const ok = this.ctx.xferSum.name === 'none' || hasher.digest().equals(sum);
      if (!ok) {
        if (!p.redo) {
          if (this.opts.verbose > 0 || (this.opts.logFormat ?? '').includes('%i'))
            sendInfo(this.ctx, `WARNING: ${e.name} failed verification -- update discarded (will try again).\n`);
          p.list.redo.push(e);
        } else {
          sendTransferError(this.ctx, `ERROR: ${e.name} failed verification -- update discarded.`);
        }
        return;
      }
      const attrs = this.attrsFor(e, false, !p.hasBasis);
      if (attrs.mode === undefined && tempRel !== null) {
        // Without -p a replaced file keeps its permissions, a new one gets the sender's minus umask.
        const st = this.sandbox.lstat(dest);
        attrs.mode = st && st.type === 'file' ? st.mode & 0o7777 : e.mode & 0o777 & ~0o022;
      }
      this.sandbox.fsetAttrs(outFd, attrs);
      if (this.opts.fsync) this.sandbox.fsync(outFd);
      this.sandbox.close(outFd);
      outFd = -1;
      if (tempRel !== null) {
        if (this.opts.backup) this.makeBackup(dest);
        this.sandbox.rename(tempRel, dest);
        tempRel = null;
        this.currentTemp = null;
      }
      this.filesTransferred++;
      if (this.opts.removeSourceFiles) this.ctx.writer.message(MsgTag.SUCCESS, int32(e.ndx));
    } finally {
      if (basisFd >= 0) this.sandbox.close(basisFd);
      if (outFd >= 0) this.sandbox.close(outFd);
      if (tempRel !== null) {
        try {
          this.sandbox.unlink(tempRel);
        } catch {
          // already gone
        }
        this.currentTemp = null;
      }
    }
  }

  private makeBackup(dest: string): void {
    const st = this.sandbox.lstat(dest);
    if (!st || st.type === 'dir') return;
    const suffix = this.opts.suffix ?? (this.opts.backupDir ? '' : '~');
    let target = `${dest}${suffix}`;
    if (this.opts.backupDir) {
      const dir = confinePath(this.opts.backupDir, this.ctx.grant, '--backup-dir').rel;
      target = joinRel(dir, `${dest.slice(this.destRel ? this.destRel.length + 1 : 0)}${suffix}`);
      this.sandbox.mkdirp(dirOf(target), 0o755);
    }
    this.sandbox.rename(dest, target);
  }

  /** On a fatal error mid-file: keep the partial data only when the client asked for --partial. */
  private abandonTemp(): void {
    const t = this.currentTemp;
    if (!t) return;
    this.currentTemp = null;
    try {
      if (this.opts.partial && !this.opts.partialDir) this.sandbox.rename(t.rel, t.dest);
      else this.sandbox.unlink(t.rel);
    } catch {
      // best effort
    }
  }
}

function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
}

function makedev(major: number, minor: number): number {
  return ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function runReceiver(ctx: SessionContext): Promise<number> {
  const receiver = new Receiver(ctx);
  const code = await receiver.run();
  ctx.log.info({ filesTransferred: receiver.filesTransferred }, 'receiver done');
  return code;
}
