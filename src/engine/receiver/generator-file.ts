/**
 * generator.c recv_generator() for a regular file: the skip options, the quick check, the basis
 * (the file itself, an alt-dest or fuzzy match, a partial file), the block sums of the basis and
 * the request that names the file to the sender; and the redo of a file that failed verification.
 */
import { digestLength } from '../../protocol/checksum.js';
import type { FileEntry } from '../../protocol/flist/entry.js';
import { chooseSumHead, writeBlockSumBatch, writeSumHead, type SumHead } from '../../protocol/sumhead.js';
import { SandboxError, type EntryStat } from '../../sandbox/sandbox.js';
import { BlockSumsBuilder } from '../delta.js';
import { ITEM } from '../../protocol/itemize.js';
import { sendInfo, sendTransferError } from '../messages.js';
import { yieldToLoop } from '../notifier.js';
import { printable } from '../../printable.js';
import type { Attributes } from './attrs.js';
import type { Backups } from './backup.js';
import type { BasisFinder } from './basis.js';
import { FNAMECMP } from '../../protocol/itemize.js';
import type { Deleter } from './delete.js';
import type { HardLinks } from './hardlinks.js';
import type { FileList, ReceiverState } from './state.js';
import type { TempFiles } from './tempfiles.js';

/** Block sums of a large basis give the event loop a turn after this many bytes. */
const SUMS_YIELD_BYTES = 8 * 1024 * 1024;

/** A transfer the generator requested and the receiving half has not completed yet. */
export interface Pending {
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

/** The basis a transfer is requested with. */
interface Basis {
  rel: string | null;
  st: EntryStat | null;
  /** fnamecmp_type */
  type: number;
  xname?: string;
  partialRel?: string;
  mode: number;
  destMissing: boolean;
}

/** What a request sends for a basis: the sum head, and whether block sums follow it. */
interface SumPlan {
  head: SumHead;
  /** The basis is used for a delta (else the head is empty and the file comes whole). */
  useBasis: boolean;
  withSums: boolean;
}

/** Requested transfers by file index (the generator adds, the receiving half completes). */
export class Requests {
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly s: ReceiverState) {}

  add(p: Pending): void {
    this.pending.set(p.entry.ndx, p);
    p.list.pending++;
  }

  get(ndx: number): Pending | undefined {
    return this.pending.get(ndx);
  }

  has(ndx: number): boolean {
    return this.pending.has(ndx);
  }

  /** The transfer of `ndx` is over (received, or the sender said MSG_NO_SEND). */
  complete(ndx: number): void {
    const p = this.pending.get(ndx);
    if (!p) return;
    this.pending.delete(ndx);
    p.list.pending--;
    this.s.progress.notify();
  }
}

export class FileGenerator {
  constructor(
    private readonly s: ReceiverState,
    private readonly attrs: Attributes,
    private readonly basis: BasisFinder,
    private readonly backups: Backups,
    private readonly deleter: Deleter,
    private readonly hardLinks: HardLinks,
    private readonly temps: TempFiles,
    private readonly requests: Requests,
  ) {}

  async generate(e: FileEntry, list: FileList, dest: string, st: EntryStat | null): Promise<void> {
    const o = this.s.opts;
    if (this.skipped(e, st)) return;
    if (o.hardLinks && e.hlinkGroup !== undefined && this.hardLinks.follows(e, list)) return;
    if (st && st.type !== 'file') {
      if (!(await this.deleter.makeRoom(e, dest, st, 'regular file'))) return;
      st = null;
    }
    // The mode the file gets without -p (the generator's dest_mode() against the destination).
    const mode = this.attrs.fileMode(e, st);
    let basis: Basis = { rel: st ? dest : null, st, type: FNAMECMP.FNAME, mode, destMissing: st === null };
    let realSt = st;
    if (this.s.places.basisDirs.length > 0 && (!st || this.s.places.altType !== 'copy')) {
      const r = this.basis.tryDestsReg(e, dest, st);
      if (r.kind === 'uptodate') return;
      if (r.kind === 'basis') {
        basis = { ...basis, rel: r.rel, st: r.st, type: r.index };
        realSt = r.st;
      }
    }
    const partial = this.partialFile(dest);
    basis.partialRel = partial?.rel;
    // A partial file with nothing else to compare against is used right away (prepare_to_open).
    if (!(partial?.st && !basis.rel)) {
      if (!basis.rel && this.s.places.fuzzyLevels > 0) {
        const f = this.basis.fuzzy(e, dest);
        if (f) basis = { ...basis, rel: f.rel, st: f.st, type: f.type, xname: f.xname };
      }
      if (basis.rel && this.upToDate(e, dest, st, basis, partial)) return;
    }
    if (partial?.st) basis = { ...basis, rel: partial.rel, st: partial.st, type: FNAMECMP.PARTIAL_DIR };
    let iflags: number = ITEM.TRANSFER;
    if (o.checksum) iflags |= ITEM.REPORT_CHANGE;
    if (basis.type !== FNAMECMP.FNAME) iflags |= ITEM.BASIS_TYPE_FOLLOWS;
    if (basis.xname !== undefined) iflags |= ITEM.XNAME_FOLLOWS;
    iflags = this.attrs.itemAttrs(e, realSt, iflags);
    this.basis.markChanging(dest);
    // --inplace --backup: the old data is copied to the backup, which then serves as the basis.
    if (o.inplace && this.backups.active(false) && basis.type === FNAMECMP.FNAME && basis.rel && !o.dryRun) {
      const backup = await this.backups.copyToBackup(dest);
      if (backup === false) return;
      if (backup !== null && o.wholeFile !== true) {
        basis = { ...basis, rel: backup, type: FNAMECMP.BACKUP };
        iflags |= ITEM.BASIS_TYPE_FOLLOWS;
      }
    }
    await this.request(list, e, dest, basis, iflags, false, this.sumPlan(basis, false));
  }

  /** A redo (failed verification): all skip options off, the partial file or the file as basis. */
  async requestRedo(list: FileList, e: FileEntry): Promise<void> {
    const dest = this.s.destOf(e);
    const st = this.s.lstatQuiet(dest);
    const isFile = st !== null && st.type === 'file';
    const mode = this.s.opts.perms ? e.mode : this.attrs.destMode(e.mode, st ? st.mode : 0, isFile, true);
    let basis: Basis = { rel: isFile ? dest : null, st, type: FNAMECMP.FNAME, mode, destMissing: st === null };
    let iflags: number = ITEM.TRANSFER;
    const partialDir = this.s.places.partialDir;
    if (partialDir) {
      const partialRel = partialDir.pathFor(dest);
      const pst = this.s.lstatQuiet(partialRel);
      basis.partialRel = partialRel;
      if (pst && pst.type === 'file') {
        basis = { ...basis, rel: partialRel, st: pst, type: FNAMECMP.PARTIAL_DIR };
        iflags |= ITEM.BASIS_TYPE_FOLLOWS;
      }
    }
    await this.request(list, e, dest, basis, this.attrs.itemAttrs(e, isFile ? st : null, iflags), true, this.sumPlan(basis, true));
  }

  /** --max-size, --min-size, -u, and the grant's maximum file size. */
  private skipped(e: FileEntry, st: EntryStat | null): boolean {
    const o = this.s.opts;
    const name = this.s.fnameOf(e);
    if (o.maxSize !== undefined && e.size > o.maxSize) return this.skipInfo(`${name} is over max-size`);
    if (o.minSize !== undefined && e.size < o.minSize) return this.skipInfo(`${name} is under min-size`);
    if (o.update && st && st.type === 'file' && e.mtime - st.mtimeSec < o.modifyWindow) return this.skipInfo(`${name} is newer`);
    const limit = this.s.ctx.grant.limits.maxFileSize;
    if (limit !== undefined && e.size > limit) {
      sendTransferError(this.s.ctx, `rrsyncd: ${printable(e.name)} is larger than the allowed maximum file size (${limit} bytes)`);
      return true;
    }
    return false;
  }

  private skipInfo(text: string): true {
    if (this.s.info.gte('SKIP')) sendInfo(this.s.ctx, `${text}\n`);
    return true;
  }

  /** This file's --partial-dir path, and its stat when a partial file is there. */
  private partialFile(dest: string): { rel: string; st: EntryStat | null } | undefined {
    const pd = this.s.places.partialDir;
    if (!pd) return undefined;
    const rel = pd.pathFor(dest);
    const pst = this.s.lstatQuiet(rel);
    return { rel, st: pst && pst.type === 'file' ? pst : null };
  }

  /**
   * The destination passes the quick check: only its attributes are brought up to date (true).
   * Also true for --append when the basis is already as long as the file.
   */
  private upToDate(e: FileEntry, dest: string, st: EntryStat | null, basis: Basis, partial: { rel: string; st: EntryStat | null } | undefined): boolean {
    const o = this.s.opts;
    if (basis.type === FNAMECMP.FNAME && this.basis.quickCheckOk(e, dest, st!)) {
      if (partial?.st) this.temps.removePartial(partial.rel);
      const changes = this.attrs.updateNeeded(e, st!, false);
      if (changes && !o.dryRun) this.attrs.applyAttrs(dest, e, false, basis.mode, st!);
      this.attrs.itemize(e, this.attrs.itemAttrs(e, st, 0));
      this.attrs.reportAttrs(this.s.fnameOf(e), changes !== 0);
      if (o.removeSourceFiles) this.s.sendSuccess(e.ndx);
      return true;
    }
    return o.append > 0 && basis.st!.size >= e.size;
  }

  /** The sum head a request sends for a basis, and whether block sums go with it. */
  private sumPlan(basis: Basis, redo: boolean): SumPlan {
    const o = this.s.opts;
    const st = basis.rel ? basis.st : null;
    const useBasis = !!st && st.size > 0 && o.wholeFile !== true && this.s.ctx.xferSum.name !== 'none';
    if (!useBasis || o.dryRun) return { head: { count: 0, blength: 0, s2length: 0, remainder: 0 }, useBasis, withSums: false };
    const digestLen = digestLength(this.s.ctx.xferSum.name);
    const head = chooseSumHead(st.size, this.s.protocol, digestLen, { blockSize: o.blockSize, redo });
    return { head, useBasis, withSums: !(o.append > 0 && !redo) };
  }

  /**
   * generator.c generate_and_send_sums(): each block's sums go out as the basis is read, a batch
   * at a time, waiting while the client does not read them, with a turn of the event loop every
   * few MiB; memory stays flat whatever the basis size. The head announced `count` blocks of the
   * size stat'ed before: a basis that shrank since reads as zeros, one that grew is read no
   * further and a read error ends the reading (rsync's map_ptr), so exactly `count` sums follow.
   */
  private async sendSums(fd: number, head: SumHead, name: string): Promise<void> {
    const w = this.s.ctx.writer;
    const builder = new BlockSumsBuilder(head, this.s.ctx.xferSum, (sum1, sum2) => writeBlockSumBatch(w, sum1, sum2, head.s2length));
    const length = (head.count - (head.remainder ? 1 : 0)) * head.blength + head.remainder;
    // A batch's worth of basis at a time, each followed by the writer's flush-and-wait: what is
    // pending stays bounded whatever the block size.
    const step = Math.max(1, builder.batchBytes);
    let sinceYield = 0;
    try {
      for (const chunk of this.basis.chunksOfFd(fd, length)) {
        for (let p = 0; p < chunk.length; p += step) {
          builder.push(chunk.subarray(p, p + step));
          await this.s.writable();
        }
        sinceYield += chunk.length;
        if (sinceYield >= SUMS_YIELD_BYTES) {
          sinceYield = 0;
          await yieldToLoop();
          this.s.checkCancelled();
        }
      }
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      this.s.ctx.log.warn({ name, err: err.message }, 'basis read failed: the rest of its block sums are of zeros');
    }
    builder.finish();
  }

  /**
   * The request for a file: ndx, iflags (basis type, fuzzy name), the sum head and the block sums
   * of the basis when the plan has them. What the sums hold is charged to the session's budget
   * and the basis opened before anything is written: a refusal leaves no half-written request.
   */
  private async request(list: FileList, e: FileEntry, dest: string, basis: Basis, iflags: number, redo: boolean, plan: SumPlan): Promise<void> {
    const { sandbox, ctx } = this.s;
    const name = plan.withSums ? printable(this.s.fnameOf(e)) : '';
    const held = plan.withSums ? BlockSumsBuilder.bytesFor(plan.head) : 0;
    if (held > 0) ctx.budget.charge(held, `the block sums of ${name} (${plan.head.count} blocks)`);
    let fd: number | null = null;
    try {
      if (plan.withSums) fd = sandbox.openRead(basis.rel!).fd;
      const w = ctx.writer;
      w.ndx(e.ndx);
      if (this.s.protocol >= 29) {
        w.u16(iflags);
        if (iflags & ITEM.BASIS_TYPE_FOLLOWS) w.u8(basis.type);
        if (iflags & ITEM.XNAME_FOLLOWS) w.vstring(Buffer.from(basis.xname ?? '', 'latin1'));
      }
      this.requests.add({
        list,
        entry: e,
        dest,
        head: plan.head,
        hasBasis: plan.useBasis,
        redo,
        iflags,
        basisType: basis.type,
        basisRel: basis.rel,
        xname: basis.xname,
        partialRel: basis.partialRel,
        mode: basis.mode,
        destMissing: basis.destMissing,
      });
      if (this.s.opts.dryRun) return;
      writeSumHead(w, plan.head);
      if (fd !== null) await this.sendSums(fd, plan.head, name);
    } finally {
      if (fd !== null) sandbox.close(fd);
      ctx.budget.release(held);
    }
  }
}
