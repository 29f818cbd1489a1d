/**
 * Receiving the file lists (flist.c recv_file_list() on the receiving side): the first list with
 * the filter rules and id lists, then (incremental recursion) one sub-list per directory, and the
 * bookkeeping of which lists are still addressable by a file index.
 */
import { ProtocolError } from '../../protocol/errors.js';
import { readFilterList, type FilterRule } from '../../protocol/filter.js';
import { FlistReader } from '../../protocol/flist/flist-reader.js';
import { isDir, isSymlink, type FileEntry } from '../../protocol/flist/entry.js';
import { sortFileList } from '../../protocol/flist/flist-sort.js';
import { NDX_FLIST_EOF, NDX_FLIST_OFFSET } from '../../protocol/ndx.js';
import { FilterSet } from '../filter-match.js';
import { readSmallFile } from '../../sandbox/small-file.js';
import { MAX_MERGE_FILE_BYTES } from '../filter-match.js';
import { flistOptionsFor } from '../context.js';
import { entryOverhead, flistCharges, listBytes } from '../budget.js';
import { dirOf, joinRel } from '../relpath.js';
import { printable } from '../../printable.js';
import type { DirFilters } from './delete.js';
import type { FileList, ReceiverState } from './state.js';

/** receiver_wants_list: does the client send its filter list to us? */
function receiverWantsFilterList(opts: ReceiverState['opts'], protocol: number): boolean {
  return opts.pruneEmptyDirs || (opts.deleteMode && (!opts.deleteExcluded || protocol >= 29));
}

export class FileLists {
  /** Lists not yet finished, oldest first (all lists without incremental recursion). */
  readonly open: FileList[] = [];
  /** The io_error bits the sender put in its lists. */
  ioError = 0;
  /** No more lists will come. */
  eof = false;
  /** NDX_DONEs the generator wrote for finished lists, and whether the last one (G1) is out. */
  donesSent = 0;
  phaseOneSent = false;
  /** Finished lists whose NDX_DONE the sender has not echoed yet (its echoes may still name them). */
  private readonly unechoed: FileList[] = [];
  /** Echoed lists that stay addressable (no incremental recursion: the one list lives to the end). */
  private readonly retired: FileList[] = [];
  private echoes = 0;
  private nextNdxStart = 0;
  /** Incremental recursion: every directory in list order; NDX_FLIST_OFFSET - d names dirList[d]. */
  private readonly dirList: FileEntry[] = [];
  private readonly dirsWithList = new Set<number>();
  private reader!: FlistReader;
  /** What each entry is charged to the session's budget besides its name. */
  private readonly entryCost: number;

  constructor(
    private readonly s: ReceiverState,
    private readonly dirFilters: DirFilters,
  ) {
    this.entryCost = entryOverhead('receiver', s.opts);
  }

  async receiveFirst(): Promise<void> {
    const { ctx, opts, protocol } = this.s;
    const r = ctx.reader;
    let rules: FilterRule[] = [];
    if (receiverWantsFilterList(opts, protocol)) rules = await readFilterList(r, protocol);
    if (rules.length > 0 || opts.cvsExclude) {
      this.s.filters = new FilterSet(rules, {
        side: 'receiver',
        deleteExcluded: opts.deleteExcluded,
        cvsExclude: opts.cvsExclude,
        protocol,
        readMergeFile: (dirRel, name) => this.readMergeFile(dirRel, name),
      });
    }
    this.reader = new FlistReader(flistOptionsFor(ctx));
    this.reader.charges = flistCharges(ctx.budget, this.entryCost);
    // With incremental recursion the first list starts at 1; ndx_start - 1 names its parent.
    this.nextNdxStart = this.s.inc ? 1 : 0;
    await this.receive(undefined);
    if (this.s.inc) return;
    if ((opts.owner || opts.group) && !opts.numericIds) {
      const ids = await this.reader.readIdLists(r);
      this.s.userNames = ids.users;
      this.s.groupNames = ids.groups;
    }
    if (protocol < 30) this.ioError |= await this.reader.readTrailingIoError(r);
    this.eof = true;
  }

  /** A negative index from the sender (incremental recursion): a directory's list, or the end of lists. */
  async onNegativeNdx(ndx: number): Promise<void> {
    if (!this.s.inc) throw new ProtocolError(`Invalid file index: ${ndx}`);
    if (ndx === NDX_FLIST_EOF) {
      this.eof = true;
      this.s.progress.notify();
      return;
    }
    const dirIndex = NDX_FLIST_OFFSET - ndx;
    if (ndx > NDX_FLIST_OFFSET || this.eof || dirIndex >= this.dirList.length) {
      throw new ProtocolError(`Invalid dir index: ${dirIndex} (count=${this.dirList.length})`);
    }
    if (this.dirsWithList.has(dirIndex)) throw new ProtocolError(`refusing malicious duplicate flist for dir ${dirIndex}`);
    this.dirsWithList.add(dirIndex);
    await this.receive(this.dirList[dirIndex]);
  }

  /** The list an index belongs to; with incremental recursion ndx_start - 1 names the list's directory. */
  listOf(ndx: number): FileList | undefined {
    const low = this.s.inc ? 1 : 0;
    for (const group of [this.open, this.unechoed, this.retired]) {
      for (let i = group.length - 1; i >= 0; i--) {
        const l = group[i]!;
        if (ndx >= l.ndxStart - low && ndx < l.ndxStart + l.entries.length) return l;
      }
    }
    return undefined;
  }

  /** The oldest open list got its NDX_DONE: it waits for the sender's echo. */
  finishOldest(last: boolean): void {
    const l = this.open.shift()!;
    this.donesSent++;
    l.finished = true;
    this.unechoed.push(l);
    if (last) this.phaseOneSent = true;
  }

  /** The sender echoed one list's NDX_DONE; true once the echo of G1 arrived (its phase 1 starts). */
  echoed(): boolean {
    this.echoes++;
    const freed = this.unechoed.shift();
    // Without incremental recursion the reference keeps its one list to the end: items may
    // still be itemized in phase 2 (hard links of --delay-updates files) and echoed back.
    if (freed && this.s.inc) {
      this.s.ctx.budget.release(listBytes(freed.entries, this.entryCost));
      freed.entries = [];
    }
    else if (freed) this.retired.push(freed);
    if (this.echoes > this.donesSent) throw new ProtocolError('unexpected NDX_DONE from sender');
    return this.phaseOneSent && this.echoes === this.donesSent;
  }

  private async receive(parent: FileEntry | undefined): Promise<void> {
    const ndxStart = this.nextNdxStart;
    const { entries, ioError } = await this.reader.readList(this.s.ctx.reader, ndxStart, (a) => this.entryByArrival(a));
    this.ioError |= ioError;
    const chmod = this.s.incomingChmod;
    if (chmod) {
      // As rsyncd's "incoming chmod": the forced modes replace the sender's as entries arrive.
      for (const e of entries) if (!isSymlink(e) && e.mode !== 0) e.mode = chmod(e.mode, isDir(e));
    }
    if (parent) {
      for (const e of entries) {
        if (dirOf(e.name) !== (parent.name === '.' ? '' : parent.name)) {
          throw new ProtocolError(`ABORTING due to invalid path from sender: ${printable(e.name)}`);
        }
      }
    }
    const sorted = sortFileList(entries, this.s.protocol, ndxStart);
    if (this.s.opts.pruneEmptyDirs && !this.s.inc) this.pruneEmptyDirs(sorted);
    // A directory named twice (several sources) keeps its place: the sender numbers its dup too.
    if (this.s.inc) for (const e of sorted) if (isDir(e)) this.dirList.push(e);
    this.open.push({ ndxStart, entries: sorted, parent, pending: 0, redo: [], processed: false, finished: false });
    this.nextNdxStart = ndxStart + sorted.length + (this.s.inc ? 1 : 0);
    this.s.progress.notify();
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
      else if (e.name !== '.' && this.s.filters) {
        const f = this.dirFilters.of(dirOf(e.name) || '.');
        if (f && f.protectedFromDelete(e.name, true).protected) keepChain(e.name);
      }
    }
    for (const e of entries) {
      if (!e.inactive && isDir(e) && e.name !== '.' && !keep.has(e.name)) e.inactive = true;
    }
  }

  private entryByArrival(arrival: number): FileEntry | undefined {
    for (let i = this.open.length - 1; i >= 0; i--) {
      const l = this.open[i]!;
      if (arrival >= l.ndxStart) return l.entries.find((e) => e.arrival === arrival);
    }
    return undefined;
  }

  private readMergeFile(dirRel: string, name: string): Buffer | null {
    return readSmallFile(this.s.sandbox, joinRel(joinRel(this.s.places.destRel, dirRel), name), MAX_MERGE_FILE_BYTES);
  }
}
