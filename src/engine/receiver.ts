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
import { chooseSumHead, readSumHead, writeBlockSums, writeSumHead, type BlockSums, type SumHead } from '../protocol/sumhead.js';
import { createTokenDecoder, type TokenDecoder } from '../protocol/token.js';
import { SandboxError, type Attrs, type EntryStat, type Sandbox } from '../sandbox/sandbox.js';
import { isUnsafeSymlink, mungeSymlink } from '../sandbox/sandbox.js';
import { BlockSumsBuilder } from './delta.js';
import { FilterSet, type DirFilter } from './filter-match.js';
import { CF, IOERR, incRecurse, flistOptionsFor, type SessionContext } from './context.js';
import { Quota } from './quota.js';
import { parseChmod, type ChmodFn } from '../policy/chmod.js';
import { ITEM, isSignificant } from './itemize.js';
import { installMessageHandler, sendInfo, sendTransferError, sendWarning } from './messages.js';
import { Notifier, yieldToLoop } from './notifier.js';
import { baseOf, dirOf, joinRel, printable } from './relpath.js';
import { localIds } from '../sandbox/idmap.js';
import {
  FNAMECMP,
  MAX_BASIS_DIRS,
  TMP_PARTIAL_DIR,
  PartialDir,
  altDestOption,
  auxDir,
  compareNames,
  findFuzzy,
  type AltDestType,
  type FuzzyEntry,
} from './receiver-basis.js';
import { IoTimeout } from './io-timeout.js';

const READ_CHUNK = 1024 * 1024;
/** Block sums of a large basis give the event loop a turn after this many bytes. */
const SUMS_YIELD_BYTES = 8 * 1024 * 1024;
const WRITEBACK_STEP = 32 * 1024 * 1024;
/** A basis at least this large is closed on the thread pool (its blocks may be freed then). */
const BACKGROUND_CLOSE = 64 * 1024 * 1024;
/** The generator lstats up to this many names of one destination directory in one call. */
const STAT_AHEAD = 1024;
const WRITE_BUFFER = 256 * 1024;
/** ACCESSPERMS & ~umask of the reference's server (dflt_perms), for files and dirs without -p. */
const DFLT_PERMS = 0o777 & ~0o022;
/** generator.c ITEM_MATCHED: internal to itemize() (bits >= 16 never go on the wire). */
const ITEM_MATCHED = 1 << 18;
/** Zero runs at least this long become holes with -S (the reference's SPARSE_WRITE_SIZE). */
const SPARSE_RUN = 1024;

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
  /** fnamecmp_type we asked for (FNAMECMP.FNAME unless an alternate basis was chosen). */
  basisType: number;
  /** Root-relative path of the basis file (null: none). */
  basisRel: string | null;
  /** Fuzzy basis name sent as xname. */
  xname?: string;
  /** This file's --partial-dir path (undefined without a partial dir). */
  partialRel?: string;
  /** Permission bits the generator settled on (dest_mode() against the destination). */
  mode: number;
  /** Nothing was at the destination when the generator looked (a new file can be made unnamed). */
  destMissing: boolean;
}

/** The basis a transfer is requested with (requestFile()). */
interface Basis {
  /** Root-relative path of the basis file (null: none). */
  rel: string | null;
  st: EntryStat | null;
  /** fnamecmp_type */
  type: number;
  xname?: string;
  partialRel?: string;
  mode: number;
  destMissing: boolean;
}

/** What requestFile() sends for a basis: the sum head, and whether block sums follow it. */
interface SumPlan {
  head: SumHead;
  /** The basis is used for a delta (else the head is empty and the file comes whole). */
  useBasis: boolean;
  withSums: boolean;
}

/** A transfer whose data sits in the partial dir until the end of the transfer phase (--delay-updates). */
interface Delayed {
  entry: FileEntry;
  dest: string;
  partialRel: string;
}

/** The temp file being written, for --partial handling when the session dies mid-file. */
interface CurrentTemp {
  /** null: unnamed (O_TMPFILE) */
  rel: string | null;
  dest: string;
  fd: number;
  out: CoalescingWriter;
  entry: FileEntry;
  partialRel?: string;
  mode: number;
  gotLiteral: boolean;
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
  /** -H: each hard-link group's last regular-file member in this list. */
  lastOfGroup?: Map<number, FileEntry>;
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
/**
 * Serves matched blocks of the basis file from a 1 MiB read-ahead window: matches mostly come in
 * runs of consecutive blocks, so this replaces one pread per block with one per MiB.
 */
class BasisWindow {
  private start = 0;
  private end = 0;

  constructor(
    private readonly sandbox: Sandbox,
    private readonly fd: number,
    private readonly buf: Buffer,
  ) {}

  /** Fills dst with `len` basis bytes at `pos` (zeros past the end of the file). */
  read(dst: Buffer, pos: number, len: number): void {
    if (len > this.buf.length) {
      const n = this.sandbox.read(this.fd, dst, 0, len, pos);
      if (n < len) dst.fill(0, n, len);
      return;
    }
    if (pos < this.start || pos + len > this.end) {
      this.start = pos;
      this.end = pos + this.sandbox.read(this.fd, this.buf, 0, this.buf.length, pos);
    }
    const have = Math.max(0, Math.min(len, this.end - pos));
    this.buf.copy(dst, 0, pos - this.start, pos - this.start + have);
    if (have < len) dst.fill(0, have, len);
  }
}

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

  /**
   * -S: runs of at least SPARSE_RUN zero bytes are skipped (left as holes of a fresh file); the
   * caller ftruncate()s to the final length so a trailing hole is kept.
   */
  sparse = false;
  /** Start writeback every WRITEBACK_STEP bytes (the file will be renamed over an existing one). */
  writeback = false;
  private writtenBack = 0;

  write(data: Buffer): void {
    if (data.length >= WRITE_BUFFER) {
      this.flush();
      this.put(data, data.length);
      return;
    }
    if (this.used + data.length > WRITE_BUFFER) this.flush();
    data.copy(this.buf, this.used);
    this.used += data.length;
  }

  flush(): void {
    if (this.used === 0) return;
    this.put(this.buf, this.used);
    this.used = 0;
  }

  private put(data: Buffer, len: number): void {
    if (this.writeback && this.position + len - this.writtenBack >= WRITEBACK_STEP) {
      this.sandbox.startWriteback(this.fd, this.writtenBack, this.position - this.writtenBack);
      this.writtenBack = this.position;
    }
    if (!this.sparse) {
      this.sandbox.write(this.fd, data, 0, len, this.position);
      this.position += len;
      return;
    }
    let start = 0;
    let i = 0;
    while (i < len) {
      if (data[i] !== 0) {
        i++;
        continue;
      }
      let z = i + 1;
      while (z < len && data[z] === 0) z++;
      if (z - i >= SPARSE_RUN || (z === len && i === start)) {
        if (i > start) this.sandbox.write(this.fd, data, start, i - start, this.position + start);
        start = z;
      }
      i = z;
    }
    if (len > start) this.sandbox.write(this.fd, data, start, len - start, this.position + start);
    this.position += len;
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
  /** Echoed lists that stay addressable (no incremental recursion: the one list lives to the end). */
  private readonly retired: FileList[] = [];
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
  /**
   * Directories this session made (by list name; '' for a destination it created): they were
   * empty, so their entries need no lstat(2) to know nothing is there.
   */
  private readonly madeDirs = new Set<string>();
  /** Directories whose attributes are set once everything below them is written. */
  private readonly dirFixups: FileEntry[] = [];
  private decoder!: TokenDecoder;
  private readonly isRoot = process.getuid?.() === 0;
  private readonly hlinkLeaders = new Map<number, FileEntry>();
  private readonly hlinkFollowers: FileEntry[] = [];
  private userNames = new Map<number, string>();
  private groupNames = new Map<number, string>();
  private currentTemp: CurrentTemp | null = null;
  private readonly writeBuffer = Buffer.allocUnsafe(WRITE_BUFFER);
  private blockBuffer = Buffer.alloc(0);
  private readonly basisWindowBuffer = Buffer.allocUnsafe(1024 * 1024);
  /** The generator's reads (basis sums, --checksum sums); see chunksOf(). */
  private readonly readBuffer = Buffer.allocUnsafe(READ_CHUNK);
  filesTransferred = 0;
  /** Delta-stream bytes: sent by the client (literal) and copied from the basis (matched). */
  literalBytes = 0;
  matchedBytes = 0;
  get deletions(): number {
    const d = this.deleted;
    return d.files + d.dirs + d.symlinks + d.devices + d.specials;
  }

  // ---- options that pick a basis, a temp location or a backup (receiver-basis.ts) ----
  /** The reference's cwd: the destination dir (its parent when the destination is one file). */
  private baseDir = '';
  /** --partial / --partial-dir / --delay-updates keep interrupted or delayed data (keep_partial). */
  private readonly keepPartial: boolean;
  private partialDir: PartialDir | undefined;
  private tempDirRel: string | undefined;
  private backupDirRel: string | undefined;
  private readonly backupSuffix: string;
  private readonly backupDirsMade = new Set<string>();
  private altType: AltDestType | undefined;
  /** Root-relative alt-dest dirs, in option order (fnamecmp_type = index). */
  private basisDirs: string[] = [];
  /** -y: 1 = the file's own dir; 2 (-yy) also the alt-dest dirs. */
  private fuzzyLevels = 0;
  private fuzzyDir: string | null = null;
  private fuzzyLists: Array<FuzzyEntry[] | null> = [];
  private readonly delayed: Delayed[] = [];
  /** --existing: directories not created (their contents are skipped without a word). */
  private readonly existingSkipped = new Set<string>();
  private readonly delayedNdx = new Set<number>();
  /** --delay-updates: the final renames have been done (G3 may go). */
  private delayedDone = false;
  private readonly infoName: number;
  /** stdout_format_has_i on the server: 0, 1 (%i) or 2 (%i%I). */
  private readonly hasI: number;
  private timeout: IoTimeout | null = null;

  /** Per-grant quota (null when none) and forced permissions (rsyncd's incoming chmod). */
  private readonly quota: Quota | null;
  private readonly incomingChmod: ChmodFn | null;

  constructor(private readonly ctx: SessionContext) {
    const o = ctx.opts;
    this.quota = Quota.forRoot(ctx.grant.limits, ctx.sandbox);
    this.incomingChmod = ctx.grant.limits.incomingChmod ? parseChmod(ctx.grant.limits.incomingChmod) : null;
    this.protocol = ctx.protocol;
    const append = o.append === 1 && ctx.protocol < 30 ? 2 : o.append;
    // The reference's option post-processing (options.c) as it applies to a receiving server:
    // --append implies --inplace, --backup without --backup-dir implies --omit-dir-times,
    // --delay-updates without --partial-dir uses .~tmp~.
    this.opts = {
      ...o,
      append,
      inplace: o.inplace || append > 0,
      omitDirTimes: o.omitDirTimes || (o.backup && o.backupDir === undefined),
      partialDir: o.partialDir ?? (o.delayUpdates ? TMP_PARTIAL_DIR : undefined),
    };
    if (this.opts.inplace && this.opts.partialDir !== undefined && PartialDir.usable(this.opts.partialDir, ctx.grant)) {
      throw new RsyncError(
        `--${append ? 'append' : 'inplace'} cannot be used with --${o.delayUpdates ? 'delay-updates' : 'partial-dir'}`,
        ExitCode.SYNTAX,
      );
    }
    this.keepPartial = !this.opts.inplace && (o.partial || PartialDir.usable(this.opts.partialDir, ctx.grant));
    this.backupSuffix = o.suffix ?? (o.backupDir !== undefined ? '' : '~');
    this.sandbox = ctx.sandbox;
    this.inc = incRecurse(ctx);
    this.deletionsLeft = this.opts.maxDelete === undefined ? Infinity : Math.max(0, this.opts.maxDelete);
    this.infoName = o.verbose;
    const fmt = o.logFormat ?? '';
    this.hasI = fmt.includes('%i%I') || fmt.includes('%I') ? 2 : fmt.includes('%i') ? 1 : 0;
  }

  private get maxPhase(): number {
    return this.protocol >= 29 ? 2 : 1;
  }

  async run(): Promise<number> {
    this.peer = installMessageHandler(this.ctx, (tag, payload) => this.onRoleMessage(tag, payload));
    if (this.opts.timeout > 0) {
      this.timeout = new IoTimeout(this.ctx, this.opts.timeout);
      this.timeout.start();
    }
    try {
      const work = (async () => {
        await this.receiveFirstList();
        this.resolveDestination();
        this.setupBasisOptions();
        this.decoder = createTokenDecoder(this.ctx.reader, this.ctx.compress, this.protocol);
        await Promise.all([this.generate(), this.receive()]);
      })();
      work.catch(() => undefined); // when the timeout wins the race, work never settles usefully
      await (this.timeout ? Promise.race([work, this.timeout.expired]) : work);
    } catch (err) {
      this.abandonTemp();
      throw err;
    } finally {
      this.timeout?.stop();
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
    return flistOptionsFor(this.ctx);
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
    if (this.incomingChmod) {
      // As rsyncd's "incoming chmod": the forced modes replace the sender's as entries arrive.
      for (const e of entries) if (!isSymlink(e) && e.mode !== 0) e.mode = this.incomingChmod(e.mode, isDir(e));
    }
    if (parent) {
      for (const e of entries) {
        if (dirOf(e.name) !== (parent.name === '.' ? '' : parent.name)) {
          throw new ProtocolError(`ABORTING due to invalid path from sender: ${printable(e.name)}`);
        }
      }
    }
    const sorted = sortFileList(entries, this.protocol, ndxStart);
    if (this.opts.pruneEmptyDirs && !this.inc) this.pruneEmptyDirs(sorted);
    // A directory named twice (several sources) keeps its place: the sender numbers its dup too.
    if (this.inc) for (const e of sorted) if (isDir(e)) this.dirList.push(e);
    this.lists.push({ ndxStart, entries: sorted, parent, pending: 0, redo: [], processed: false, finished: false });
    this.nextNdxStart = ndxStart + sorted.length + (this.inc ? 1 : 0);
    this.progress.notify();
  }

  /**
   * -m (flist.c, receiving side): directories with no non-directory anywhere below them are
   * dropped from the list (not created), unless a filter rule excludes (protects) them.
   */
  private pruneEmptyDirs(entries: FileEntry[]): void {
    const keep = new Set<string>();
    const keepChain = (dir: string): void => {
      for (let d = dir; d !== '' && !keep.has(d); d = dirOf(d)) keep.add(d);
    };
    for (const e of entries) {
      if (e.inactive) continue;
      if (!isDir(e)) keepChain(dirOf(e.name));
      else if (e.name !== '.' && this.filters) {
        const f = this.dirFilter(dirOf(e.name) || '.');
        if (f && f.protectedFromDelete(e.name, true).protected) keepChain(e.name);
      }
    }
    for (const e of entries) {
      if (!e.inactive && isDir(e) && e.name !== '.' && !keep.has(e.name)) e.inactive = true;
    }
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
    for (const group of [this.lists, this.unechoed, this.retired]) {
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
    let st: EntryStat | null;
    try {
      st = this.sandbox.lstat(this.destRel);
    } catch (err) {
      // e.g. a parent of the destination is a symlink (never followed): a clean refusal.
      if (!(err instanceof SandboxError)) throw err;
      throw new RsyncError(`rsync: [Receiver] change_dir "${printable(arg)}" failed: ${describe(err)}`, ExitCode.FILESELECT);
    }
    // --mkpath (get_local_name): the missing leading dirs (all of them with a trailing slash or
    // several files, else all but the last component), reported as "created N directories for X".
    const hasSlash = arg.includes('/');
    if (this.opts.mkpath && !st && (hasSlash || first.length > 1)) {
      const dropName = !(first.length > 1 && !dest.trailingSlash);
      const target = dropName && !dest.trailingSlash ? dirOf(this.destRel) : this.destRel;
      let missing = 0;
      for (let d = target; d !== ''; d = dirOf(d)) {
        if (this.lstatQuiet(d)) break;
        missing++;
      }
      if (missing > 0) {
        if (!this.opts.dryRun) {
          try {
            this.sandbox.mkdirp(target, 0o777);
          } catch (err) {
            throw new RsyncError(`rsync: [Receiver] mkdir "${printable(arg)}" failed: ${describe(err)}`, ExitCode.FILEIO);
          }
        }
        if (this.infoName > 0 || this.hasI > 0) {
          const shown = hasSlash && (first.length === 1 || dest.trailingSlash) ? arg.slice(0, arg.lastIndexOf('/')) : arg;
          sendInfo(this.ctx, `created ${missing} director${missing === 1 ? 'y' : 'ies'} for ${printable(shown)}\n`);
        }
        if (!this.opts.dryRun) st = this.lstatQuiet(this.destRel);
      }
    }
    const onlyOneFile = first.length === 1 && !isDir(first[0]);
    if (onlyOneFile && !dest.trailingSlash && (!st || st.type !== 'dir')) {
      this.singleFile = true;
      return;
    }
    if (st && st.type !== 'dir') {
      throw new RsyncError('ERROR: destination must be a directory when copying more than 1 file', ExitCode.FILESELECT);
    }
    if (!st && this.destRel !== '') {
      if (!this.opts.dryRun) {
        try {
          this.sandbox.mkdir(this.destRel, 0o777);
          this.madeDirs.add('');
        } catch (err) {
          throw new RsyncError(`rsync: [Receiver] mkdir "${printable(arg)}" failed: ${describe(err)}`, ExitCode.FILEIO);
        }
      }
      // As get_local_name (also in a dry run): the transfer root "." counts as created (itemized cd+++++++++).
      if (first.some((e) => e.name === '.')) this.newDirs.add('.');
      if (this.infoName > 0 || this.hasI > 0) sendInfo(this.ctx, `created directory ${arg.replace(/(.)\/+$/, '$1')}\n`);
    }
  }

  /**
   * Resolves the path options against the destination (the reference chdir()s into it, so
   * relative values are relative to it) and checks them as main.c/options.c do.
   */
  private setupBasisOptions(): void {
    const o = this.opts;
    const grant = this.ctx.grant;
    this.baseDir = this.singleFile ? dirOf(this.destRel) : this.destRel;
    if (o.partialDir !== undefined && PartialDir.usable(o.partialDir, grant)) this.partialDir = new PartialDir(o.partialDir, grant);
    if (o.tempDir !== undefined) {
      this.tempDirRel = auxDir(o.tempDir, grant, this.baseDir, '--temp-dir');
      const st = this.auxDirStat(this.tempDirRel, o.tempDir, '--temp-dir');
      if (!st || st.type !== 'dir') {
        throw new RsyncError(`rsync: the --temp-dir path is not a directory: ${printable(o.tempDir)}`, ExitCode.SYNTAX);
      }
    }
    if (o.backup && o.backupDir !== undefined) {
      const rel = auxDir(o.backupDir, grant, this.baseDir, '--backup-dir');
      if (rel !== this.baseDir || confinePath(o.backupDir, grant, '--backup-dir').anchored) this.backupDirRel = rel;
      if (this.backupDirRel !== undefined) {
        const st = this.auxDirStat(this.backupDirRel, o.backupDir, '--backup-dir');
        if (st && st.type !== 'dir') {
          throw new RsyncError(`The backup-dir is not a directory: ${printable(o.backupDir)}`, ExitCode.SYNTAX);
        }
        if (this.infoName >= 2) sendInfo(this.ctx, `${st ? '' : '(new) '}backup_dir is ${printable(o.backupDir.replace(/\/+$/, ''))}\n`);
      }
    }
    const alt: Array<[AltDestType, string[]]> = [
      ['compare', o.compareDest],
      ['copy', o.copyDest],
      ['link', o.linkDest],
    ];
    for (const [type, dirs] of alt) {
      if (dirs.length === 0) continue;
      if (this.altType !== undefined) {
        throw new RsyncError(`You may not mix ${altDestOption(this.altType)} with ${altDestOption(type)}.`, ExitCode.SYNTAX);
      }
      this.altType = type;
      if (dirs.length > MAX_BASIS_DIRS) {
        throw new RsyncError(`ERROR: at most ${MAX_BASIS_DIRS} basis dirs can be specified`, ExitCode.SYNTAX);
      }
      if (dirs.length > 1 && this.protocol < 29) {
        throw new RsyncError(
          `Using more than one ${altDestOption(type)} option requires protocol 29 or higher (negotiated ${this.protocol}).`,
          ExitCode.PROTOCOL,
        );
      }
      for (const d of dirs) {
        const rel = auxDir(d, grant, this.baseDir, altDestOption(type));
        this.basisDirs.push(rel);
        let st: EntryStat | null = null;
        try {
          st = this.sandbox.lstat(rel);
        } catch {
          st = null;
        }
        const shown = printable(d.length > 1 ? d.replace(/\/+$/, '') : d);
        if (!st) sendWarning(this.ctx, `${altDestOption(type)} arg does not exist: ${shown}`);
        else if (st.type !== 'dir') sendWarning(this.ctx, `${altDestOption(type)} arg is not a dir: ${shown}`);
      }
    }
    if (this.protocol < 29) {
      if (o.fuzzy > 0) {
        throw new RsyncError(`--fuzzy requires protocol 29 or higher (negotiated ${this.protocol}).`, ExitCode.PROTOCOL);
      }
      if (this.altType !== undefined && o.inplace) {
        throw new RsyncError(
          `${altDestOption(this.altType)} with --inplace requires protocol 29 or higher (negotiated ${this.protocol}).`,
          ExitCode.PROTOCOL,
        );
      }
    }
    // Fuzzy matching needs the basis type in the request (protocol >= 29).
    if (o.fuzzy > 0 && this.protocol >= 29) this.fuzzyLevels = o.fuzzy > 1 ? this.basisDirs.length + 1 : 1;
    if (o.pruneEmptyDirs && this.protocol < 29) {
      throw new RsyncError(`--prune-empty-dirs requires protocol 29 or higher (negotiated ${this.protocol}).`, ExitCode.PROTOCOL);
    }
  }

  /** The entry's name as the reference sees it (relative to its cwd, baseDir). */
  private fnameOf(e: FileEntry): string {
    return this.singleFile ? baseOf(this.destRel) : e.name;
  }

  private destOf(e: FileEntry): string {
    return this.singleFile ? this.destRel : joinRel(this.destRel, e.name);
  }

  // ---- generator -------------------------------------------------------------------------

  private async generate(): Promise<void> {
    const w = this.ctx.writer;
    if (this.infoName >= 2) {
      const whole = this.opts.wholeFile === true && this.opts.append === 0;
      sendInfo(this.ctx, `delta-transmission ${whole ? 'disabled for local transfer or --whole-file' : 'enabled'}\n`);
    }
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
      if (this.opts.delayUpdates) this.handleDelayedUpdates();
      await this.finishAndSayGoodbye(late); // G3
      return;
    }
    if (this.opts.delayUpdates) {
      // The receiver's phase 2 begins with the sender's E2: the delayed renames, then G3.
      await this.progress.until(() => this.senderPhase >= 2);
      this.handleDelayedUpdates();
    }
    w.ndx(NDX_DONE); // G3
    w.flush();
    if (this.protocol < 31) {
      await this.progress.until(() => this.senderPhase >= 3);
      await this.finishAndSayGoodbye(late); // G4
      return;
    }
    if (late) {
      await this.progress.until(() => this.senderPhase >= 3);
      await this.runLateDeletions();
    }
    this.reportDeleteLimit();
    if (this.deleting || this.opts.force) this.writeDeleteStats();
    w.ndx(NDX_DONE); // G4
    w.flush();
    await this.progress.until(() => this.senderPhase >= 4);
    this.fixDirectoryAttributes();
    w.ndx(NDX_DONE); // G5: goodbye
    w.flush();
  }

  /** Protocols < 31: late deletions, the --max-delete report, directory times, then the goodbye NDX_DONE. */
  private async finishAndSayGoodbye(lateDeletions: boolean): Promise<void> {
    if (lateDeletions) await this.runLateDeletions();
    this.reportDeleteLimit();
    this.fixDirectoryAttributes();
    this.ctx.writer.ndx(NDX_DONE);
    this.ctx.writer.flush();
  }

  private async processList(list: FileList): Promise<void> {
    const w = this.ctx.writer;
    if (this.opts.hardLinks) {
      list.lastOfGroup = new Map();
      for (const e of list.entries) {
        if (!e.inactive && isRegular(e) && e.hlinkGroup !== undefined && !this.hlinkLeaders.has(e.hlinkGroup)) list.lastOfGroup.set(e.hlinkGroup, e);
      }
    }
    if (list.parent) await this.processDirectory(list.parent, list.ndxStart - 1, list);
    let lastYield = Date.now();
    const ahead = this.canStatAhead() ? new Map<FileEntry, EntryStat | null>() : null;
    let aheadUntil = 0;
    const entries = list.entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.inactive) continue;
      if (ahead && i >= aheadUntil) aheadUntil = this.statAhead(entries, i, ahead);
      try {
        await this.generateEntry(e, list, ahead?.get(e));
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
      // Sent now, not with the next batch: with incremental recursion the sender keeps only
      // about 1000 files ahead and sends more lists when it sees lists finish.
      w.flush();
      this.listDonesSent++;
      l.finished = true;
      this.unechoed.push(l);
      this.lists.shift();
      this.nextToProcess--;
      if (last) {
        this.phaseOneSent = true;
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

  /**
   * Destination lstats can be taken a directory at a time ahead of the entries (statAhead) when
   * handling one entry changes nothing at another entry's name: not with backups (name~), partial
   * or temp dirs, hard links (followers are linked when their leader completes), missing-arg
   * deletions or -R --no-implied-dirs (parents made on the way).
   */
  private canStatAhead(): boolean {
    const o = this.opts;
    return !this.singleFile && !o.backup && !o.hardLinks && !o.deleteMissingArgs && !(o.relative && !o.impliedDirs) &&
      this.partialDir === undefined && this.tempDirRel === undefined;
  }

  /**
   * Fills `cache` (emptied first) with the destination lstats of entries[from] and the entries
   * after it in the same destination directory, up to STAT_AHEAD, in one call; returns the index
   * after the last entry looked at. Entries whose stat failed, or that need none (knownAbsent),
   * are left out: generateEntry() does its own.
   */
  private statAhead(entries: readonly FileEntry[], from: number, cache: Map<FileEntry, EntryStat | null>): number {
    cache.clear();
    const dir = dirOf(this.destOf(entries[from]!));
    const names: string[] = [];
    const which: FileEntry[] = [];
    let i = from;
    for (; i < entries.length && names.length < STAT_AHEAD; i++) {
      const e = entries[i]!;
      if (e.inactive || modeType(e.mode) === 0) continue;
      const dest = this.destOf(e);
      if (dirOf(dest) !== dir) break;
      if (this.knownAbsent(e)) continue;
      names.push(baseOf(dest));
      which.push(e);
    }
    if (names.length < 2) return Math.max(i, from + 1);
    let stats: Array<EntryStat | null | SandboxError>;
    try {
      stats = this.sandbox.lstatChildren(dir, names);
    } catch (err) {
      if (err instanceof SandboxError) return i;
      throw err;
    }
    for (let k = 0; k < which.length; k++) {
      const st = stats[k]!;
      if (!(st instanceof SandboxError)) cache.set(which[k]!, st);
    }
    return i;
  }

  /** `statedAhead`: the destination's lstat when statAhead() took it (undefined: not taken). */
  private async generateEntry(e: FileEntry, list: FileList, statedAhead?: EntryStat | null): Promise<void> {
    const dest = this.destOf(e);
    const st = this.knownAbsent(e) ? null : statedAhead !== undefined ? statedAhead : this.sandbox.lstat(dest);
    const o = this.opts;
    if (modeType(e.mode) === 0) {
      // --delete-missing-args: a mode-0 entry names a source arg that is gone; its counterpart
      // here is deleted (a non-empty directory only with --delete/--force).
      if (st && o.deleteMissingArgs && !o.dryRun) {
        const name = this.fnameOf(e);
        if (st.type === 'dir' && !(o.deleteMode || o.force) && this.sandbox.readdir(dest).length > 0) {
          sendInfo(this.ctx, `cannot delete non-empty directory: ${name}\n`);
        } else {
          this.deleteItem(dest, name, st);
        }
      } else if (st && o.deleteMissingArgs) {
        this.deleteItem(dest, this.fnameOf(e), st);
      }
      return;
    }
    // --existing / --ignore-existing come first, for every type (recv_generator).
    if (o.existing && !st) {
      // Below a directory that --existing did not create, everything is skipped silently (skip_dir).
      if (this.existingSkipped.size > 0) {
        for (let d = dirOf(e.name); d !== ''; d = dirOf(d)) if (this.existingSkipped.has(d)) return;
      }
      if (isDir(e)) this.existingSkipped.add(e.name);
      if (this.infoName >= 2) sendInfo(this.ctx, `not creating new ${isDir(e) ? 'directory' : 'file'} "${this.fnameOf(e)}"\n`);
      return;
    }
    if (o.ignoreExisting && st && (!isDir(e) || st.type !== 'dir')) {
      if (this.infoName >= 2 && !(isDir(e) && this.inc && e.name !== '.')) sendInfo(this.ctx, `${this.fnameOf(e)} exists\n`);
      return;
    }
    if (o.relative && !o.impliedDirs) {
      // -R --no-implied-dirs: implied parents (TOP_DIR|NO_CONTENT_DIR) are neither made nor
      // itemized; a missing parent of an entry is created silently (make_path).
      if (this.isImpliedDirSkipped(e)) return;
      const parent = dirOf(dest);
      if (!o.dryRun && parent !== '' && parent !== this.baseDir && !this.lstatQuiet(parent)) this.sandbox.mkdirp(parent, 0o777);
    }
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

  /**
   * An entry of a directory this session made: nothing can be there yet, unless this session put
   * it there itself (backups, partial files and temp files can go into other directories).
   */
  private knownAbsent(e: FileEntry): boolean {
    const o = this.opts;
    if (e.name === '.' || o.backup || this.partialDir !== undefined || this.tempDirRel !== undefined) return false;
    return this.madeDirs.has(dirOf(e.name));
  }

  /** -R --no-implied-dirs (protocol >= 30): an implied parent (FLAG_IMPLIED_DIR) is left alone. */
  private isImpliedDirSkipped(e: FileEntry): boolean {
    const both = XMIT.TOP_DIR | XMIT.NO_CONTENT_DIR;
    return this.opts.relative && !this.opts.impliedDirs && isDir(e) && this.protocol >= 30 && (e.xflags & both) === both;
  }

  /** A directory: create or fix it, itemize it (as `itemNdx`), and delete extraneous entries in it. */
  private async processDirectory(e: FileEntry, itemNdx: number, list: FileList): Promise<void> {
    if (this.isImpliedDirSkipped(e)) return;
    const dest = this.destOf(e);
    let st = this.sandbox.lstat(dest);
    if (this.opts.existing && !st && !this.newDirs.has(e.name)) return;
    if (this.opts.ignoreExisting && st && st.type !== 'dir') return;
    const wasThere = st !== null && st.type === 'dir' && !this.newDirs.has(e.name);
    if (!this.ensureDir(e, dest, st) && !wasThere && !this.newDirs.has(e.name)) return; // could not make room
    const created = this.newDirs.has(e.name);
    if (created) st = null;
    if (!this.inc || e.name === '.') this.dirFixups.push(e);
    // Deletions first: the reference queues MSG_DELETED ahead of the buffered itemize record, so
    // the client prints "*deleting" lines before the directory's own line.
    if (this.deleting && this.isContentDir(e) && !created) {
      const keep = this.childrenIn(e, list);
      if (this.deleteTiming() === 'during') await this.deleteInDir(e, keep);
      else if (this.deleteTiming() === 'delay' || this.deleteTiming() === 'after') this.delayedDeletes.push({ dir: e, keep });
    }
    let statret = st ? 0 : -1;
    let cmpSt = st;
    let itemizing = true;
    if (!st && this.basisDirs.length > 0) {
      const j = this.tryDestsNon(e, dest);
      if (j === -2) {
        itemizing = false;
        statret = 1;
      } else if (typeof j === 'object') {
        statret = 1;
        cmpSt = j.st;
      }
    }
    if (itemizing) {
      const base = statret !== 0 ? ITEM.LOCAL_CHANGE : 0;
      this.itemizeNdx(itemNdx, statret >= 0 && cmpSt ? this.itemAttrs(e, cmpSt, base) : base | ITEM.IS_NEW);
    }
    // Protocol < 29: the server names directories it changed (set_file_attrs() said "updated").
    if (this.protocol < 29 && this.infoName > 0) {
      const updated = created ? this.newDirAttrsDiffer(e) : st !== null && this.attrChanges(e, st, false) !== 0;
      if (updated) sendInfo(this.ctx, `${e.name}/\n`);
    }
  }

  /** Whether set_file_attrs() has anything to do on a freshly made directory. */
  private newDirAttrsDiffer(e: FileEntry): boolean {
    const o = this.opts;
    if (o.times && !o.omitDirTimes) return true;
    if (o.perms && (e.mode & 0o7777) !== (e.mode & 0o777 & DFLT_PERMS)) return true;
    return (o.owner || o.group) && this.isRoot;
  }

  /** Makes sure a directory exists; returns true when it had to be created (or a dry run pretends so). */
  private ensureDir(e: FileEntry, dest: string, st: EntryStat | null): boolean {
    if (st && st.type === 'dir') return false;
    if (this.newDirs.has(e.name)) return false;
    if (st && !this.makeRoom(e, dest, st, 'directory')) return false;
    this.newDirs.add(e.name);
    if (!this.opts.dryRun && dest !== '') {
      this.quota?.addEntry();
      this.sandbox.mkdir(dest, 0o700);
      this.madeDirs.add(e.name);
    }
    return true;
  }

  private itemize(e: FileEntry, iflags: number, xname?: string): void {
    this.itemizeNdx(e.ndx, iflags, xname);
  }

  /** generator.c itemize(): the record goes out when significant, with -vv or -ii, or with a name. */
  private itemizeNdx(ndx: number, iflags: number, xname?: string): void {
    if (this.protocol < 29) return;
    iflags &= 0xffff;
    if (xname !== undefined) iflags |= ITEM.XNAME_FOLLOWS;
    if (!isSignificant(iflags) && this.infoName < 2 && this.hasI < 2 && !xname) return;
    const w = this.ctx.writer;
    w.ndx(ndx);
    w.u16(iflags);
    if (xname !== undefined) w.vstring(Buffer.from(xname, 'latin1'));
  }

  /**
   * The attribute part of generator.c itemize() for an item compared with `st` (null: the item
   * is new). `iflags` carries the caller's TRANSFER/LOCAL_CHANGE/... bits.
   */
  private itemAttrs(e: FileEntry, st: EntryStat | null, iflags: number, xname?: string): number {
    if (!st) return iflags | ITEM.IS_NEW;
    const o = this.opts;
    const link = isSymlink(e);
    const keepTime = !o.times ? false : isDir(e) ? !o.omitDirTimes : link ? !o.omitLinkTimes : true;
    if (isRegular(e) && e.size !== st.size) iflags |= ITEM.REPORT_SIZE;
    if (keepTime) {
      if (!this.sameMtime(e, st)) iflags |= ITEM.REPORT_TIME;
    } else if (iflags & (ITEM.TRANSFER | ITEM.LOCAL_CHANGE) && !(iflags & ITEM_MATCHED) && (!(iflags & ITEM.XNAME_FOLLOWS) || xname)) {
      iflags |= ITEM.REPORT_TIME;
    }
    if (!link) {
      if (o.perms) {
        if ((st.mode & 0o7777) !== (e.mode & 0o7777)) iflags |= ITEM.REPORT_PERMS;
      } else if (o.executability && (st.mode & 0o111 ? 1 : 0) !== (e.mode & 0o111 ? 1 : 0)) {
        iflags |= ITEM.REPORT_PERMS;
      }
    }
    if (o.owner && this.isRoot && st.uid !== this.mappedUid(e)) iflags |= ITEM.REPORT_OWNER;
    if (o.group && this.canSetGroup(this.mappedGid(e)) && st.gid !== this.mappedGid(e)) iflags |= ITEM.REPORT_GROUP;
    return iflags;
  }

  /** What set_file_attrs() would change on an existing item (0: nothing; its "updated"). */
  private attrChanges(e: FileEntry, st: EntryStat, isLink: boolean): number {
    let flags = 0;
    if (this.opts.times && !(isLink && this.opts.omitLinkTimes) && !(isDir(e) && this.opts.omitDirTimes)) {
      if (!this.sameMtime(e, st)) flags |= ITEM.REPORT_TIME;
    }
    if (!isLink) {
      const want = this.opts.perms ? e.mode & 0o7777 : this.destMode(e.mode, st.mode, true, isRegular(e)) & 0o7777;
      if ((st.mode & 0o7777) !== want) flags |= ITEM.REPORT_PERMS;
    }
    if (this.opts.owner && this.isRoot && st.uid !== this.mappedUid(e)) flags |= ITEM.REPORT_OWNER;
    if (this.opts.group && this.canSetGroup(this.mappedGid(e)) && st.gid !== this.mappedGid(e)) flags |= ITEM.REPORT_GROUP;
    return flags;
  }

  /**
   * set_file_attrs() on an unchanged item: what it updates. With --checksum the reference
   * compares times exactly (ATTRS_ACCURATE_TIME), so a protocol without nanoseconds resets them.
   */
  private updateNeeded(e: FileEntry, st: EntryStat, isLink: boolean): number {
    let changes = this.attrChanges(e, st, isLink);
    const o = this.opts;
    const timesWanted = o.times && !(isLink && o.omitLinkTimes) && !(isDir(e) && o.omitDirTimes);
    if (o.checksum && timesWanted && (st.mtimeSec !== e.mtime || st.mtimeNsec !== e.mtimeNsec)) changes |= ITEM.REPORT_TIME;
    return changes;
  }

  /** generator.c unchanged_attrs(): times (even for dirs), perms/-E, ownership. */
  private unchangedAttrs(e: FileEntry, st: EntryStat): boolean {
    const o = this.opts;
    if (isSymlink(e)) {
      if (o.times && !o.omitLinkTimes && !this.sameMtime(e, st)) return false;
    } else {
      if (o.times && !this.sameMtime(e, st)) return false;
      if (o.perms ? (st.mode & 0o7777) !== (e.mode & 0o7777) : o.executability && (st.mode & 0o111 ? 1 : 0) !== (e.mode & 0o111 ? 1 : 0)) return false;
    }
    if (o.owner && this.isRoot && st.uid !== this.mappedUid(e)) return false;
    if (o.group && this.canSetGroup(this.mappedGid(e)) && st.gid !== this.mappedGid(e)) return false;
    return true;
  }

  /** rsync.c dest_mode(): the permissions a file gets without -p (existing: keep them, -E tweaks x). */
  private destMode(flistMode: number, stMode: number, exists: boolean, regular: boolean): number {
    if (!exists) return flistMode & (~0o7777 | DFLT_PERMS);
    let mode = (flistMode & ~0o7777) | (stMode & 0o7777);
    if (this.opts.executability && regular) {
      if (!(flistMode & 0o111)) mode &= ~0o111;
      else if (!(stMode & 0o111)) mode |= (mode & 0o444) >> 2;
    }
    return mode;
  }

  /** The group may be set: root, or (like FLAG_SKIP_GROUP) a group the server user is in. */
  private canSetGroup(gid: number): boolean {
    if (this.isRoot) return true;
    try {
      return gid === process.getgid?.() || (process.getgroups?.() ?? []).includes(gid);
    } catch {
      return false;
    }
  }

  /** set_file_attrs() with ATTRS_REPORT at -vv: "name" when something changed, else "name is uptodate". */
  private reportAttrs(name: string, updated: boolean): void {
    if (this.infoName >= 2 && this.maybeAttrsReport) sendInfo(this.ctx, `${name}${updated ? '' : ' is uptodate'}\n`);
  }

  /** maybe_ATTRS_REPORT of a server generator: only when the client does not itemize (or proto < 29). */
  private get maybeAttrsReport(): boolean {
    return this.protocol < 29 || this.hasI === 0;
  }

  /** rsync's same_time: whole seconds, unless --modify-window is negative (then also ns) or wider. */
  private sameMtime(e: FileEntry, st: EntryStat): boolean {
    return this.sameTime(st.mtimeSec, st.mtimeNsec, e.mtime, e.mtimeNsec);
  }

  private sameTime(aSec: number, aNsec: number, bSec: number, bNsec: number): boolean {
    const win = this.opts.modifyWindow;
    if (win === 0) return aSec === bSec;
    if (win < 0) return aSec === bSec && aNsec === bNsec;
    return Math.abs(aSec - bSec) <= win;
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

  /** lstat of a client-named helper dir; a symlinked parent (never followed) is a clean refusal. */
  private auxDirStat(rel: string, arg: string, what: string): EntryStat | null {
    try {
      return this.sandbox.lstat(rel);
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      throw new RsyncError(`rsync: the ${what} path ${printable(arg)} cannot be used: ${err.message}`, ExitCode.SYNTAX);
    }
  }

  private lstatQuiet(rel: string): EntryStat | null {
    try {
      return this.sandbox.lstat(rel);
    } catch (err) {
      if (err instanceof SandboxError) return null;
      throw err;
    }
  }

  /**
   * delete.c delete_item(..., DEL_MAKE_ROOM): clears the way for a new item of another type. A
   * non-empty directory goes only with --delete or --force (its contents are logged as deletions);
   * with --backup a non-directory becomes a backup. Returns false (after reporting) when it stays.
   */
  private makeRoom(e: FileEntry, dest: string, st: EntryStat, what: string): boolean {
    if (this.opts.dryRun) return true;
    const name = this.fnameOf(e);
    try {
      if (st.type === 'dir') {
        if (this.sandbox.readdir(dest).length > 0) {
          let emptied = false;
          if (this.opts.deleteMode || this.opts.force) emptied = this.deleteDirContents(dest, name);
          else sendInfo(this.ctx, `cannot delete non-empty directory: ${name}\n`);
          if (!emptied) {
            sendTransferError(this.ctx, `could not make way for new ${what}: ${name}`);
            return false;
          }
        }
        this.sandbox.rmdir(dest);
      } else if (this.opts.backup && !(this.backupDirRel === undefined && name.endsWith(this.backupSuffix))) {
        const made = this.makeBackup(dest, true);
        if (made === 0) return false;
        if (made === 2) this.sandbox.unlink(dest);
      } else {
        this.sandbox.unlink(dest);
      }
      return true;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      sendTransferError(this.ctx, `rsync: [generator] delete_file: ${name}: ${err.message}`);
      sendTransferError(this.ctx, `could not make way for new ${what}: ${name}`);
      return false;
    }
  }

  private symlinkTarget(e: FileEntry): string {
    const target = e.linkTarget ?? '';
    return this.opts.mungeLinks ? mungeSymlink(target) : target;
  }

  /** INFO NONREG (on at verbosity 0): an item of a type this side does not create. */
  private skipNonRegular(e: FileEntry): void {
    if (!this.opts.quiet) sendInfo(this.ctx, `skipping non-regular file "${this.fnameOf(e)}"\n`);
  }

  /**
   * --compare/copy/link-dest for a symlink, device or special missing at the destination: whether
   * to itemize it and what to compare against; null when an alt-dest match means nothing to do.
   */
  private altDestForNonRegular(
    e: FileEntry,
    dest: string,
    st: EntryStat | null,
    sameTypeSt: EntryStat | null,
  ): { itemizing: boolean; cmpSt: EntryStat | null } | null {
    if (st || this.basisDirs.length === 0) return { itemizing: true, cmpSt: sameTypeSt };
    const j = this.tryDestsNon(e, dest);
    if (j === -3) return { itemizing: false, cmpSt: sameTypeSt };
    if (j === -2) return this.altType === 'copy' ? { itemizing: false, cmpSt: sameTypeSt } : null;
    return { itemizing: true, cmpSt: typeof j === 'object' ? j.st : sameTypeSt };
  }

  private generateSymlink(e: FileEntry, dest: string, st: EntryStat | null): void {
    if (!this.opts.links) return this.skipNonRegular(e);
    const target = this.symlinkTarget(e);
    if (this.opts.safeLinks && isUnsafeSymlink(e.linkTarget ?? '', e.name)) {
      // rsync prints this at --info=skip1, which -v implies
      if (this.opts.verbose > 0 || this.opts.info.some((w) => /^skip[1-9]?$/i.test(w))) {
        sendInfo(this.ctx, `ignoring unsafe symlink "${e.name}" -> "${e.linkTarget ?? ''}"\n`);
      }
      return;
    }
    if (st && st.type === 'symlink' && this.sandbox.readlink(dest) === target) {
      const changes = this.updateNeeded(e, st, true);
      if (changes && !this.opts.dryRun) this.applyAttrs(dest, e, true, undefined, st);
      this.itemize(e, this.itemAttrs(e, st, 0));
      this.reportAttrs(this.fnameOf(e), changes !== 0);
      if (this.opts.removeSourceFiles) this.sendSuccess(e.ndx);
      return;
    }
    const alt = this.altDestForNonRegular(e, dest, st, st && st.type === 'symlink' ? st : null);
    if (!alt) return;
    const { itemizing, cmpSt } = alt;
    if (!this.opts.dryRun) {
      if (!this.atomicCreate(e, dest, st, (tmp) => this.sandbox.symlink(target, tmp))) return;
      this.applyAttrs(dest, e, true);
    }
    // As rsync: anything but a symlink in the way counts as absent (itemized as new).
    if (itemizing) this.itemize(e, this.itemAttrs(e, cmpSt, ITEM.LOCAL_CHANGE | ITEM.REPORT_CHANGE));
    if (this.protocol < 29 && this.infoName > 0 && itemizing) sendInfo(this.ctx, `${e.name} -> ${e.linkTarget ?? ''}\n`);
    if (this.opts.removeSourceFiles) this.sendSuccess(e.ndx);
  }

  private generateSpecial(e: FileEntry, dest: string, st: EntryStat | null): void {
    const device = isDevice(e);
    if (device ? !this.opts.devices : !this.opts.specials) return this.skipNonRegular(e);
    if (!this.ctx.grant.limits.allowDevices || (device && !this.isRoot)) {
      this.ctx.log.info({ name: printable(e.name) }, 'skipping device/special (not granted)');
      return this.skipNonRegular(e);
    }
    const sameType = st !== null && modeType(st.mode) === modeType(e.mode);
    if (sameType && (!device || st!.rdev === makedev(e.rdevMajor, e.rdevMinor))) {
      const changes = this.updateNeeded(e, st!, false);
      if (changes && !this.opts.dryRun) this.applyAttrs(dest, e, false, undefined, st!);
      this.itemize(e, this.itemAttrs(e, st, 0));
      this.reportAttrs(this.fnameOf(e), changes !== 0);
      return;
    }
    const alt = this.altDestForNonRegular(e, dest, st, sameType ? st : null);
    if (!alt) return;
    const { itemizing, cmpSt } = alt;
    if (!this.opts.dryRun) {
      const made = this.atomicCreate(e, dest, st, (tmp) => {
        if (device) this.sandbox.mknod(tmp, e.mode, makedev(e.rdevMajor, e.rdevMinor));
        else this.sandbox.mkfifo(tmp, e.mode & 0o7777);
      });
      if (!made) return;
      this.applyAttrs(dest, e, false);
    }
    if (itemizing) this.itemize(e, this.itemAttrs(e, cmpSt, ITEM.LOCAL_CHANGE | ITEM.REPORT_CHANGE));
    if (this.protocol < 29 && this.infoName > 0 && itemizing) sendInfo(this.ctx, `${e.name}\n`);
  }

  /**
   * generator.c atomic_create(): a replaced item is backed up (-b) or deleted (a directory in the
   * way only when empty, or with --delete/--force), then the new one is made under a temp name
   * and renamed into place.
   */
  private atomicCreate(e: FileEntry, dest: string, st: EntryStat | null, create: (tmpRel: string) => void): boolean {
    if (st && st.type === 'dir') {
      if (!this.makeRoom(e, dest, st, isSymlink(e) ? 'symlink' : isDevice(e) ? 'device file' : 'special file')) return false;
      create(dest);
      return true;
    }
    if (st && this.opts.backup && this.makeBackup(dest, false) === 0) return false;
    const base = baseOf(dest).replace(/^\./, '').slice(0, 200);
    const tmp = joinRel(dirOf(dest), `.${base}.${process.pid}${Math.floor(Math.random() * 1e6)}`);
    create(tmp);
    try {
      this.sandbox.rename(tmp, dest);
    } catch (err) {
      this.sandbox.unlink(tmp);
      throw err;
    }
    return true;
  }

  /** generator.c try_dests_non(): an alt-dest dir may hold this symlink/device/special/directory. */
  private tryDestsNon(e: FileEntry, dest: string): -1 | -2 | -3 | { index: number; st: EntryStat } {
    const name = this.fnameOf(e);
    const wantType = isDir(e) ? 'dir' : isSymlink(e) ? 'symlink' : null;
    let best = -1;
    let level = 0;
    let bestSt: EntryStat | null = null;
    for (let j = 0; j < this.basisDirs.length; j++) {
      const cmp = joinRel(this.basisDirs[j]!, name);
      const s = this.lstatQuiet(cmp);
      if (!s) continue;
      if (wantType ? s.type !== wantType : modeType(s.mode) !== modeType(e.mode)) continue;
      if (level < 1) [level, best, bestSt] = [1, j, s];
      let same = true;
      if (isSymlink(e)) same = this.sandbox.readlink(cmp) === this.symlinkTarget(e);
      else if (isDevice(e)) same = s.rdev === makedev(e.rdevMajor, e.rdevMinor);
      if (!same) continue;
      if (level < 2) [level, best, bestSt] = [2, j, s];
      if (this.unchangedAttrs(e, s)) {
        [level, best, bestSt] = [3, j, s];
        break;
      }
    }
    if (!level) return -1;
    const sx = bestSt!;
    if (level === 3) {
      let cannot = false;
      if (this.altType === 'link' && !isDir(e)) {
        if (!this.opts.dryRun) {
          try {
            this.sandbox.link(joinRel(this.basisDirs[best]!, name), dest);
          } catch {
            cannot = true;
            level = 2;
          }
        }
      } else {
        level = 2;
      }
      if (this.hasI > 0 && (this.infoName >= 2 || this.hasI > 1)) {
        const chg = this.altType === 'compare' && !isDir(e) ? 0 : ITEM.LOCAL_CHANGE + (level === 3 ? ITEM.XNAME_FOLLOWS : 0);
        const lp = level === 3 ? '' : undefined;
        this.itemize(e, this.itemAttrs(e, sx, chg | ITEM_MATCHED, lp), lp);
      }
      if (this.infoName >= 2 && this.maybeAttrsReport) sendInfo(this.ctx, `${name}${isDir(e) ? '/' : ''} is uptodate\n`);
      return cannot ? -3 : -2;
    }
    return { index: best, st: sx };
  }

  /**
   * generator.c try_dests_reg(): an unchanged copy in an alt-dest dir is skipped (compare),
   * hard-linked (link) or copied (copy); a changed one becomes the basis (fnamecmp_type = index).
   * With `realSt` (the destination exists) only an exact match counts.
   */
  private tryDestsReg(e: FileEntry, dest: string, realSt: EntryStat | null): 'done' | null | { index: number; rel: string; st: EntryStat } {
    const name = this.fnameOf(e);
    let best = -1;
    let level = 0;
    let bestSt: EntryStat | null = null;
    for (let j = 0; j < this.basisDirs.length; j++) {
      const cmp = joinRel(this.basisDirs[j]!, name);
      const s = this.lstatQuiet(cmp);
      if (!s || s.type !== 'file') continue;
      if (level === 0) [level, best, bestSt] = [1, j, s];
      if (!this.quickCheckOk(e, cmp, s)) continue;
      if (level === 1) [level, best, bestSt] = [2, j, s];
      if (this.unchangedAttrs(e, s)) {
        [level, best, bestSt] = [3, j, s];
        break;
      }
    }
    if (!level) return null;
    const cmp = joinRel(this.basisDirs[best]!, name);
    const sx = bestSt!;
    let tryCopy = false;
    if (level === 3 && this.altType !== 'copy') {
      if (realSt) {
        if (this.altType === 'link' && realSt.dev === sx.dev && realSt.ino === sx.ino) return null;
        if (!this.opts.dryRun) {
          try {
            this.sandbox.unlink(dest);
          } catch {
            return null;
          }
        }
      }
      if (this.altType === 'link') {
        let linked = true;
        if (!this.opts.dryRun) {
          try {
            this.sandbox.link(cmp, dest);
          } catch (err) {
            linked = false;
            if (this.infoName > 0) sendInfo(this.ctx, `link ${name} => ${printable(cmp)} failed: ${describe(err)}\n`);
          }
        }
        if (linked) {
          if (!this.maybeAttrsReport && (this.infoName >= 2 || this.hasI > 1)) {
            this.itemize(e, this.itemAttrs(e, sx, ITEM.LOCAL_CHANGE | ITEM.XNAME_FOLLOWS, ''), '');
          }
        } else {
          tryCopy = true;
        }
      } else {
        this.itemize(e, this.itemAttrs(e, sx, 0));
      }
      if (!tryCopy) {
        if (this.infoName >= 2 && this.maybeAttrsReport) sendInfo(this.ctx, `${name} is uptodate\n`);
        if (this.opts.removeSourceFiles) this.sendSuccess(e.ndx);
        return 'done';
      }
    }
    if (!tryCopy && realSt) return null;
    if (tryCopy || level >= 2) {
      if (!this.opts.dryRun && !this.copyAltdestFile(cmp, dest, e)) return null;
      this.itemize(e, this.itemAttrs(e, sx, ITEM.LOCAL_CHANGE));
      if (this.maybeAttrsReport && ((this.protocol < 29 && this.infoName >= 1 && level === 2) || (this.infoName >= 2 && level === 3))) {
        sendInfo(this.ctx, `${name}${level === 3 ? ' is uptodate' : ''}\n`);
      }
      if (this.opts.removeSourceFiles) this.sendSuccess(e.ndx);
      return 'done';
    }
    return { index: best, rel: cmp, st: sx };
  }

  /** Copies an open file's data into another open file (local copies: --copy-dest, backups). */
  private copyFd(inFd: number, outFd: number, size: number): void {
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(1, size)));
    for (let pos = 0; ; ) {
      const n = this.sandbox.read(inFd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      this.sandbox.write(outFd, buf, 0, n, pos);
      pos += n;
    }
  }

  /** Closes and removes a temp file that did not make it into place. */
  private discardTemp(tmp: { fd: number; rel: string }): void {
    try {
      this.sandbox.close(tmp.fd);
    } catch {
      // already closed
    }
    this.unlinkQuiet(tmp.rel);
  }

  /** generator.c copy_altdest_file(): a local copy through a temp file, attributes from the list. */
  private copyAltdestFile(src: string, dest: string, e: FileEntry): boolean {
    let tmp: { fd: number; rel: string } | null = null;
    let inFd = -1;
    try {
      const mode = this.opts.perms ? e.mode : this.destMode(e.mode, 0, false, true);
      tmp = this.createTempFor(dest, mode);
      const { fd, stat } = this.sandbox.openRead(src);
      inFd = fd;
      this.copyFd(inFd, tmp.fd, stat.size);
      this.sandbox.fsetAttrs(tmp.fd, { ...this.attrsFor(e, false, true), mode: mode & 0o7777 });
      this.sandbox.close(tmp.fd);
      this.sandbox.rename(tmp.rel, dest);
      tmp = null;
      return true;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      if (this.infoName > 0) sendInfo(this.ctx, `copy_file ${printable(src)} => ${printable(dest)}: ${err.message}\n`);
      return false;
    } finally {
      if (inFd >= 0) this.sandbox.close(inFd);
      if (tmp) this.discardTemp(tmp);
    }
  }

  /** receiver.c open_tmpfile(): `.<name>.XXXXXX` next to the file, or `<name>.XXXXXX` in --temp-dir. */
  private createTempFor(dest: string, mode: number): { fd: number; rel: string } {
    if (this.tempDirRel !== undefined) return this.sandbox.createTemp(this.tempDirRel, baseOf(dest), tempMode(mode), { noLeadingDot: true });
    return this.sandbox.createTemp(dirOf(dest), baseOf(dest), tempMode(mode));
  }

  /**
   * The temp file of a new file (nothing at the destination, no --temp-dir): unnamed (O_TMPFILE)
   * where the filesystem allows, else null. It appears under its name only when complete, so it
   * can be created with its final permissions right away (modeSet: no fchmod needed later).
   */
  private createUnnamedFor(p: Pending, mode: number): { fd: number; modeSet: boolean } | null {
    if (!p.destMissing || this.tempDirRel !== undefined) return null;
    const modeSet = (mode & 0o7000) === 0 && (mode & 0o777 & ~PROCESS_UMASK) === (mode & 0o777);
    const fd = this.sandbox.createAnonymous(dirOf(p.dest), modeSet ? mode & 0o777 : tempMode(mode));
    return fd === null ? null : { fd, modeSet };
  }

  /** Gives an unnamed temp file the name open_tmpfile() would have given it. */
  private nameTemp(fd: number, dest: string): string {
    return this.sandbox.nameAnonymous(fd, dirOf(dest), baseOf(dest));
  }

  /** quick_check_ok() for a regular file. */
  private quickCheckOk(e: FileEntry, rel: string, st: EntryStat): boolean {
    if (st.type !== 'file' || st.size !== e.size) return false;
    if (this.opts.checksum) return e.checksum !== undefined && this.fileChecksum(rel).equals(e.checksum);
    if (this.opts.sizeOnly) return true;
    if (this.opts.ignoreTimes) return false;
    return this.sameMtime(e, st);
  }

  private fileChecksum(rel: string): Buffer {
    const h = createFileListHasher(this.ctx.fileSum);
    for (const chunk of this.chunksOf(rel)) h.update(chunk);
    return h.digest();
  }

  /**
   * A file's data in order, as views of the session's read buffer (each valid until the next
   * one). Only the generator reads this way, one file at a time.
   */
  private *chunksOf(rel: string): Generator<Buffer> {
    const { fd, stat } = this.sandbox.openRead(rel);
    try {
      const end = stat.size;
      const buf = this.readBuffer;
      let pos = 0;
      while (pos < end) {
        const n = this.sandbox.read(fd, buf, 0, Math.min(buf.length, end - pos), pos);
        if (n <= 0) break;
        yield buf.subarray(0, n);
        pos += n;
      }
    } finally {
      this.sandbox.close(fd);
    }
  }

  private skipInfo(text: string): void {
    if (this.infoName >= 2) sendInfo(this.ctx, `${text}\n`);
  }

  /** The fuzzy dirlists (-y) of the file's directory: its own dir, then (-yy) the alt-dest dirs. */
  private fuzzyListsFor(e: FileEntry, dest: string): Array<FuzzyEntry[] | null> {
    const dir = dirOf(dest);
    if (this.fuzzyDir === dir) return this.fuzzyLists;
    this.fuzzyDir = dir;
    const dn = dirOf(this.fnameOf(e));
    const dirs = [dir];
    for (let i = 1; i < this.fuzzyLevels; i++) dirs.push(joinRel(this.basisDirs[i - 1]!, dn));
    this.fuzzyLists = dirs.map((d) => {
      let names: string[];
      try {
        names = this.sandbox.readdir(d);
      } catch {
        return null;
      }
      const list: FuzzyEntry[] = [];
      for (const name of names.sort(compareNames)) {
        const s = this.lstatQuiet(joinRel(d, name));
        if (s && s.type === 'file') list.push({ name, size: s.size, mtime: s.mtimeSec, sent: false });
      }
      return list.length > 0 ? list : null;
    });
    return this.fuzzyLists;
  }

  private async generateFile(e: FileEntry, list: FileList, dest: string, st: EntryStat | null): Promise<void> {
    const o = this.opts;
    const name = this.fnameOf(e);
    if (o.maxSize !== undefined && e.size > o.maxSize) return this.skipInfo(`${name} is over max-size`);
    if (o.minSize !== undefined && e.size < o.minSize) return this.skipInfo(`${name} is under min-size`);
    if (o.update && st && st.type === 'file' && e.mtime - st.mtimeSec < o.modifyWindow) return this.skipInfo(`${name} is newer`);
    const limit = this.ctx.grant.limits.maxFileSize;
    if (limit !== undefined && e.size > limit) {
      sendTransferError(this.ctx, `rrsyncd: ${printable(e.name)} is larger than the allowed maximum file size (${limit} bytes)`);
      return;
    }
    if (o.hardLinks && e.hlinkGroup !== undefined) {
      const leader = this.hlinkLeaders.get(e.hlinkGroup);
      // As the reference, the group's last member (in this list) carries the data and the others
      // are linked to it; with skip options that depend on each member's destination, the first
      // member that gets here leads (so a group never loses its leader).
      const last = o.existing || o.ignoreExisting || o.update ? undefined : list.lastOfGroup?.get(e.hlinkGroup);
      if (leader || (last !== undefined && last !== e)) {
        this.hlinkFollowers.push(e);
        return;
      }
      this.hlinkLeaders.set(e.hlinkGroup, e);
    }
    if (st && st.type !== 'file') {
      if (!this.makeRoom(e, dest, st, 'regular file')) return;
      st = null;
    }
    if (this.quota && !o.dryRun) {
      // Checked before asking for the data, and again while it is written (sizes can lie).
      this.quota.checkWrite(e.size, st ? st.size : 0);
      if (!st) this.quota.addEntry();
    }
    // The mode the file gets without -p (the generator's dest_mode() against the destination).
    const mode = o.perms ? e.mode : this.destMode(e.mode, st ? st.mode : 0, st !== null, true);
    let basisRel: string | null = st ? dest : null;
    let basisSt: EntryStat | null = st;
    let basisType: number = FNAMECMP.FNAME;
    let realSt: EntryStat | null = st;
    if (this.basisDirs.length > 0 && (!st || this.altType !== 'copy')) {
      const r = this.tryDestsReg(e, dest, st);
      if (r === 'done') return;
      if (r) {
        basisRel = r.rel;
        basisSt = realSt = r.st;
        basisType = r.index;
      }
    }
    let partialRel: string | undefined;
    let partialSt: EntryStat | null = null;
    if (this.partialDir) {
      partialRel = this.partialDir.pathFor(dest);
      const pst = this.lstatQuiet(partialRel);
      if (pst && pst.type === 'file') partialSt = pst;
    }
    let xname: string | undefined;
    // A partial file with nothing else to compare against is used right away (prepare_to_open).
    if (!(partialSt && !basisRel)) {
      if (!basisRel && this.fuzzyLevels > 0) {
        const lists = this.fuzzyListsFor(e, dest);
        const hit = findFuzzy(baseOf(name), e.size, e.mtime, lists, (a, b) => this.sameTime(a, 0, b, 0));
        if (hit) {
          const dir = hit.dir === 0 ? dirOf(dest) : joinRel(this.basisDirs[hit.dir - 1]!, dirOf(name));
          const fst = this.lstatQuiet(joinRel(dir, hit.entry.name));
          if (fst && fst.type === 'file') {
            basisRel = joinRel(dir, hit.entry.name);
            basisSt = fst;
            basisType = FNAMECMP.FUZZY + hit.dir;
            xname = hit.entry.name;
          }
        }
      }
      if (basisRel) {
        if (basisType === FNAMECMP.FNAME && this.quickCheckOk(e, dest, st!)) {
          if (partialRel && partialSt) this.removePartial(partialRel);
          const changes = this.updateNeeded(e, st!, false);
          if (changes && !o.dryRun) this.applyAttrs(dest, e, false, mode, st!);
          this.itemize(e, this.itemAttrs(e, st, 0));
          this.reportAttrs(name, changes !== 0);
          if (o.removeSourceFiles) this.sendSuccess(e.ndx);
          return;
        }
        if (o.append > 0 && basisSt!.size >= e.size) return;
      }
    }
    if (partialSt) {
      basisRel = partialRel!;
      basisSt = partialSt;
      basisType = FNAMECMP.PARTIAL_DIR;
    }
    let iflags: number = ITEM.TRANSFER;
    if (o.checksum) iflags |= ITEM.REPORT_CHANGE;
    if (basisType !== FNAMECMP.FNAME) iflags |= ITEM.BASIS_TYPE_FOLLOWS;
    if (xname !== undefined) iflags |= ITEM.XNAME_FOLLOWS;
    iflags = this.itemAttrs(e, realSt, iflags);
    if (this.fuzzyLevels > 0 && this.fuzzyDir === dirOf(dest)) {
      const own = this.fuzzyLists[0]?.find((f) => f.name === baseOf(dest));
      if (own) own.sent = true; // a changing file is no basis for later ones
    }
    // --inplace --backup: the old data is copied to the backup, which then serves as the basis.
    if (o.inplace && this.backupsActive(false) && basisType === FNAMECMP.FNAME && basisRel && !o.dryRun) {
      const backup = this.copyToBackup(dest);
      if (backup !== null && o.wholeFile !== true) {
        basisRel = backup;
        basisType = FNAMECMP.BACKUP;
        iflags |= ITEM.BASIS_TYPE_FOLLOWS;
      }
    }
    const basis: Basis = { rel: basisRel, st: basisSt, type: basisType, xname, partialRel, mode, destMissing: st === null };
    const plan = this.sumPlan(basis, false);
    const sums = plan.withSums ? await this.basisSumsYielding(basis.rel!, plan.head) : undefined;
    this.requestFile(list, e, dest, basis, iflags, false, plan, sums);
  }

  /** Unlinks a consumed/obsolete --partial-dir file and its dir when that became empty. */
  private removePartial(partialRel: string): void {
    if (this.opts.dryRun) return;
    try {
      this.sandbox.unlink(partialRel);
    } catch {
      // already gone
    }
    this.removePartialDir(partialRel);
  }

  /** handle_partial_dir(PDIR_DELETE): rmdir a relative partial dir (fails quietly when not empty). */
  private removePartialDir(partialRel: string): void {
    if (!this.partialDir || this.partialDir.absolute) return;
    try {
      this.sandbox.rmdir(dirOf(partialRel));
    } catch {
      // not empty, or gone
    }
  }

  /** The sum head requestFile() sends for a basis, and whether block sums go with it. */
  private sumPlan(basis: Basis, redo: boolean): SumPlan {
    const st = basis.rel ? basis.st : null;
    const useBasis = !!st && st.size > 0 && this.opts.wholeFile !== true && this.ctx.xferSum.name !== 'none';
    if (!useBasis || this.opts.dryRun) return { head: { count: 0, blength: 0, s2length: 0, remainder: 0 }, useBasis, withSums: false };
    const digestLen = digestLength(this.ctx.xferSum.name);
    const head = chooseSumHead(st.size, this.protocol, digestLen, { blockSize: this.opts.blockSize, redo });
    return { head, useBasis, withSums: !(this.opts.append > 0 && !redo) };
  }

  /**
   * The block sums of a basis, computed a few MiB at a time with a turn of the event loop in
   * between: other sessions (and this one's receiver) go on while a large basis is summed.
   */
  private async basisSumsYielding(rel: string, head: SumHead): Promise<BlockSums> {
    const builder = new BlockSumsBuilder(head, this.ctx.xferSum);
    let sinceYield = 0;
    for (const chunk of this.chunksOf(rel)) {
      builder.push(chunk);
      sinceYield += chunk.length;
      if (sinceYield >= SUMS_YIELD_BYTES) {
        sinceYield = 0;
        await yieldToLoop();
      }
    }
    return builder.finish();
  }

  /** The block sums of a basis in one go (a redo, requested while lists finish). */
  private basisSums(rel: string, head: SumHead): BlockSums {
    const builder = new BlockSumsBuilder(head, this.ctx.xferSum);
    for (const chunk of this.chunksOf(rel)) builder.push(chunk);
    return builder.finish();
  }

  /** `plan` from sumPlan(basis, redo); `sums`: the basis's block sums when the plan sends them. */
  private requestFile(list: FileList, e: FileEntry, dest: string, basis: Basis, iflags: number, redo: boolean, plan: SumPlan, sums?: BlockSums): void {
    const w = this.ctx.writer;
    const { head, useBasis } = plan;
    w.ndx(e.ndx);
    if (this.protocol >= 29) {
      w.u16(iflags);
      if (iflags & ITEM.BASIS_TYPE_FOLLOWS) w.u8(basis.type);
      if (iflags & ITEM.XNAME_FOLLOWS) w.vstring(Buffer.from(basis.xname ?? '', 'latin1'));
    }
    this.pending.set(e.ndx, {
      list,
      entry: e,
      dest,
      head,
      hasBasis: useBasis,
      redo,
      iflags,
      basisType: basis.type,
      basisRel: basis.rel,
      xname: basis.xname,
      partialRel: basis.partialRel,
      mode: basis.mode,
      destMissing: basis.destMissing,
    });
    list.pending++;
    if (this.opts.dryRun) return;
    writeSumHead(w, head);
    if (sums) writeBlockSums(w, sums);
  }

  /** A redo (failed verification): all skip options off, the partial file or the file as basis. */
  private requestRedo(list: FileList, e: FileEntry): void {
    const dest = this.destOf(e);
    const st = this.lstatQuiet(dest);
    const mode = this.opts.perms ? e.mode : this.destMode(e.mode, st ? st.mode : 0, st !== null && st.type === 'file', true);
    let basis: Basis = { rel: st && st.type === 'file' ? dest : null, st, type: FNAMECMP.FNAME, mode, destMissing: st === null };
    let iflags: number = ITEM.TRANSFER;
    if (this.partialDir) {
      const partialRel = this.partialDir.pathFor(dest);
      const pst = this.lstatQuiet(partialRel);
      basis.partialRel = partialRel;
      if (pst && pst.type === 'file') {
        basis = { ...basis, rel: partialRel, st: pst, type: FNAMECMP.PARTIAL_DIR };
        iflags |= ITEM.BASIS_TYPE_FOLLOWS;
      }
    }
    const plan = this.sumPlan(basis, true);
    const sums = plan.withSums ? this.basisSums(basis.rel!, plan.head) : undefined;
    this.requestFile(list, e, dest, basis, this.itemAttrs(e, st && st.type === 'file' ? st : null, iflags), true, plan, sums);
  }

  private sendSuccess(ndx: number): void {
    if (!this.opts.dryRun) this.ctx.writer.message(MsgTag.SUCCESS, int32(ndx));
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
      // The leader's data may still be on its way (it can sit in a later, unfinished list), or
      // wait in the partial dir until the end of the transfer (--delay-updates).
      if (
        this.pending.has(leader.ndx) ||
        this.lists.some((l) => l.redo.includes(leader)) ||
        (this.delayedNdx.has(leader.ndx) && !this.delayedDone)
      ) {
        waiting.push(f);
        continue;
      }
      const dest = this.destOf(f);
      const leaderDest = this.destOf(leader);
      const name = this.fnameOf(f);
      try {
        const st = this.sandbox.lstat(dest);
        const lst = this.sandbox.lstat(leaderDest);
        if (st && lst && st.dev === lst.dev && st.ino === lst.ino) {
          this.itemize(f, this.itemAttrs(f, st, ITEM.LOCAL_CHANGE | ITEM.XNAME_FOLLOWS, ''), '');
          if (this.infoName >= 2 && this.maybeAttrsReport) sendInfo(this.ctx, `${name} is uptodate\n`);
          continue;
        }
        if (!this.opts.dryRun) {
          if (!lst) continue;
          if (st) {
            if (st.type === 'dir') {
              if (!this.makeRoom(f, dest, st, 'regular file')) continue;
            } else if (this.opts.backup && this.makeBackup(dest, false) === 0) {
              continue;
            }
          }
          const tmp = joinRel(dirOf(dest), `.${baseOf(dest).replace(/^\./, '').slice(0, 200)}.${process.pid}${Math.floor(Math.random() * 1e6)}`);
          this.sandbox.link(leaderDest, tmp);
          this.sandbox.rename(tmp, dest);
        }
        this.itemize(f, this.itemAttrs(f, st && st.type !== 'dir' ? st : null, ITEM.LOCAL_CHANGE | ITEM.XNAME_FOLLOWS, leader.name), leader.name);
        if (this.protocol < 29 && this.infoName > 0) sendInfo(this.ctx, `${name} => ${leader.name}\n`);
      } catch (err) {
        if (err instanceof SandboxError) this.reportEntryError(f, err);
        else throw err;
      }
    }
    this.hlinkFollowers.push(...waiting);
  }

  /**
   * set_file_attrs() on an existing item (`st`: only what differs is changed, so e.g. an mtime
   * that matches to the second keeps its nanoseconds) or a freshly made one (no `st`).
   */
  private applyAttrs(dest: string, e: FileEntry, isLink: boolean, mode?: number, st?: EntryStat): void {
    const attrs = this.attrsFor(e, isLink, false);
    if (!isLink && attrs.mode === undefined && this.opts.executability) {
      const cur = st ?? this.lstatQuiet(dest);
      if (cur) attrs.mode = (mode ?? this.destMode(e.mode, cur.mode, true, isRegular(e))) & 0o7777;
    }
    if (st) {
      const accurate = this.opts.checksum; // maybe_ATTRS_ACCURATE_TIME
      const same = accurate ? st.mtimeSec === e.mtime && st.mtimeNsec === e.mtimeNsec : this.sameMtime(e, st);
      if (same) delete attrs.mtime;
      if (attrs.mode !== undefined && (st.mode & 0o7777) === attrs.mode) delete attrs.mode;
      if (attrs.uid === st.uid) delete attrs.uid;
      if (attrs.gid === st.gid) delete attrs.gid;
    }
    this.sandbox.setAttrs(dest, attrs, { isSymlink: isLink });
  }

  private attrsFor(e: FileEntry, isLink: boolean, isNew: boolean): Attrs {
    const o = this.opts;
    const attrs: Attrs = {};
    if (!isLink) {
      if (o.perms) attrs.mode = e.mode & 0o7777;
      else if (isNew) attrs.mode = e.mode & 0o777 & DFLT_PERMS;
    }
    const timesWanted = o.times && !(isLink && o.omitLinkTimes) && !(isDir(e) && o.omitDirTimes);
    if (timesWanted) attrs.mtime = { sec: e.mtime, nsec: e.mtimeNsec };
    if (this.ctx.grant.limits.allowChown) {
      if (o.owner && this.isRoot) attrs.uid = this.mappedUid(e);
      if (o.group && this.canSetGroup(this.mappedGid(e))) attrs.gid = this.mappedGid(e);
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
        if (attrs.mode === undefined && isNew) attrs.mode = e.mode & 0o777 & DFLT_PERMS;
        if (!isNew) {
          // set_file_attrs(): a time equal to the second (or within --modify-window) is left alone.
          const st = this.lstatQuiet(dest);
          if (st && this.sameMtime(e, st)) delete attrs.mtime;
        }
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
      if (!e.inactive && isDir(e) && this.isContentDir(e)) {
        this.reportDeletePass(e);
        await this.deleteInDirReporting(e, this.childrenIn(e, list));
      }
    }
  }

  /** do_delete_pass() at -vv (DEBUG DEL): "deleting in <top dir>". */
  private reportDeletePass(e: FileEntry): void {
    if (this.infoName >= 2 && (e.xflags & XMIT.TOP_DIR || e.name === '.')) sendInfo(this.ctx, `deleting in ${this.fnameOf(e)}\n`);
  }

  private async runLateDeletions(): Promise<void> {
    const after = this.deleteTiming() === 'after';
    for (const d of this.delayedDeletes.splice(0)) {
      if (after) this.reportDeletePass(d.dir);
      await this.deleteInDirReporting(d.dir, d.keep);
    }
  }

  /** Outside processList's per-entry guard: a sandbox refusal (e.g. a symlinked parent) is a per-dir error. */
  private async deleteInDirReporting(dir: FileEntry, keep: Set<string>): Promise<void> {
    try {
      await this.deleteInDir(dir, keep);
    } catch (err) {
      if (err instanceof SandboxError) this.reportEntryError(dir, err);
      else throw err;
    }
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
    // -x: no deleting in a directory that lives on another file system than the transfer root.
    if (this.opts.oneFileSystem > 0 && st.dev !== this.topDev(dirEntry)) return;
    const filter = this.dirFilter(dirName);
    const names = this.sandbox.readdir(destDir).sort().reverse();
    for (const name of names) {
      if (keep.has(name)) continue;
      const rel = dirName === '.' ? name : `${dirName}/${name}`;
      const est = this.sandbox.lstat(joinRel(destDir, name));
      if (!est) continue;
      if (filter && filter.protectedFromDelete(rel, est.type === 'dir').protected) continue;
      if (this.isMountPoint(est)) {
        if (this.infoName >= 2) sendInfo(this.ctx, `cannot delete mount point: ${rel}\n`);
        continue;
      }
      this.deleteItem(joinRel(destDir, name), rel, est);
      await this.ctx.writer.writable();
    }
  }

  /** The device of the transfer root's destination (the reference's filesystem_dev for -x). */
  private rootDev: number | undefined;
  private topDev(dirEntry: FileEntry): number {
    if (this.rootDev === undefined) {
      const st = this.lstatQuiet(this.baseDir);
      this.rootDev = st ? st.dev : -1;
    }
    void dirEntry;
    return this.rootDev;
  }

  /** -x: a directory on another file system (FLAG_MOUNT_DIR) is never deleted. */
  private isMountPoint(st: EntryStat): boolean {
    return this.opts.oneFileSystem > 0 && st.type === 'dir' && this.rootDev !== undefined && st.dev !== this.rootDev;
  }

  /**
   * delete.c delete_item(): a directory's contents go first (delete_dir_contents), unless the
   * caller already emptied it (`contentsDone`). Returns whether the item is gone.
   */
  private deleteItem(destRel: string, rel: string, st: EntryStat, contentsDone = false): boolean {
    if (st.type === 'dir' && !contentsDone && !this.deleteDirContents(destRel, rel)) return false;
    if (this.deletionsLeft <= 0) {
      this.deleteLimitHit++;
      return false;
    }
    if (!this.opts.dryRun) {
      try {
        if (st.type === 'dir') this.sandbox.rmdir(destRel);
        else if (this.opts.backup && (this.backupDirRel !== undefined || !rel.endsWith(this.backupSuffix))) {
          // --backup: a deleted file becomes its backup (renamed; a copy is removed).
          const made = this.makeBackup(destRel, true);
          if (made === 0) return false;
          if (made === 2) this.sandbox.unlink(destRel);
        } else this.sandbox.unlink(destRel);
      } catch (err) {
        if (err instanceof SandboxError) {
          if (st.type === 'dir' && err.code === 'ENOTEMPTY') sendInfo(this.ctx, `cannot delete non-empty directory: ${rel}\n`);
          else sendTransferError(this.ctx, `rsync: [generator] delete_file: ${rel}: ${err.message}`);
          return false;
        }
        throw err;
      }
    }
    this.deletionsLeft--;
    this.countDeleted(st);
    this.quota?.removed(st.type === 'file' ? st.size : 0);
    this.reportDeleted(rel, st.type === 'dir');
    return true;
  }

  /**
   * delete.c delete_dir_contents(): every entry of the directory, depth first in reverse order.
   * Entries protected by a non-perishable filter rule, mount points (-x) and entries that could
   * not go (--max-delete) leave it non-empty ("cannot delete non-empty directory").
   */
  private deleteDirContents(destRel: string, rel: string): boolean {
    let empty = true;
    const filter = this.filters ? this.dirFilter(rel) : undefined;
    for (const child of this.sandbox.readdir(destRel).sort().reverse()) {
      const cpath = joinRel(destRel, child);
      const cst = this.sandbox.lstat(cpath);
      if (!cst) continue;
      const childRel = `${rel}/${child}`;
      if (filter) {
        const prot = filter.protectedFromDelete(childRel, cst.type === 'dir');
        if (prot.protected && !prot.perishable) {
          empty = false;
          continue;
        }
      }
      if (this.isMountPoint(cst)) {
        empty = false; // pins its parent
        continue;
      }
      if (cst.type === 'dir' && !this.deleteDirContents(cpath, childRel)) empty = false;
      if (!this.deleteItem(cpath, childRel, cst, true)) empty = false;
    }
    if (!empty) sendInfo(this.ctx, `cannot delete non-empty directory: ${rel}\n`);
    return empty;
  }

  /** The generator's last word on --max-delete (FWARNING). */
  private reportDeleteLimit(): void {
    if (this.opts.maxDelete !== undefined && this.deleteLimitHit > 0 && !this.deleteLimitReported) {
      this.deleteLimitReported = true;
      sendWarning(this.ctx, `Deletions stopped due to --max-delete limit (${this.deleteLimitHit} skipped)`);
    }
  }
  private deleteLimitReported = false;

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
    } else if (this.infoName > 0 || this.opts.logFormat !== undefined) {
      // log.c log_delete() of a protocol < 29 server: the client's format when it has %i/%o.
      const fmt = this.opts.logFormat ?? '';
      const name = `${rel}${dir ? '/' : ''}`;
      if (!/%[-0-9']*[io]/.test(fmt)) {
        sendInfo(this.ctx, `deleting ${name}\n`);
        return;
      }
      const line = fmt.replace(/%[-0-9']*([a-zA-Z%])/g, (all, c: string) =>
        c === 'i' ? '*deleting  ' : c === 'o' ? 'del.' : c === 'n' || c === 'f' ? name : c === 'L' ? '' : all,
      );
      sendInfo(this.ctx, `${line}\n`);
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
      const fnamecmpType = iflags & ITEM.BASIS_TYPE_FOLLOWS ? await r.readU8() : FNAMECMP.FNAME;
      const xname = iflags & ITEM.XNAME_FOLLOWS ? (await r.readVstring(4095)).toString('latin1') : undefined;
      if (!(iflags & ITEM.TRANSFER)) {
        // We never name a basis in a record without data (CVE-2024-12086).
        if (iflags & ITEM.BASIS_TYPE_FOLLOWS) throw new ProtocolError('rsync: received basis type we did not request');
        continue;
      }
      const p = this.pending.get(ndx);
      if (!p) throw new ProtocolError(`got transfer request for file not requested: ${ndx}`);
      // The basis (and fuzzy name) must be exactly the one we asked for (CVE-2024-12086).
      if (this.protocol >= 29 && (fnamecmpType !== p.basisType || (p.basisType >= FNAMECMP.FUZZY && xname !== p.xname))) {
        throw new ProtocolError('rsync: received basis type we did not request');
      }
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
      // Without incremental recursion the reference keeps its one list to the end: items may
      // still be itemized in phase 2 (hard links of --delay-updates files) and echoed back.
      if (freed && this.inc) freed.entries = [];
      else if (freed) this.retired.push(freed);
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
    const o = this.opts;
    const e = p.entry;
    const dest = p.dest;
    const name = this.fnameOf(e);
    const append = o.append > 0 && !p.redo;
    const inplace = o.inplace;
    const hasher = createTransferHasher(this.ctx.xferSum);
    let basisFd = -1;
    let basisSt: EntryStat | null = null;
    let basisType = p.basisType;
    let outFd = -1;
    let tempRel: string | null = null;
    /** The temp file is unnamed (tempRel null until it gets a name). */
    let unnamed = false;
    let modeSet = false;
    let oneInplace = false;
    let failed: string | null = null;
    let consumed = false;
    try {
      if (p.basisRel !== null) {
        try {
          const f = this.sandbox.openRead(p.basisRel);
          basisFd = f.fd;
          basisSt = f.stat;
        } catch (err) {
          if (!(err instanceof SandboxError)) throw err;
          if (p.basisType === FNAMECMP.PARTIAL_DIR) {
            // As the reference: an unusable partial basis falls back to the file itself.
            basisType = FNAMECMP.FNAME;
            try {
              const f = this.sandbox.openRead(dest);
              basisFd = f.fd;
              basisSt = f.stat;
            } catch {
              basisFd = -1;
            }
          }
          if (basisFd < 0 && p.hasBasis) failed = `open basis failed: ${describe(err)}`;
        }
      }
      // CF_INPLACE_PARTIAL_DIR: a partial-dir basis is updated in place, then moved into position.
      oneInplace = (this.ctx.compatFlags & CF.INPLACE_PARTIAL_DIR) !== 0 && basisType === FNAMECMP.PARTIAL_DIR && basisFd >= 0;
      const mode = o.perms ? e.mode : this.destMode(p.mode, basisSt ? basisSt.mode : 0, basisFd >= 0, true);
      if (!failed) {
        try {
          if (oneInplace) {
            outFd = this.sandbox.openWrite(p.partialRel!).fd;
          } else if (inplace) {
            const st = this.lstatQuiet(dest);
            if (st && st.type === 'file') {
              outFd = this.sandbox.openWrite(dest).fd;
            } else {
              // A new file written "in place": created under a temp name that is renamed at once.
              const t = this.sandbox.createTemp(dirOf(dest), baseOf(dest), (mode | 0o200) & 0o700);
              outFd = t.fd;
              this.sandbox.rename(t.rel, dest);
            }
          } else {
            const made = this.createUnnamedFor(p, mode);
            if (made !== null) {
              outFd = made.fd;
              unnamed = true;
              modeSet = made.modeSet;
            } else {
              const t = this.createTempFor(dest, mode);
              outFd = t.fd;
              tempRel = t.rel;
            }
          }
        } catch (err) {
          if (!(err instanceof SandboxError)) throw err;
          failed = tempRel === null && !inplace && !oneInplace ? `mkstemp failed: ${describe(err)}` : `open failed: ${describe(err)}`;
        }
      }
      // --append: the sender sends only what follows the existing data (count*blength-ish bytes).
      const flength = append ? head.count * head.blength - (head.remainder ? head.blength - head.remainder : 0) : 0;
      const out = outFd >= 0 ? new CoalescingWriter(this.sandbox, outFd, flength, this.writeBuffer) : null;
      const fresh = tempRel !== null || unnamed;
      if (out && o.sparse && fresh) out.sparse = true;
      // A temp file that replaces an existing one by rename: ext4 flushes it all in the rename.
      if (out && tempRel !== null && !p.destMissing) out.writeback = true;
      if (fresh && out) {
        this.currentTemp = { rel: tempRel, dest, fd: outFd, out, entry: e, partialRel: p.partialRel, mode, gotLiteral: false };
      }
      if (append && o.append === 2 && basisFd >= 0 && flength > 0) this.hashPrefix(basisFd, flength, hasher);
      if (this.blockBuffer.length < head.blength) this.blockBuffer = Buffer.allocUnsafe(head.blength);
      const block = this.blockBuffer;
      const maxSize = this.ctx.grant.limits.maxFileSize;
      const replacedSt = this.quota ? this.lstatQuiet(dest) : null;
      const replacedBytes = replacedSt && replacedSt.type === 'file' ? replacedSt.size : 0;
      // Not when writing into the basis itself (--inplace): read what is on disk at match time.
      const window = basisFd >= 0 && fresh ? new BasisWindow(this.sandbox, basisFd, this.basisWindowBuffer) : null;
      this.decoder.beginFile(head.count);
      for (;;) {
        const t = await this.decoder.next();
        if (t.kind === 'end') break;
        if (t.kind === 'literal') {
          this.literalBytes += t.data.length;
          hasher.update(t.data);
          out?.write(t.data);
          if (this.currentTemp) this.currentTemp.gotLiteral = true;
        } else {
          const len = t.index === head.count - 1 && head.remainder ? head.remainder : head.blength;
          this.matchedBytes += len;
          const data = block.subarray(0, len);
          if (window) {
            window.read(data, t.index * head.blength, len);
          } else if (basisFd >= 0) {
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
        if (out && this.quota) this.quota.checkWrite(out.length, replacedBytes);
        if (out && out.length > e.size + (64 << 20) && !failed) {
          // Much more data than announced: keep consuming the stream but stop writing.
          failed = 'received more data than the file list announced';
        }
      }
      const sum = await r.readBytes(digestLength(this.ctx.xferSum.name));
      consumed = true;
      if (failed) {
        sendTransferError(this.ctx, `rsync: [receiver] ${printable(e.name)}: ${failed}`);
        return;
      }
      out!.flush();
      // In place the new data may be shorter than the old; -S leaves a trailing hole to extend.
      if (inplace || oneInplace || out!.sparse) this.sandbox.truncate(outFd, out!.length);
      if (o.fsync) this.sandbox.fsync(outFd);
      const ok = this.ctx.xferSum.name === 'none' || hasher.digest().equals(sum);
      this.currentTemp = null;
      const attrs: Attrs = { ...this.attrsFor(e, false, true), mode: mode & 0o7777 };
      if (!ok) delete attrs.mtime;
      if (modeSet) delete attrs.mode;
      const partialPtr = this.partialDir ? p.partialRel : dest;
      let result: 'done' | 'delayed' | 'failed' = 'failed';
      if ((ok && !(o.delayUpdates && this.partialDir)) || inplace) {
        // finish_transfer(): attributes on the new data, a backup of the old file, rename into place.
        this.sandbox.fsetAttrs(outFd, attrs);
        let linked = false;
        if (unnamed) {
          // A new file gets its name now, complete; linkat never replaces what appeared meanwhile.
          linked = !this.backupsActive(p.redo) && this.sandbox.linkAnonymous(outFd, dest);
          if (!linked) tempRel = this.nameTemp(outFd, dest);
          unnamed = false;
        }
        this.sandbox.close(outFd);
        outFd = -1;
        const from = linked ? null : oneInplace ? p.partialRel! : tempRel;
        if (from !== null) {
          if (this.backupsActive(p.redo) && !inplace && this.makeBackup(dest, false) === 0) {
            // finish_transfer(): without its backup the old file stays; the new data is dropped.
            if (!oneInplace) this.unlinkQuiet(from);
            result = 'failed';
          } else try {
            this.sandbox.rename(from, dest);
            result = ok ? 'done' : 'failed';
          } catch (err) {
            if (!(err instanceof SandboxError)) throw err;
            sendTransferError(this.ctx, `rsync: [receiver] rename "${printable(from)}" -> "${printable(name)}": ${err.message}`);
            if (!oneInplace) this.unlinkQuiet(from);
            result = 'failed';
          }
          tempRel = null;
        } else {
          result = ok ? 'done' : 'failed';
        }
        if (basisType === FNAMECMP.PARTIAL_DIR && basisFd >= 0 && result === 'done') {
          if (!oneInplace) this.unlinkQuiet(p.partialRel!);
          this.removePartialDir(p.partialRel!);
        }
      } else if (this.keepPartial && partialPtr !== undefined && (!oneInplace || o.delayUpdates)) {
        // Failed verification with --partial(-dir), or a delayed update: the data goes to the partial name.
        this.sandbox.fsetAttrs(outFd, attrs);
        if (unnamed) {
          tempRel = this.nameTemp(outFd, dest);
          unnamed = false;
        }
        this.sandbox.close(outFd);
        outFd = -1;
        if (!this.makePartialDir(partialPtr)) {
          sendTransferError(this.ctx, `Unable to create partial-dir for ${printable(name)} -- discarding ${ok ? 'completed' : 'partial'} file.`);
        } else {
          if (!this.partialDir && this.backupsActive(p.redo) && this.makeBackup(dest, false) === 0) {
            this.unlinkQuiet(tempRel!);
            tempRel = null;
          } else {
            this.sandbox.rename(tempRel!, partialPtr);
            tempRel = null;
          }
          if (o.delayUpdates && ok) {
            this.delayed.push({ entry: e, dest, partialRel: partialPtr });
            this.delayedNdx.add(e.ndx);
            result = 'delayed';
          }
        }
      }
      if (result === 'done') {
        if (out) this.quota?.commitWrite(out.length, replacedBytes);
        this.filesTransferred++;
        if (o.removeSourceFiles) this.sendSuccess(e.ndx);
      } else if (result === 'delayed') {
        this.filesTransferred++;
      } else if (!ok) {
        const kept = !(this.keepPartial && partialPtr !== undefined) && !inplace ? 'discarded' : this.partialDir ? 'put into partial-dir' : 'retained';
        if (!p.redo) {
          if (this.infoName > 0 || this.hasI > 0) sendWarning(this.ctx, `WARNING: ${name} failed verification -- update ${kept} (will try again).`);
          p.list.redo.push(e);
        } else {
          sendTransferError(this.ctx, `ERROR: ${name} failed verification -- update ${kept}.`);
        }
      }
    } catch (err) {
      if (consumed && err instanceof SandboxError) {
        // The record was read completely: a local failure only fails this file.
        sendTransferError(this.ctx, `rsync: [receiver] ${printable(e.name)}: ${err.message}`);
        return;
      }
      // A fatal error mid-file (the client went away ...): keep what arrived when asked to.
      if ((tempRel !== null || unnamed) && this.currentTemp && this.currentTemp.fd === outFd) {
        this.abandonTemp();
        tempRel = null;
        outFd = -1;
      }
      throw err;
    } finally {
      if (basisFd >= 0 && basisSt !== null && basisSt.size >= BACKGROUND_CLOSE) this.sandbox.closeInBackground(basisFd);
      else if (basisFd >= 0) this.sandbox.close(basisFd);
      if (outFd >= 0) this.sandbox.close(outFd);
      if (tempRel !== null) this.unlinkQuiet(tempRel);
      this.currentTemp = null;
    }
  }

  /** --append-verify: the existing data is part of the whole-file checksum. */
  private hashPrefix(fd: number, length: number, hasher: { update(b: Buffer): void }): void {
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, length));
    let pos = 0;
    while (pos < length) {
      const n = this.sandbox.read(fd, buf, 0, Math.min(buf.length, length - pos), pos);
      if (n <= 0) break;
      hasher.update(buf.subarray(0, n));
      pos += n;
    }
  }

  private unlinkQuiet(rel: string): void {
    try {
      this.sandbox.unlink(rel);
    } catch {
      // already gone
    }
  }

  /** handle_partial_dir(PDIR_CREATE): mkdir DIR (0700) for a partial path; a non-dir in the way goes. */
  private makePartialDir(partialPath: string): boolean {
    if (!this.partialDir) return true;
    const dir = dirOf(partialPath);
    try {
      const st = this.lstatQuiet(dir);
      if (st && st.type !== 'dir') {
        this.sandbox.unlink(dir);
        this.sandbox.mkdir(dir, 0o700);
      } else if (!st) {
        this.sandbox.mkdir(dir, 0o700);
      }
      return true;
    } catch (err) {
      if (err instanceof SandboxError) return false;
      throw err;
    }
  }

  /** Backups are off while redoing a file whose failed data already replaced it (--partial). */
  private backupsActive(redo: boolean): boolean {
    return this.opts.backup && !(redo && (this.keepPartial && !this.partialDir));
  }

  /** The file's path relative to the destination (the reference's cwd). */
  private relToBase(dest: string): string {
    return this.baseDir === '' ? dest : dest.slice(this.baseDir.length + 1);
  }

  /** backup.c get_backup_name(): `<name><suffix>` beside the file, or under --backup-dir. */
  private backupNameFor(dest: string): string {
    if (this.backupDirRel === undefined) return `${dest}${this.backupSuffix}`;
    return joinRel(this.backupDirRel, `${this.relToBase(dest)}${this.backupSuffix}`);
  }

  /**
   * backup.c copy_valid_path(): the backup dir and each missing directory below it, created one
   * component at a time and given the attributes of the matching destination directory.
   */
  private ensureBackupDirs(backupPath: string): void {
    if (this.backupDirRel === undefined) return;
    const top = this.backupDirRel;
    if (!this.backupDirsMade.has(top)) {
      if (top !== '') this.sandbox.mkdirp(top, 0o777);
      this.backupDirsMade.add(top);
    }
    const relDir = dirOf(backupPath.slice(top === '' ? 0 : top.length + 1));
    if (relDir === '') return;
    const parts = relDir.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join('/');
      const bdir = joinRel(top, sub);
      if (this.backupDirsMade.has(bdir)) continue;
      const st = this.lstatQuiet(bdir);
      if (st && st.type !== 'dir') this.sandbox.removeTree(bdir);
      if (!st || st.type !== 'dir') {
        this.sandbox.mkdir(bdir, 0o777);
        const src = this.lstatQuiet(joinRel(this.baseDir, sub));
        if (src && src.type === 'dir') {
          const attrs: Attrs = { mode: src.mode & 0o7777 };
          if (this.opts.times) attrs.mtime = { sec: src.mtimeSec, nsec: src.mtimeNsec };
          if (this.isRoot && (this.opts.owner || this.opts.group)) {
            attrs.uid = src.uid;
            attrs.gid = src.gid;
          }
          this.sandbox.setAttrs(bdir, attrs);
        }
      }
      this.backupDirsMade.add(bdir);
    }
  }

  /**
   * backup.c make_backup(): keeps the current `dest` as its backup, by a hard link (the new data
   * then replaces `dest`) or, with preferRename (deletions), a rename. A backup dir on another
   * filesystem gets a copy (robust_move()), and `dest` is removed when a rename was asked for.
   * Returns the reference's codes: 0 failed, 1 renamed, 2 linked/copied, 3 nothing to back up.
   * Callers must not replace or remove `dest` after a 0.
   */
  private makeBackup(dest: string, preferRename: boolean): number {
    const st = this.lstatQuiet(dest);
    if (!st || st.type === 'dir') return 3;
    const backup = this.backupNameFor(dest);
    const attempt = (): number => {
      if (!preferRename) {
        try {
          this.sandbox.link(dest, backup);
          return 2;
        } catch (err) {
          if (!(err instanceof SandboxError) || err.code === 'EEXIST' || err.code === 'EISDIR') throw err;
        }
      }
      try {
        this.sandbox.rename(dest, backup);
        return 1;
      } catch (err) {
        if (!(err instanceof SandboxError) || err.code !== 'EXDEV') throw err;
      }
      this.copyAcross(dest, backup, st);
      if (!preferRename) return 2;
      this.sandbox.unlink(dest);
      return 1;
    };
    try {
      this.ensureBackupDirs(backup);
      let ret: number;
      try {
        ret = attempt();
      } catch (err) {
        if (!(err instanceof SandboxError) || !['EEXIST', 'EISDIR', 'ENOTEMPTY', 'ENOTDIR'].includes(err.code)) throw err;
        this.sandbox.removeTree(backup);
        ret = attempt();
      }
      if (this.infoName >= 2) sendInfo(this.ctx, `backed up ${this.relToBase(dest)} to ${this.backupShown(dest)}\n`);
      return ret;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      sendTransferError(this.ctx, `rsync: [generator] make_backup "${printable(this.relToBase(dest))}": ${err.message}`);
      return 0;
    }
  }

  /**
   * util1.c robust_move() across filesystems: a regular file's data and attributes are copied to
   * `backup` through a temp file there; a symlink is made again; other types cannot be kept.
   */
  private copyAcross(dest: string, backup: string, st: EntryStat): void {
    if (st.type === 'symlink') {
      this.sandbox.symlink(this.sandbox.readlink(dest), backup);
      this.sandbox.setAttrs(backup, { mtime: { sec: st.mtimeSec, nsec: st.mtimeNsec } }, { isSymlink: true });
      return;
    }
    if (st.type !== 'file') throw new SandboxError('EXDEV', dest, `rename "${printable(dest)}" -> "${printable(backup)}" failed: EXDEV`);
    this.copyFileTo(dest, backup);
  }

  /** Copies regular file `src` with its mode, mtime (and, as root, owner) to `to`, replacing it atomically. */
  private copyFileTo(src: string, to: string): void {
    let inFd = -1;
    let tmp: { fd: number; rel: string } | null = null;
    try {
      const opened = this.sandbox.openRead(src);
      inFd = opened.fd;
      tmp = this.sandbox.createTemp(dirOf(to), baseOf(to), 0o600);
      this.copyFd(inFd, tmp.fd, opened.stat.size);
      const attrs: Attrs = { mode: opened.stat.mode & 0o7777, mtime: { sec: opened.stat.mtimeSec, nsec: opened.stat.mtimeNsec } };
      if (this.isRoot) {
        attrs.uid = opened.stat.uid;
        attrs.gid = opened.stat.gid;
      }
      this.sandbox.fsetAttrs(tmp.fd, attrs);
      this.sandbox.close(tmp.fd);
      const st = this.lstatQuiet(to);
      if (st && st.type === 'dir') this.sandbox.removeTree(to);
      this.sandbox.rename(tmp.rel, to);
      tmp = null;
    } finally {
      if (inFd >= 0) this.sandbox.close(inFd);
      if (tmp) this.discardTemp(tmp);
    }
  }

  /** The backup's name as the reference prints it (relative to the destination). */
  private backupShown(dest: string): string {
    const rel = `${this.relToBase(dest)}${this.backupSuffix}`;
    if (this.opts.backupDir === undefined || this.backupDirRel === undefined) return rel;
    const dir = this.opts.backupDir.replace(/^(\.\/)+/, '');
    return `${dir.endsWith('/') ? dir : `${dir}/`}${rel}`;
  }

  /** --inplace --backup: the old data is copied to the backup first (it is then the basis, 0x82). */
  private copyToBackup(dest: string): string | null {
    const backup = this.backupNameFor(dest);
    try {
      this.ensureBackupDirs(backup);
      this.copyFileTo(dest, backup);
      if (this.infoName >= 2) sendInfo(this.ctx, `backed up ${this.relToBase(dest)} to ${this.backupShown(dest)}\n`);
      return backup;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      sendTransferError(this.ctx, `rsync: [generator] keep_backup failed: "${printable(this.relToBase(dest))}": ${err.message}`);
      return null;
    }
  }

  /** receiver.c handle_delayed_updates(): the partial-dir files go into place after the transfer phase. */
  private handleDelayedUpdates(): void {
    this.delayed.sort((a, b) => a.entry.ndx - b.entry.ndx);
    for (const d of this.delayed.splice(0)) {
      if (this.backupsActive(false) && this.makeBackup(d.dest, false) === 0) continue;
      try {
        this.sandbox.rename(d.partialRel, d.dest);
      } catch (err) {
        if (!(err instanceof SandboxError)) throw err;
        sendTransferError(this.ctx, `rsync: [receiver] rename failed for "${printable(this.fnameOf(d.entry))}" (from ${printable(this.relToBase(d.partialRel))}): ${err.message}`);
        continue;
      }
      if (this.opts.removeSourceFiles) this.sendSuccess(d.entry.ndx);
      this.removePartialDir(d.partialRel);
    }
    this.delayedDone = true;
    this.finishHardLinks();
  }

  /**
   * cleanup.c on a fatal error mid-file: with --partial the data that arrived is kept under the
   * file's name (mtime 0, so it is not taken for complete), with --partial-dir in the partial dir;
   * otherwise the temp file goes.
   */
  private abandonTemp(): void {
    const t = this.currentTemp;
    if (!t) return;
    this.currentTemp = null;
    let closed = false;
    try {
      try {
        t.out.flush();
      } catch {
        // keep what was written
      }
      const partialPtr = this.partialDir ? t.partialRel : t.dest;
      if (t.gotLiteral && this.keepPartial && partialPtr !== undefined && this.makePartialDir(partialPtr)) {
        const attrs: Attrs = { ...this.attrsFor(t.entry, false, true), mode: t.mode & 0o7777 };
        if (this.partialDir) delete attrs.mtime;
        else attrs.mtime = { sec: 0, nsec: t.entry.mtimeNsec }; // the reference zeroes only the seconds
        this.sandbox.fsetAttrs(t.fd, attrs);
        t.rel ??= this.nameTemp(t.fd, t.dest);
        closed = true;
        this.sandbox.close(t.fd);
        if (!this.partialDir && this.opts.backup && this.makeBackup(t.dest, false) === 0) this.sandbox.unlink(t.rel);
        else this.sandbox.rename(t.rel, partialPtr);
        return;
      }
      closed = true;
      this.sandbox.close(t.fd);
      if (t.rel !== null) this.sandbox.unlink(t.rel);
    } catch {
      try {
        if (!closed) this.sandbox.close(t.fd);
        if (t.rel !== null) this.sandbox.unlink(t.rel);
      } catch {
        // best effort
      }
    }
  }
}

/** Read once: process.umask() with no argument sets and resets it. */
const PROCESS_UMASK = process.umask();

/** A temp file's mode while it is written: owner-writable, private (receiver.c open_tmpfile()). */
function tempMode(mode: number): number {
  return (mode | 0o200) & 0o700;
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
  ctx.stats = { files: receiver.filesTransferred, deletions: receiver.deletions, literalBytes: receiver.literalBytes, matchedBytes: receiver.matchedBytes };
  return code;
}
