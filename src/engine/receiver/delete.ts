/**
 * delete.c and generator.c delete_in_dir(): --delete in its timings, --max-delete, -x, the
 * client's protect rules, and delete_item(DEL_MAKE_ROOM) that clears a name for an item of
 * another type. Deleted entries are told to the client (MSG_DELETED, or a log line before 29).
 */
import { isDir, type FileEntry } from '../../protocol/flist/entry.js';
import { XMIT } from '../../protocol/flist/xmit.js';
import { MsgTag } from '../../protocol/mux.js';
import { NDX_DEL_STATS } from '../../protocol/ndx.js';
import { SandboxError, type EntryStat } from '../../sandbox/sandbox.js';
import type { DirFilter } from '../filter-match.js';
import { sendInfo, sendTransferError, sendWarning } from '../messages.js';
import { yieldToLoop } from '../notifier.js';
import { baseOf, dirOf, joinRel } from '../relpath.js';
import type { Backups } from './backup.js';
import type { FileList, ReceiverState } from './state.js';

type DeleteTiming = 'before' | 'during' | 'delay' | 'after';

/** Entries looked at between two turns of the event loop (a tree of 300 000 files must not stall other sessions). */
const ENTRIES_PER_TURN = 256;

/** The client's receiver-side filter rules, one DirFilter per directory (merge files read once). */
export class DirFilters {
  private readonly cache = new Map<string, DirFilter>();

  constructor(private readonly s: ReceiverState) {}

  of(dirName: string): DirFilter | undefined {
    const filters = this.s.filters;
    if (!filters) return undefined;
    let f = this.cache.get(dirName);
    if (!f) {
      const parent = dirName === '.' ? undefined : dirOf(dirName) || '.';
      if (parent !== undefined && !this.cache.has(parent)) this.of(parent);
      f = filters.enterDir(dirName === '.' ? '' : dirName);
      this.cache.set(dirName, f);
    }
    return f;
  }
}

export class Deleter {
  /** Whether this session deletes extraneous files at all (set when the generator starts). */
  enabled = false;
  private readonly counts = { files: 0, dirs: 0, symlinks: 0, devices: 0, specials: 0 };
  private left: number;
  private limitHit = 0;
  private limitReported = false;
  private readonly delayedDirs: Array<{ dir: FileEntry; keep: Set<string> }> = [];
  /** -x: devices of the transfer's top directories, and the one deletions are in now (filesystem_dev). */
  private readonly topDevs = new Set<number>();
  private currentDev: number | undefined;
  private entriesThisTurn = 0;

  constructor(
    private readonly s: ReceiverState,
    private readonly backups: Backups,
    private readonly filters: DirFilters,
  ) {
    const max = s.opts.maxDelete;
    this.left = max === undefined ? Infinity : Math.max(0, max);
  }

  /** --delete is on, there is a directory to delete in, and no I/O error forbids it. */
  start(ioError: number, generalBit: number): boolean {
    const o = this.s.opts;
    this.enabled = false;
    if (!o.deleteMode || this.s.places.singleFile) return false;
    if (ioError & generalBit && !o.ignoreErrors) {
      sendInfo(this.s.ctx, 'IO error encountered -- skipping file deletion\n');
      return false;
    }
    this.enabled = true;
    return true;
  }

  get timing(): DeleteTiming {
    return this.s.opts.deleteTiming ?? (this.s.protocol >= 30 ? 'during' : 'before');
  }

  /** Deletions that run after the transfer (--delete-after, --delete-delay). */
  get late(): boolean {
    return this.enabled && (this.timing === 'after' || this.timing === 'delay');
  }

  /** Entries deleted so far (of every type). */
  get deletions(): number {
    const d = this.counts;
    return d.files + d.dirs + d.symlinks + d.devices + d.specials;
  }

  get limitExceeded(): boolean {
    return this.limitHit > 0;
  }

  isContentDir(e: FileEntry): boolean {
    const o = this.s.opts;
    if (this.s.protocol >= 30) return (e.xflags & XMIT.NO_CONTENT_DIR) === 0 && (o.recursive || e.name === '.');
    return o.recursive || (e.xflags & XMIT.TOP_DIR) !== 0;
  }

  /** --delete-before: every content directory of the (whole) list. */
  async beforeTransfer(list: FileList): Promise<void> {
    for (const e of list.entries) {
      if (!e.inactive && isDir(e) && this.isContentDir(e)) {
        this.reportPass(e);
        await this.inDirReporting(e, childrenIn(e, list));
      }
    }
  }

  /** A directory of the list being generated: delete now (during) or queue it (delay/after). */
  async atDirectory(e: FileEntry, list: FileList): Promise<void> {
    const keep = childrenIn(e, list);
    if (this.timing === 'during') await this.inDir(e, keep);
    else if (this.timing === 'delay' || this.timing === 'after') this.delayedDirs.push({ dir: e, keep });
  }

  async afterTransfer(): Promise<void> {
    const after = this.timing === 'after';
    for (const d of this.delayedDirs.splice(0)) {
      if (after) this.reportPass(d.dir);
      await this.inDirReporting(d.dir, d.keep);
    }
  }

  /** The generator's last word on --max-delete (FWARNING). */
  reportLimit(): void {
    if (this.s.opts.maxDelete !== undefined && this.limitHit > 0 && !this.limitReported) {
      this.limitReported = true;
      sendWarning(this.s.ctx, `Deletions stopped due to --max-delete limit (${this.limitHit} skipped)`);
    }
  }

  writeStats(): void {
    const d = this.counts;
    const w = this.s.ctx.writer;
    w.ndx(NDX_DEL_STATS);
    w.varint(d.files);
    w.varint(d.dirs);
    w.varint(d.symlinks);
    w.varint(d.devices);
    w.varint(d.specials);
  }

  /**
   * delete.c delete_item(..., DEL_MAKE_ROOM): clears the way for a new item of another type. A
   * non-empty directory goes only with --delete or --force (its contents are logged as deletions);
   * with --backup a non-directory becomes a backup. Returns false (after reporting) when it stays.
   */
  async makeRoom(e: FileEntry, dest: string, st: EntryStat, what: string): Promise<boolean> {
    if (this.s.opts.dryRun) return true;
    const name = this.s.fnameOf(e);
    const fs = this.s.fs;
    try {
      if (st.type === 'dir') {
        if (this.s.sandbox.readdir(dest).length > 0) {
          let emptied = false;
          if (this.s.opts.deleteMode || this.s.opts.force) emptied = await this.dirContents(dest, name);
          else sendInfo(this.s.ctx, `cannot delete non-empty directory: ${name}\n`);
          if (!emptied) {
            sendTransferError(this.s.ctx, `could not make way for new ${what}: ${name}`);
            return false;
          }
        }
        fs.rmdir(dest, 'make-room');
      } else if (this.s.opts.backup && !this.backups.isBackupName(name)) {
        const made = await this.backups.make(dest, true);
        if (made === 'failed') return false;
        if (made === 'kept') fs.unlink(dest, 'make-room');
      } else {
        fs.unlink(dest, 'make-room');
      }
      return true;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      sendTransferError(this.s.ctx, `rsync: [generator] delete_file: ${name}: ${err.message}`);
      sendTransferError(this.s.ctx, `could not make way for new ${what}: ${name}`);
      return false;
    }
  }

  /**
   * delete.c delete_item(): a directory's contents go first (delete_dir_contents), unless the
   * caller already emptied it (`contentsDone`). Returns whether the item is gone.
   */
  async item(destRel: string, rel: string, st: EntryStat, contentsDone = false): Promise<boolean> {
    if (st.type === 'dir' && !contentsDone && !(await this.dirContents(destRel, rel))) return false;
    if (this.left <= 0) {
      this.limitHit++;
      return false;
    }
    if (!this.s.opts.dryRun && !(await this.remove(destRel, rel, st))) return false;
    this.left--;
    this.count(st);
    this.reportDeleted(rel, st.type === 'dir');
    if (this.s.ctx.transferLog) this.s.ctx.transferLog({ op: 'del', path: destRel, length: 0, itemize: '*deleting' });
    return true;
  }

  private async remove(destRel: string, rel: string, st: EntryStat): Promise<boolean> {
    const fs = this.s.fs;
    try {
      if (st.type === 'dir') fs.rmdir(destRel, 'delete');
      else if (this.s.opts.backup && !this.backups.isBackupName(rel)) {
        // --backup: a deleted file becomes its backup (renamed; a copy is removed).
        const made = await this.backups.make(destRel, true);
        if (made === 'failed') return false;
        if (made === 'kept') fs.unlink(destRel, 'delete');
      } else fs.unlink(destRel, 'delete');
      return true;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      if (st.type === 'dir' && err.code === 'ENOTEMPTY') sendInfo(this.s.ctx, `cannot delete non-empty directory: ${rel}\n`);
      else sendTransferError(this.s.ctx, `rsync: [generator] delete_file: ${rel}: ${err.message}`);
      return false;
    }
  }

  /** do_delete_pass() at -vv (DEBUG DEL): "deleting in <top dir>". */
  private reportPass(e: FileEntry): void {
    if (this.s.infoName >= 2 && (e.xflags & XMIT.TOP_DIR || e.name === '.')) sendInfo(this.s.ctx, `deleting in ${this.s.fnameOf(e)}\n`);
  }

  /** Outside the generator's per-entry guard: a sandbox refusal (e.g. a symlinked parent) is a per-dir error. */
  private async inDirReporting(dir: FileEntry, keep: Set<string>): Promise<void> {
    try {
      await this.inDir(dir, keep);
    } catch (err) {
      if (err instanceof SandboxError) this.s.reportEntryError(dir, err);
      else throw err;
    }
  }

  private async inDir(dirEntry: FileEntry, keep: Set<string>): Promise<void> {
    const dirName = dirEntry.name;
    let destDir = this.s.destOf(dirEntry);
    let st = this.s.sandbox.lstat(destDir);
    if (st?.type === 'symlink' && this.s.opts.keepDirlinks) {
      // -K, --delete-before: the generator has not reached this directory's link yet.
      if (this.s.dirLinks.enter(joinRel(this.s.places.destRel, dirName), destDir, this.s.places.destRel) !== true) return;
      destDir = this.s.destOf(dirEntry);
      st = this.s.sandbox.lstat(destDir);
    }
    if (!st || st.type !== 'dir') return;
    if (this.s.opts.oneFileSystem > 0 && !this.onTopFilesystem(dirEntry, st)) return;
    const filter = this.filters.of(dirName);
    const names = this.s.sandbox.readdir(destDir).sort().reverse();
    for (const name of names) {
      if (keep.has(name)) continue;
      const rel = dirName === '.' ? name : `${dirName}/${name}`;
      const est = this.s.sandbox.lstat(joinRel(destDir, name));
      if (!est) continue;
      if (filter && filter.protectedFromDelete(rel, est.type === 'dir').protected) continue;
      if (this.isMountPoint(est)) {
        if (this.s.infoName >= 2) sendInfo(this.s.ctx, `cannot delete mount point: ${rel}\n`);
        continue;
      }
      await this.item(joinRel(destDir, name), rel, est);
      await this.pace();
    }
  }

  /** After each entry: the client's backpressure, and now and then a turn for other sessions. */
  private async pace(): Promise<void> {
    await this.s.writable();
    if (++this.entriesThisTurn < ENTRIES_PER_TURN) return;
    this.entriesThisTurn = 0;
    await yieldToLoop();
    this.s.checkCancelled();
  }

  /**
   * -x (delete_in_dir): a top directory of the transfer names the filesystem deletions stay on;
   * another directory is only entered when it is on that one or on an earlier top dir's.
   */
  private onTopFilesystem(dirEntry: FileEntry, st: EntryStat): boolean {
    if (dirEntry.xflags & XMIT.TOP_DIR || dirEntry.name === '.') {
      this.topDevs.add(st.dev);
      this.currentDev = st.dev;
      return true;
    }
    if (st.dev === this.currentDev) return true;
    if (!this.topDevs.has(st.dev)) return false;
    this.currentDev = st.dev;
    return true;
  }

  /** -x: a directory on another file system (FLAG_MOUNT_DIR) is never deleted. */
  private isMountPoint(st: EntryStat): boolean {
    return this.s.opts.oneFileSystem > 0 && st.type === 'dir' && this.currentDev !== undefined && st.dev !== this.currentDev;
  }

  /**
   * delete.c delete_dir_contents(): every entry of the directory, depth first in reverse order.
   * Entries protected by a non-perishable filter rule, mount points (-x) and entries that could
   * not go (--max-delete) leave it non-empty ("cannot delete non-empty directory").
   */
  private async dirContents(destRel: string, rel: string): Promise<boolean> {
    let empty = true;
    const filter = this.filters.of(rel);
    for (const child of this.s.sandbox.readdir(destRel).sort().reverse()) {
      if (!(await this.dirChild(joinRel(destRel, child), `${rel}/${child}`, filter))) empty = false;
      await this.pace();
    }
    if (!empty) sendInfo(this.s.ctx, `cannot delete non-empty directory: ${rel}\n`);
    return empty;
  }

  /** One entry of delete_dir_contents(): whether it is gone (or was not there any more). */
  private async dirChild(cpath: string, childRel: string, filter: DirFilter | undefined): Promise<boolean> {
    const cst = this.s.sandbox.lstat(cpath);
    if (!cst) return true;
    if (filter) {
      const prot = filter.protectedFromDelete(childRel, cst.type === 'dir');
      if (prot.protected && !prot.perishable) return false;
    }
    if (this.isMountPoint(cst)) return false; // pins its parent
    let gone = true;
    if (cst.type === 'dir' && !(await this.dirContents(cpath, childRel))) gone = false;
    if (!(await this.item(cpath, childRel, cst, true))) gone = false;
    return gone;
  }

  private count(st: EntryStat): void {
    const c = this.counts;
    if (st.type === 'dir') c.dirs++;
    else if (st.type === 'symlink') c.symlinks++;
    else if (st.type === 'chr' || st.type === 'blk') c.devices++;
    else if (st.type === 'fifo' || st.type === 'sock') c.specials++;
    else c.files++;
  }

  private reportDeleted(rel: string, dir: boolean): void {
    if (this.s.protocol >= 29) {
      const payload = Buffer.from(dir ? `${rel}\0` : rel, 'latin1');
      this.s.ctx.writer.message(MsgTag.DELETED, payload);
      return;
    }
    if (this.s.infoName === 0 && this.s.opts.logFormat === undefined) return;
    // log.c log_delete() of a protocol < 29 server: the client's format when it has %i/%o.
    const fmt = this.s.opts.logFormat ?? '';
    const name = `${rel}${dir ? '/' : ''}`;
    if (!/%[-0-9']*[io]/.test(fmt)) {
      sendInfo(this.s.ctx, `deleting ${name}\n`);
      return;
    }
    const line = fmt.replace(/%[-0-9']*([a-zA-Z%])/g, (all, c: string) =>
      c === 'i' ? '*deleting  ' : c === 'o' ? 'del.' : c === 'n' || c === 'f' ? name : c === 'L' ? '' : all,
    );
    sendInfo(this.s.ctx, `${line}\n`);
  }
}

/** Names (last components) of the directory's children as the sender listed them. */
function childrenIn(dir: FileEntry, list: FileList): Set<string> {
  const parent = dir.name === '.' ? '' : dir.name;
  const names = new Set<string>();
  for (const e of list.entries) {
    if (e.inactive || e.name === '.') continue;
    if (dirOf(e.name) === parent) names.add(baseOf(e.name));
  }
  return names;
}
