/**
 * generator.c generate_files(): the generating half of a push. It walks each received list in
 * order, creates directories, symlinks and specials, hands regular files to generator-file.ts,
 * finishes the lists (hard links, redo requests, NDX_DONE) and runs the phases with the sender:
 * deletions at their time, --delay-updates, directory attributes last.
 */
import { isDevice, isDir, isRegular, isSpecial, isSymlink, type FileEntry } from '../../protocol/flist/entry.js';
import { XMIT } from '../../protocol/flist/xmit.js';
import { NDX_DONE } from '../../protocol/ndx.js';
import { isUnsafeSymlink, SandboxError, type EntryStat } from '../../sandbox/sandbox.js';
import { IOERR } from '../../protocol/errors.js';
import { ITEM } from '../../protocol/itemize.js';
import { sendInfo } from '../messages.js';
import { yieldToLoop } from '../notifier.js';
import { baseOf, dirOf, joinRel } from '../relpath.js';
import { printable } from '../../printable.js';
import type { Attributes } from './attrs.js';
import type { Backups } from './backup.js';
import type { BasisFinder } from './basis.js';
import type { Deleter } from './delete.js';
import type { FileLists } from './flists.js';
import type { FileGenerator, Requests } from './generator-file.js';
import type { HardLinks } from './hardlinks.js';
import { makedev, modeType, type FileList, type ReceiverState } from './state.js';
import type { TempFiles } from './tempfiles.js';

/** The generator lstats up to this many names of one destination directory in one call. */
const STAT_AHEAD = 1024;

/** The collaborators the generator drives. */
export interface GeneratorParts {
  lists: FileLists;
  files: FileGenerator;
  requests: Requests;
  attrs: Attributes;
  basis: BasisFinder;
  deleter: Deleter;
  hardLinks: HardLinks;
  backups: Backups;
  temps: TempFiles;
  /** io_error bits known so far (the lists' and the sender's MSG_IO_ERROR). */
  ioError: () => number;
}

export class Generator {
  private nextToProcess = 0;
  /** Directories created (or, in a dry run, that would be), by list name. */
  private readonly newDirs = new Set<string>();
  /**
   * Directories this session made (by list name; '' for a destination it created): they were
   * empty, so their entries need no lstat(2) to know nothing is there.
   */
  private readonly madeDirs = new Set<string>();
  /** Directories whose attributes are set once everything below them is written. */
  private readonly dirFixups: FileEntry[] = [];
  /** --existing: directories not created (their contents are skipped without a word). */
  private readonly existingSkipped = new Set<string>();

  constructor(
    private readonly s: ReceiverState,
    private readonly x: GeneratorParts,
  ) {}

  /** The destination directory was created by this session (destination.ts). */
  destinationMade(): void {
    this.madeDirs.add('');
  }

  /** get_local_name() counts the transfer root "." as created when it made the destination. */
  rootCreated(): void {
    this.newDirs.add('.');
  }

  async run(): Promise<void> {
    const { s, x } = this;
    const w = s.ctx.writer;
    if (s.infoName >= 2) {
      const whole = s.opts.wholeFile === true && s.opts.append === 0;
      sendInfo(s.ctx, `delta-transmission ${whole ? 'disabled for local transfer or --whole-file' : 'enabled'}\n`);
    }
    if (x.deleter.start(x.lists.ioError | x.ioError(), IOERR.GENERAL) && x.deleter.timing === 'before') {
      await x.deleter.beforeTransfer(x.lists.open[0]!);
    }
    await this.walkLists();
    w.flush();
    while (!x.lists.phaseOneSent) {
      await this.until(() => this.listReadyToFinish());
      await this.finishReadyLists();
    }
    w.flush();
    await this.until(() => s.senderPhase >= 1);
    w.ndx(NDX_DONE); // G2: redo requests were already sent before each list's NDX_DONE
    w.flush();
    const late = x.deleter.late;
    if (s.protocol < 29) {
      await this.until(() => s.senderPhase >= 2);
      if (s.opts.delayUpdates) await this.applyDelayedUpdates();
      await this.finishAndSayGoodbye(late); // G3
      return;
    }
    if (s.opts.delayUpdates) {
      // The receiver's phase 2 begins with the sender's E2: the delayed renames, then G3.
      await this.until(() => s.senderPhase >= 2);
      await this.applyDelayedUpdates();
    }
    w.ndx(NDX_DONE); // G3
    w.flush();
    if (s.protocol < 31) {
      await this.until(() => s.senderPhase >= 3);
      await this.finishAndSayGoodbye(late); // G4
      return;
    }
    if (late) {
      await this.until(() => s.senderPhase >= 3);
      await x.deleter.afterTransfer();
    }
    x.deleter.reportLimit();
    if (x.deleter.enabled || s.opts.force) x.deleter.writeStats();
    w.ndx(NDX_DONE); // G4
    w.flush();
    await this.until(() => s.senderPhase >= 4);
    this.fixDirectories();
    w.ndx(NDX_DONE); // G5: goodbye
    w.flush();
  }

  /** Phase 1: every list as it arrives, finished in order. */
  private async walkLists(): Promise<void> {
    const lists = this.x.lists;
    for (;;) {
      if (this.nextToProcess < lists.open.length) {
        await this.processList(lists.open[this.nextToProcess++]!);
        await this.finishReadyLists();
        continue;
      }
      if (lists.eof) break;
      this.s.ctx.writer.flush();
      const seen = lists.open.length;
      await this.until(() => lists.open.length > seen || lists.eof || this.listReadyToFinish());
      await this.finishReadyLists();
    }
  }

  /** Waits for the other half (or new lists); a cancelled session stops here. */
  private async until(cond: () => boolean): Promise<void> {
    await this.s.progress.until(() => this.s.cancelled !== null || cond());
    this.s.checkCancelled();
  }

  /** Protocols < 31: late deletions, the --max-delete report, directory times, then the goodbye NDX_DONE. */
  private async finishAndSayGoodbye(lateDeletions: boolean): Promise<void> {
    if (lateDeletions) await this.x.deleter.afterTransfer();
    this.x.deleter.reportLimit();
    this.fixDirectories();
    this.s.ctx.writer.ndx(NDX_DONE);
    this.s.ctx.writer.flush();
  }

  private fixDirectories(): void {
    this.x.attrs.fixDirectories(this.dirFixups, (e) => this.newDirs.has(e.name));
  }

  private async applyDelayedUpdates(): Promise<void> {
    await this.x.temps.applyDelayed(this.x.backups);
    await this.finishHardLinks();
  }

  private async finishHardLinks(): Promise<void> {
    const { requests, lists, temps } = this.x;
    await this.x.hardLinks.finish(
      (leader) => requests.has(leader.ndx) || lists.open.some((l) => l.redo.includes(leader)) || temps.isDelayed(leader.ndx),
    );
  }

  private async processList(list: FileList): Promise<void> {
    if (this.s.opts.hardLinks) this.x.hardLinks.markGroups(list);
    if (list.parent) await this.processListDirectory(list.parent, list);
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
        if (err instanceof SandboxError) this.s.reportEntryError(e, err);
        else throw err;
      }
      await this.s.writable();
      if (Date.now() - lastYield > 50) {
        await yieldToLoop();
        this.s.checkCancelled();
        lastYield = Date.now();
      }
    }
    list.processed = true;
  }

  /** The directory of an incremental-recursion list, as its ndx_start - 1 (a refusal is its own error). */
  private async processListDirectory(dir: FileEntry, list: FileList): Promise<void> {
    try {
      await this.processDirectory(dir, list.ndxStart - 1, list);
    } catch (err) {
      if (err instanceof SandboxError) this.s.reportEntryError(dir, err);
      else throw err;
    }
  }

  /** Whether finishReadyLists() can act on the oldest list now. */
  private listReadyToFinish(): boolean {
    const lists = this.x.lists;
    const l = lists.open[0];
    if (!l || !l.processed || l.pending > 0) return false;
    return l.redo.length > 0 || lists.open.length > 1 || lists.eof;
  }

  /**
   * Lists finish strictly in order once every transfer from them completed; a failed verification
   * is requested again (full-length sums) before the list's NDX_DONE. The NDX_DONE of the last
   * list, once no more lists can come, ends phase 1 (G1).
   */
  private async finishReadyLists(): Promise<void> {
    const w = this.s.ctx.writer;
    const lists = this.x.lists;
    while (lists.open.length > 0) {
      const l = lists.open[0]!;
      if (!l.processed || l.pending > 0) return;
      if (l.redo.length > 0) {
        for (const e of l.redo.splice(0)) await this.x.files.requestRedo(l, e);
        w.flush();
        return;
      }
      // Like the reference, a list is only finished once a newer one arrived or none can come.
      const last = lists.eof && lists.open.length === 1;
      if (!last && lists.open.length === 1) return;
      await this.finishHardLinks();
      w.ndx(NDX_DONE);
      // Sent now, not with the next batch: with incremental recursion the sender keeps only
      // about 1000 files ahead and sends more lists when it sees lists finish.
      w.flush();
      lists.finishOldest(last);
      this.nextToProcess--;
      if (last) {
        this.s.progress.notify();
        return;
      }
    }
  }

  /**
   * Destination lstats can be taken a directory at a time ahead of the entries (statAhead) when
   * handling one entry changes nothing at another entry's name: not with backups (name~), partial
   * or temp dirs, hard links (followers are linked when their leader completes), missing-arg
   * deletions or -R --no-implied-dirs (parents made on the way).
   */
  private canStatAhead(): boolean {
    const o = this.s.opts;
    const p = this.s.places;
    return !p.singleFile && !o.backup && !o.hardLinks && !o.deleteMissingArgs && !(o.relative && !o.impliedDirs) &&
      p.partialDir === undefined && p.tempDirRel === undefined;
  }

  /**
   * Fills `cache` (emptied first) with the destination lstats of entries[from] and the entries
   * after it in the same destination directory, up to STAT_AHEAD, in one call; returns the index
   * after the last entry looked at. Entries whose stat failed, or that need none (knownAbsent),
   * are left out: generateEntry() does its own.
   */
  private statAhead(entries: readonly FileEntry[], from: number, cache: Map<FileEntry, EntryStat | null>): number {
    cache.clear();
    const dir = dirOf(this.s.destOf(entries[from]!));
    const names: string[] = [];
    const which: FileEntry[] = [];
    let i = from;
    for (; i < entries.length && names.length < STAT_AHEAD; i++) {
      const e = entries[i]!;
      if (e.inactive || modeType(e.mode) === 0) continue;
      const dest = this.s.destOf(e);
      if (dirOf(dest) !== dir) break;
      if (this.knownAbsent(e)) continue;
      names.push(baseOf(dest));
      which.push(e);
    }
    if (names.length < 2) return Math.max(i, from + 1);
    let stats: Array<EntryStat | null | SandboxError>;
    try {
      stats = this.s.sandbox.lstatChildren(dir, names);
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
    // The contents of a directory that failed (below a refused link's child) are skipped.
    if (this.s.dirLinks.belowRefused(joinRel(this.s.places.destRel, e.name)) >= 2) return;
    let dest = this.s.destOf(e);
    let st = this.knownAbsent(e) ? null : statedAhead !== undefined ? statedAhead : this.s.sandbox.lstat(dest);
    const o = this.s.opts;
    if (modeType(e.mode) === 0) return this.missingArg(e, dest, st);
    if (st?.type === 'symlink' && isDir(e)) {
      const through = this.throughDirLink(e, dest);
      if (through === 'refused') return;
      if (through) {
        dest = this.s.destOf(e);
        st = this.s.sandbox.lstat(dest);
      }
    }
    if (this.skippedExisting(e, st)) return;
    if (o.relative && !o.impliedDirs) {
      // -R --no-implied-dirs: implied parents (TOP_DIR|NO_CONTENT_DIR) are neither made nor
      // itemized; a missing parent of an entry is created silently (make_path).
      if (this.isImpliedDirSkipped(e)) return;
      const parent = dirOf(dest);
      if (!o.dryRun && parent !== '' && parent !== this.s.places.baseDir && !this.s.lstatQuiet(parent)) this.s.fs.mkdirp(parent, 0o777);
    }
    if (isDir(e)) {
      if (!this.s.inc) {
        await this.processDirectory(e, e.ndx, list);
      } else if (e.name === '.' && !list.parent) {
        // The transfer root of the first list: its children are this very list.
        await this.processDirectory(e, list.ndxStart - 1, list);
      } else {
        // Created now so its children can land; fully handled when its own list arrives.
        await this.ensureDir(e, dest, st);
        this.dirFixups.push(e);
      }
      return;
    }
    if (isSymlink(e)) return this.generateSymlink(e, dest, st);
    if (isDevice(e) || isSpecial(e)) return this.generateSpecial(e, dest, st);
    if (isRegular(e)) return this.x.files.generate(e, list, dest, st);
  }

  /**
   * --delete-missing-args: a mode-0 entry names a source arg that is gone; its counterpart here
   * is deleted (a non-empty directory only with --delete/--force).
   */
  private async missingArg(e: FileEntry, dest: string, st: EntryStat | null): Promise<void> {
    const o = this.s.opts;
    if (!st || !o.deleteMissingArgs) return;
    const name = this.s.fnameOf(e);
    if (!o.dryRun && st.type === 'dir' && !(o.deleteMode || o.force) && this.s.sandbox.readdir(dest).length > 0) {
      sendInfo(this.s.ctx, `cannot delete non-empty directory: ${name}\n`);
      return;
    }
    await this.x.deleter.item(dest, name, st);
  }

  /** --existing / --ignore-existing come first, for every type (recv_generator). */
  private skippedExisting(e: FileEntry, st: EntryStat | null): boolean {
    const o = this.s.opts;
    if (o.existing && !st) {
      // Below a directory that --existing did not create, everything is skipped silently (skip_dir).
      if (this.existingSkipped.size > 0) {
        for (let d = dirOf(e.name); d !== ''; d = dirOf(d)) if (this.existingSkipped.has(d)) return true;
      }
      if (isDir(e)) this.existingSkipped.add(e.name);
      if (this.s.infoName >= 2) sendInfo(this.s.ctx, `not creating new ${isDir(e) ? 'directory' : 'file'} "${this.s.fnameOf(e)}"\n`);
      return true;
    }
    if (o.ignoreExisting && st && (!isDir(e) || st.type !== 'dir')) {
      if (this.s.infoName >= 2 && !(isDir(e) && this.s.inc && e.name !== '.')) sendInfo(this.s.ctx, `${this.s.fnameOf(e)} exists\n`);
      return true;
    }
    return false;
  }

  /**
   * An entry of a directory this session made: nothing can be there yet, unless this session put
   * it there itself (backups, partial files and temp files can go into other directories).
   */
  private knownAbsent(e: FileEntry): boolean {
    const p = this.s.places;
    if (e.name === '.' || this.s.opts.backup || p.partialDir !== undefined || p.tempDirRel !== undefined) return false;
    return this.madeDirs.has(dirOf(e.name));
  }

  /**
   * A directory entry meets a destination symlink: with -K (generator.c stats it through when
   * the sender has a directory), or at a root of `/` for an implied parent of
   * -R --no-implied-dirs (rsync writes its children through the link), a trusted link to a
   * directory inside the root is gone through from now on. Otherwise it is replaced as usual.
   */
  private throughDirLink(e: FileEntry, dest: string): boolean | 'refused' {
    const links = this.s.dirLinks;
    if (!this.s.opts.keepDirlinks && !(links.rootIsSlash && this.isImpliedDirSkipped(e))) return false;
    // As rsync: a refused link stays, and what would go below it fails (a symlink on the way).
    return links.enter(joinRel(this.s.places.destRel, e.name), dest, this.s.places.destRel);
  }

  /** -R --no-implied-dirs (protocol >= 30): an implied parent (FLAG_IMPLIED_DIR) is left alone. */
  private isImpliedDirSkipped(e: FileEntry): boolean {
    const both = XMIT.TOP_DIR | XMIT.NO_CONTENT_DIR;
    const o = this.s.opts;
    return o.relative && !o.impliedDirs && isDir(e) && this.s.protocol >= 30 && (e.xflags & both) === both;
  }

  /** A directory: create or fix it, itemize it (as `itemNdx`), and delete extraneous entries in it. */
  private async processDirectory(e: FileEntry, itemNdx: number, list: FileList): Promise<void> {
    if (this.isImpliedDirSkipped(e) || this.s.dirLinks.belowRefused(joinRel(this.s.places.destRel, e.name)) >= 0) return;
    const { attrs, deleter } = this.x;
    const dest = this.s.destOf(e);
    let st = this.s.sandbox.lstat(dest);
    if (this.s.opts.existing && !st && !this.newDirs.has(e.name)) return;
    if (this.s.opts.ignoreExisting && st && st.type !== 'dir') return;
    const wasThere = st !== null && st.type === 'dir' && !this.newDirs.has(e.name);
    if (!(await this.ensureDir(e, dest, st)) && !wasThere && !this.newDirs.has(e.name)) return; // could not make room
    const created = this.newDirs.has(e.name);
    if (created) st = null;
    if (!this.s.inc || e.name === '.') this.dirFixups.push(e);
    // Deletions first: the reference queues MSG_DELETED ahead of the buffered itemize record, so
    // the client prints "*deleting" lines before the directory's own line.
    if (deleter.enabled && deleter.isContentDir(e) && !created) await deleter.atDirectory(e, list);
    let statret = st ? 0 : -1;
    let cmpSt = st;
    let itemizing = true;
    if (!st && this.s.places.basisDirs.length > 0) {
      const j = this.x.basis.tryDestsNon(e, dest, itemNdx);
      if (j.kind === 'uptodate') {
        itemizing = false;
        statret = 1;
      } else if (j.kind === 'basis') {
        statret = 1;
        cmpSt = j.st;
      }
    }
    if (itemizing) {
      const base = statret !== 0 ? ITEM.LOCAL_CHANGE : 0;
      attrs.itemizeNdx(itemNdx, statret >= 0 && cmpSt ? attrs.itemAttrs(e, cmpSt, base) : base | ITEM.IS_NEW);
    }
    // Protocol < 29: the server names directories it changed (set_file_attrs() said "updated").
    if (this.s.protocol < 29 && this.s.infoName > 0) {
      const updated = created ? attrs.newDirAttrsDiffer(e) : st !== null && attrs.attrChanges(e, st, false) !== 0;
      if (updated) sendInfo(this.s.ctx, `${e.name}/\n`);
    }
  }

  /** Makes sure a directory exists; returns true when it had to be created (or a dry run pretends so). */
  private async ensureDir(e: FileEntry, dest: string, st: EntryStat | null): Promise<boolean> {
    if (st && st.type === 'dir') return false;
    if (this.newDirs.has(e.name)) return false;
    if (st && !(await this.x.deleter.makeRoom(e, dest, st, 'directory'))) return false;
    this.newDirs.add(e.name);
    if (!this.s.opts.dryRun && dest !== '') {
      this.s.fs.mkdir(dest, 0o700);
      this.madeDirs.add(e.name);
    }
    return true;
  }

  /** INFO NONREG (on at verbosity 0): an item of a type this side does not create. */
  private skipNonRegular(e: FileEntry): void {
    if (!this.s.opts.quiet) sendInfo(this.s.ctx, `skipping non-regular file "${this.s.fnameOf(e)}"\n`);
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
    if (st || this.s.places.basisDirs.length === 0) return { itemizing: true, cmpSt: sameTypeSt };
    const j = this.x.basis.tryDestsNon(e, dest);
    if (j.kind === 'unlinked') return { itemizing: false, cmpSt: sameTypeSt };
    if (j.kind === 'uptodate') return this.s.places.altType === 'copy' ? { itemizing: false, cmpSt: sameTypeSt } : null;
    return { itemizing: true, cmpSt: j.kind === 'basis' ? j.st : sameTypeSt };
  }

  private async generateSymlink(e: FileEntry, dest: string, st: EntryStat | null): Promise<void> {
    const o = this.s.opts;
    const { attrs } = this.x;
    if (!o.links) return this.skipNonRegular(e);
    const target = this.x.basis.symlinkTarget(e);
    if (o.safeLinks && isUnsafeSymlink(e.linkTarget ?? '', e.name)) {
      // rsync prints this at --info=skip1, which -v implies
      if (o.verbose > 0 || o.info.some((w) => /^skip[1-9]?$/i.test(w))) {
        sendInfo(this.s.ctx, `ignoring unsafe symlink "${e.name}" -> "${e.linkTarget ?? ''}"\n`);
      }
      return;
    }
    if (st && st.type === 'symlink' && this.s.sandbox.readlink(dest) === target) {
      const changes = attrs.updateNeeded(e, st, true);
      if (changes && !o.dryRun) attrs.applyAttrs(dest, e, true, undefined, st);
      attrs.itemize(e, attrs.itemAttrs(e, st, 0));
      attrs.reportAttrs(this.s.fnameOf(e), changes !== 0);
      if (o.removeSourceFiles) this.s.sendSuccess(e.ndx);
      return;
    }
    const alt = this.altDestForNonRegular(e, dest, st, st && st.type === 'symlink' ? st : null);
    if (!alt) return;
    if (!o.dryRun) {
      if (!(await this.atomicCreate(e, dest, st, (tmp, purpose) => this.s.fs.symlink(target, tmp, purpose)))) return;
      attrs.applyAttrs(dest, e, true);
    }
    // As rsync: anything but a symlink in the way counts as absent (itemized as new).
    if (alt.itemizing) attrs.itemize(e, attrs.itemAttrs(e, alt.cmpSt, ITEM.LOCAL_CHANGE | ITEM.REPORT_CHANGE));
    if (this.s.protocol < 29 && this.s.infoName > 0 && alt.itemizing) sendInfo(this.s.ctx, `${e.name} -> ${e.linkTarget ?? ''}\n`);
    if (o.removeSourceFiles) this.s.sendSuccess(e.ndx);
  }

  private async generateSpecial(e: FileEntry, dest: string, st: EntryStat | null): Promise<void> {
    const o = this.s.opts;
    const { attrs } = this.x;
    const device = isDevice(e);
    if (device ? !o.devices : !o.specials) return this.skipNonRegular(e);
    if (!this.s.ctx.grant.limits.allowDevices || (device && !this.s.isRoot)) {
      this.s.ctx.log.info({ name: printable(e.name) }, 'skipping device/special (not granted)');
      return this.skipNonRegular(e);
    }
    // generator.c: -H links a device or special to its group's first member (hlink.c).
    if (o.hardLinks && e.hlinkGroup !== undefined && (await this.x.hardLinks.linksSpecial(e))) return;
    const sameType = st !== null && modeType(st.mode) === modeType(e.mode);
    if (sameType && (!device || st!.rdev === makedev(e.rdevMajor, e.rdevMinor))) {
      const changes = attrs.updateNeeded(e, st!, false);
      if (changes && !o.dryRun) attrs.applyAttrs(dest, e, false, undefined, st!);
      attrs.itemize(e, attrs.itemAttrs(e, st, 0));
      attrs.reportAttrs(this.s.fnameOf(e), changes !== 0);
      return;
    }
    const alt = this.altDestForNonRegular(e, dest, st, sameType ? st : null);
    if (!alt) return;
    if (!o.dryRun) {
      const rdev = device ? makedev(e.rdevMajor, e.rdevMinor) : null;
      const made = await this.atomicCreate(e, dest, st, (tmp, purpose) =>
        this.s.fs.mknod(tmp, rdev === null ? e.mode & 0o7777 : e.mode, rdev, purpose),
      );
      if (!made) return;
      attrs.applyAttrs(dest, e, false);
    }
    if (alt.itemizing) attrs.itemize(e, attrs.itemAttrs(e, alt.cmpSt, ITEM.LOCAL_CHANGE | ITEM.REPORT_CHANGE));
    if (this.s.protocol < 29 && this.s.infoName > 0 && alt.itemizing) sendInfo(this.s.ctx, `${e.name}\n`);
  }

  /**
   * generator.c atomic_create(): a replaced item is backed up (-b) or deleted (a directory in the
   * way only when empty, or with --delete/--force), then the new one is made under a temp name
   * and renamed into place.
   */
  private async atomicCreate(e: FileEntry, dest: string, st: EntryStat | null, create: (rel: string, purpose: 'entry' | 'temp') => void): Promise<boolean> {
    if (st && st.type === 'dir') {
      if (!(await this.x.deleter.makeRoom(e, dest, st, isSymlink(e) ? 'symlink' : isDevice(e) ? 'device file' : 'special file'))) return false;
      create(dest, 'entry');
      return true;
    }
    if (st && this.s.opts.backup && (await this.x.backups.make(dest, false)) === 'failed') return false;
    const tmp = this.x.temps.nameBeside(dest);
    create(tmp, 'temp');
    try {
      this.s.fs.rename(tmp, dest);
    } catch (err) {
      this.s.fs.unlink(tmp, 'temp');
      throw err;
    }
    return true;
  }
}
