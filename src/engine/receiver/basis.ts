/**
 * Where a file's data comes from (generator.c try_dests_reg() / try_dests_non(), the fuzzy
 * search, quick_check_ok()): the destination itself, an alt-dest dir (--compare-dest,
 * --copy-dest, --link-dest), a fuzzy match (-y), or nothing.
 */
import { createFileListHasher } from '../../protocol/checksum.js';
import { isDevice, isDir, isSymlink, type FileEntry } from '../../protocol/flist/entry.js';
import { mungeSymlink, SandboxError, type EntryStat } from '../../sandbox/sandbox.js';
import { ITEM } from '../../protocol/itemize.js';
import { sendInfo } from '../messages.js';
import { baseOf, dirOf, joinRel } from '../relpath.js';
import { printable } from '../../printable.js';
import { ITEM_MATCHED, type Attributes } from './attrs.js';
import { compareNames, findFuzzy, type FuzzyEntry } from './basis-dirs.js';
import { FNAMECMP } from '../../protocol/itemize.js';
import { chunksOf } from '../file-hash.js';
import { copyFd, discardTemp, READ_CHUNK, readChunks } from './file-io.js';
import { describe, makedev, modeType, type ReceiverState } from './state.js';
import type { TempFiles } from './tempfiles.js';

/** What the alt-dest dirs hold for an entry. */
export type AltDestMatch =
  /** Nothing usable. */
  | { kind: 'none' }
  /** An identical item: linked, copied or merely compared; nothing more to do for it. */
  | { kind: 'uptodate' }
  /** An identical non-regular item that could not be linked (try_dests_non()'s -3). */
  | { kind: 'unlinked' }
  /** A similar item: compare with it, or (regular files) use it as the basis, fnamecmp_type = index. */
  | { kind: 'basis'; index: number; rel: string; st: EntryStat };

/** The fuzzy basis of a file: its root-relative path, stat and fnamecmp_type. */
export interface FuzzyBasis {
  rel: string;
  st: EntryStat;
  type: number;
  xname: string;
}

export class BasisFinder {
  /** The generator's reads (basis sums, --checksum sums): one file at a time. */
  private readonly readBuffer = Buffer.allocUnsafe(READ_CHUNK);
  private fuzzyDir: string | null = null;
  private fuzzyLists: Array<FuzzyEntry[] | null> = [];

  constructor(
    private readonly s: ReceiverState,
    private readonly attrs: Attributes,
    private readonly temps: TempFiles,
  ) {}

  /** A file's data in order, as views of the generator's read buffer (each valid until the next). */
  chunksOf(rel: string): Generator<Buffer> {
    return readChunks(this.s.sandbox, rel, this.readBuffer);
  }

  /** The first `length` bytes of an open file (fewer if it is shorter), as chunksOf() gives them. */
  chunksOfFd(fd: number, length: number): Generator<Buffer> {
    return chunksOf(this.s.sandbox, fd, 0, length, this.readBuffer);
  }

  /** quick_check_ok() for a regular file. */
  quickCheckOk(e: FileEntry, rel: string, st: EntryStat): boolean {
    const o = this.s.opts;
    if (st.type !== 'file' || st.size !== e.size) return false;
    if (o.checksum) return e.checksum !== undefined && this.fileChecksum(rel).equals(e.checksum);
    if (o.sizeOnly) return true;
    if (o.ignoreTimes) return false;
    return this.attrs.sameMtime(e, st);
  }

  symlinkTarget(e: FileEntry): string {
    const target = e.linkTarget ?? '';
    return this.s.opts.mungeLinks ? mungeSymlink(target) : target;
  }

  /**
   * generator.c try_dests_non(): an alt-dest dir may hold this symlink/device/special/directory.
   * `itemNdx`: the index to itemize it as (a directory of a later incremental-recursion list is
   * handled with that list, as its ndx_start - 1).
   */
  tryDestsNon(e: FileEntry, dest: string, itemNdx = e.ndx): AltDestMatch {
    const { basisDirs, altType } = this.s.places;
    const name = this.s.fnameOf(e);
    const wantType = isDir(e) ? 'dir' : isSymlink(e) ? 'symlink' : null;
    let best = -1;
    let level = 0;
    let bestSt: EntryStat | null = null;
    for (let j = 0; j < basisDirs.length; j++) {
      const cmp = joinRel(basisDirs[j]!, name);
      const s = this.s.lstatQuiet(cmp);
      if (!s) continue;
      if (wantType ? s.type !== wantType : modeType(s.mode) !== modeType(e.mode)) continue;
      if (level < 1) [level, best, bestSt] = [1, j, s];
      let same = true;
      if (isSymlink(e)) same = this.s.sandbox.readlink(cmp) === this.symlinkTarget(e);
      else if (isDevice(e)) same = s.rdev === makedev(e.rdevMajor, e.rdevMinor);
      if (!same) continue;
      if (level < 2) [level, best, bestSt] = [2, j, s];
      if (this.attrs.unchangedAttrs(e, s)) {
        [level, best, bestSt] = [3, j, s];
        break;
      }
    }
    if (!level) return { kind: 'none' };
    const sx = bestSt!;
    if (level < 3) return { kind: 'basis', index: best, rel: joinRel(basisDirs[best]!, name), st: sx };
    let cannot = false;
    if (altType === 'link' && !isDir(e)) {
      if (!this.s.opts.dryRun) {
        try {
          this.s.fs.link(joinRel(basisDirs[best]!, name), dest, 'copy');
        } catch {
          cannot = true;
          level = 2;
        }
      }
    } else {
      level = 2;
    }
    const { hasI, infoName } = this.s;
    if (hasI > 0 && (infoName >= 2 || hasI > 1)) {
      const chg = altType === 'compare' && !isDir(e) ? 0 : ITEM.LOCAL_CHANGE + (level === 3 ? ITEM.XNAME_FOLLOWS : 0);
      const lp = level === 3 ? '' : undefined;
      this.attrs.itemizeNdx(itemNdx, this.attrs.itemAttrs(e, sx, chg | ITEM_MATCHED, lp), lp);
    }
    if (infoName >= 2 && this.attrs.maybeAttrsReport) sendInfo(this.s.ctx, `${name}${isDir(e) ? '/' : ''} is uptodate\n`);
    return cannot ? { kind: 'unlinked' } : { kind: 'uptodate' };
  }

  /**
   * generator.c try_dests_reg(): an unchanged copy in an alt-dest dir is skipped (compare),
   * hard-linked (link) or copied (copy); a changed one becomes the basis (fnamecmp_type = index).
   * With `realSt` (the destination exists) only an exact match counts.
   */
  tryDestsReg(e: FileEntry, dest: string, realSt: EntryStat | null): AltDestMatch {
    const found = this.bestRegular(e);
    if (!found) return { kind: 'none' };
    const { level, index, rel: cmp, st: sx } = found;
    const altType = this.s.places.altType;
    let tryCopy = false;
    if (level === 3 && altType !== 'copy') {
      if (realSt) {
        if (altType === 'link' && realSt.dev === sx.dev && realSt.ino === sx.ino) return { kind: 'none' };
        if (!this.s.opts.dryRun && !this.unlinkForAltDest(dest)) return { kind: 'none' };
      }
      if (altType === 'link') tryCopy = !this.linkAltDest(e, cmp, dest, sx);
      else this.attrs.itemize(e, this.attrs.itemAttrs(e, sx, 0));
      if (!tryCopy) {
        if (this.s.infoName >= 2 && this.attrs.maybeAttrsReport) sendInfo(this.s.ctx, `${this.s.fnameOf(e)} is uptodate\n`);
        if (this.s.opts.removeSourceFiles) this.s.sendSuccess(e.ndx);
        return { kind: 'uptodate' };
      }
    }
    if (!tryCopy && realSt) return { kind: 'none' };
    if (tryCopy || level >= 2) {
      if (!this.s.opts.dryRun && !this.copyAltdestFile(cmp, dest, e)) return { kind: 'none' };
      this.attrs.itemize(e, this.attrs.itemAttrs(e, sx, ITEM.LOCAL_CHANGE));
      const { infoName, protocol } = this.s;
      if (this.attrs.maybeAttrsReport && ((protocol < 29 && infoName >= 1 && level === 2) || (infoName >= 2 && level === 3))) {
        sendInfo(this.s.ctx, `${this.s.fnameOf(e)}${level === 3 ? ' is uptodate' : ''}\n`);
      }
      if (this.s.opts.removeSourceFiles) this.s.sendSuccess(e.ndx);
      return { kind: 'uptodate' };
    }
    return { kind: 'basis', index, rel: cmp, st: sx };
  }

  /** -y: a similar file in the file's dir (or, -yy, the alt-dest dirs) as the basis; null when none. */
  fuzzy(e: FileEntry, dest: string): FuzzyBasis | null {
    const name = this.s.fnameOf(e);
    const lists = this.fuzzyListsFor(e, dest);
    const hit = findFuzzy(baseOf(name), e.size, e.mtime, lists, (a, b) => this.attrs.sameTime(a, 0, b, 0));
    if (!hit) return null;
    const dir = hit.dir === 0 ? dirOf(dest) : joinRel(this.s.places.basisDirs[hit.dir - 1]!, dirOf(name));
    const rel = joinRel(dir, hit.entry.name);
    const st = this.s.lstatQuiet(rel);
    if (!st || st.type !== 'file') return null;
    return { rel, st, type: FNAMECMP.FUZZY + hit.dir, xname: hit.entry.name };
  }

  /** A file that is being transferred is no fuzzy basis for later ones. */
  markChanging(dest: string): void {
    if (this.s.places.fuzzyLevels === 0 || this.fuzzyDir !== dirOf(dest)) return;
    const own = this.fuzzyLists[0]?.find((f) => f.name === baseOf(dest));
    if (own) own.sent = true;
  }

  /** The best alt-dest candidate: 1 = a regular file, 2 = quick-check equal, 3 = attributes too. */
  private bestRegular(e: FileEntry): { level: number; index: number; rel: string; st: EntryStat } | null {
    const basisDirs = this.s.places.basisDirs;
    const name = this.s.fnameOf(e);
    let best: { level: number; index: number; rel: string; st: EntryStat } | null = null;
    for (let j = 0; j < basisDirs.length; j++) {
      const cmp = joinRel(basisDirs[j]!, name);
      const s = this.s.lstatQuiet(cmp);
      if (!s || s.type !== 'file') continue;
      if (!best) best = { level: 1, index: j, rel: cmp, st: s };
      if (!this.quickCheckOk(e, cmp, s)) continue;
      if (best.level === 1) best = { level: 2, index: j, rel: cmp, st: s };
      if (this.attrs.unchangedAttrs(e, s)) return { level: 3, index: j, rel: cmp, st: s };
    }
    return best;
  }

  private unlinkForAltDest(dest: string): boolean {
    try {
      this.s.fs.unlink(dest, 'copy');
      return true;
    } catch {
      return false;
    }
  }

  /** --link-dest: the destination becomes a hard link of the alt-dest file; false when that failed. */
  private linkAltDest(e: FileEntry, cmp: string, dest: string, sx: EntryStat): boolean {
    if (!this.s.opts.dryRun) {
      try {
        this.s.fs.link(cmp, dest, 'copy');
      } catch (err) {
        if (this.s.infoName > 0) sendInfo(this.s.ctx, `link ${this.s.fnameOf(e)} => ${printable(cmp)} failed: ${describe(err)}\n`);
        return false;
      }
    }
    if (!this.attrs.maybeAttrsReport && (this.s.infoName >= 2 || this.s.hasI > 1)) {
      this.attrs.itemize(e, this.attrs.itemAttrs(e, sx, ITEM.LOCAL_CHANGE | ITEM.XNAME_FOLLOWS, ''), '');
    }
    return true;
  }

  /** generator.c copy_altdest_file(): a local copy through a temp file, attributes from the list. */
  private copyAltdestFile(src: string, dest: string, e: FileEntry): boolean {
    const { sandbox, fs } = this.s;
    let tmp: { fd: number; rel: string } | null = null;
    let inFd = -1;
    try {
      const mode = this.s.opts.perms ? e.mode : this.attrs.destMode(e.mode, 0, false, true);
      tmp = this.temps.create(dest, mode);
      const { fd, stat } = sandbox.openRead(src);
      inFd = fd;
      copyFd(sandbox, fs, inFd, tmp.fd, stat.size);
      fs.fsetAttrs(tmp.fd, { ...this.attrs.attrsFor(e, false, true), mode: mode & 0o7777 });
      fs.close(tmp.fd);
      tmp.fd = -1;
      fs.rename(tmp.rel, dest, 'copy');
      tmp = null;
      return true;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      if (this.s.infoName > 0) sendInfo(this.s.ctx, `copy_file ${printable(src)} => ${printable(dest)}: ${err.message}\n`);
      return false;
    } finally {
      if (inFd >= 0) sandbox.close(inFd);
      if (tmp) discardTemp(fs, tmp);
    }
  }

  private fileChecksum(rel: string): Buffer {
    const h = createFileListHasher(this.s.ctx.fileSum);
    for (const chunk of this.chunksOf(rel)) h.update(chunk);
    return h.digest();
  }

  /** The fuzzy dirlists (-y) of the file's directory: its own dir, then (-yy) the alt-dest dirs. */
  private fuzzyListsFor(e: FileEntry, dest: string): Array<FuzzyEntry[] | null> {
    const dir = dirOf(dest);
    if (this.fuzzyDir === dir) return this.fuzzyLists;
    this.fuzzyDir = dir;
    const dn = dirOf(this.s.fnameOf(e));
    const dirs = [dir];
    for (let i = 1; i < this.s.places.fuzzyLevels; i++) dirs.push(joinRel(this.s.places.basisDirs[i - 1]!, dn));
    this.fuzzyLists = dirs.map((d) => this.fuzzyList(d));
    return this.fuzzyLists;
  }

  private fuzzyList(d: string): FuzzyEntry[] | null {
    let names: string[];
    try {
      names = this.s.sandbox.readdir(d);
    } catch {
      return null;
    }
    const list: FuzzyEntry[] = [];
    for (const name of names.sort(compareNames)) {
      const s = this.s.lstatQuiet(joinRel(d, name));
      if (s && s.type === 'file') list.push({ name, size: s.size, mtime: s.mtimeSec, sent: false });
    }
    return list.length > 0 ? list : null;
  }
}
