/**
 * receiver.c recv_files() / receive_data() / finish_transfer(): the receiving half. It reads the
 * sender's records (a file's sum head, tokens and whole-file checksum; the NDX_DONEs of the
 * phases; incremental-recursion lists), rebuilds each file from the basis into a temp file (or in
 * place), verifies it and puts it into place, or into the partial dir.
 */
import { createTransferHasher, digestLength } from '../../protocol/checksum.js';
import { ProtocolError } from '../../protocol/errors.js';
import { NDX_DONE } from '../../protocol/ndx.js';
import { readSumHead, type SumHead } from '../../protocol/sumhead.js';
import type { TokenDecoder } from '../../protocol/token.js';
import { SandboxError, type EntryStat } from '../../sandbox/sandbox.js';
import { type Attrs } from '../../sandbox/attrs.js';
import { CF } from '../../protocol/compat.js';
import { FNAMECMP, ITEM, itemizeText } from '../../protocol/itemize.js';
import { sendTransferError, sendWarning } from '../messages.js';
import { baseOf, dirOf } from '../relpath.js';
import { printable } from '../../printable.js';
import type { Attributes } from './attrs.js';
import type { Backups } from './backup.js';
import { READ_CHUNK, unlinkQuiet } from './file-io.js';
import type { FileLists } from './flists.js';
import type { Pending, Requests } from './generator-file.js';
import { describe, type ReceiverState } from './state.js';
import type { TempFiles } from './tempfiles.js';
import { BASIS_WINDOW, BasisWindow, CoalescingWriter, WRITE_BUFFER } from './write-buffers.js';

/** A basis at least this large is closed on the thread pool (its blocks may be freed then). */
const BACKGROUND_CLOSE = 64 * 1024 * 1024;

/** One file being received: what it is read from and written to. */
interface Incoming {
  p: Pending;
  head: SumHead;
  /** --append (not on a redo): the sender sends only what follows the existing data. */
  append: boolean;
  basisFd: number;
  basisSt: EntryStat | null;
  basisType: number;
  outFd: number;
  /** The temp file's name (null: none, or unnamed until it gets one). */
  tempRel: string | null;
  /** The output is an unnamed (O_TMPFILE) file. */
  unnamed: boolean;
  /** The unnamed file was created with its final permissions. */
  modeSet: boolean;
  /** CF_INPLACE_PARTIAL_DIR: the partial-dir basis is updated in place, then moved into position. */
  oneInplace: boolean;
  mode: number;
  out: CoalescingWriter | null;
  /** Why this file fails (the stream is still consumed to its end). */
  failed: string | null;
  /** Literal data arrived (a --partial file is worth keeping). */
  gotLiteral: boolean;
  /** The request's item flags (the transfer log's %i). */
  iflags: number;
  /** This file's delta stream: bytes sent by the client, and copied from the basis. */
  literal: number;
  matched: number;
}

type Outcome = 'done' | 'delayed' | 'failed';

export class Receive {
  filesTransferred = 0;
  /** Delta-stream bytes: sent by the client (literal) and copied from the basis (matched). */
  literalBytes = 0;
  matchedBytes = 0;
  /** The fresh temp file being written, for --partial handling when the session dies mid-file. */
  private current: Incoming | null = null;
  private readonly writeBuffer = Buffer.allocUnsafe(WRITE_BUFFER);
  private readonly basisWindowBuffer = Buffer.allocUnsafe(BASIS_WINDOW);
  private blockBuffer = Buffer.alloc(0);

  constructor(
    private readonly s: ReceiverState,
    private readonly lists: FileLists,
    private readonly requests: Requests,
    private readonly attrs: Attributes,
    private readonly backups: Backups,
    private readonly temps: TempFiles,
    private readonly decoder: TokenDecoder,
  ) {}

  async run(): Promise<void> {
    const r = this.s.ctx.reader;
    for (;;) {
      this.s.checkCancelled();
      const ndx = await r.readNdx();
      if (ndx === NDX_DONE) {
        if (this.s.senderPhase > 0 || this.lists.echoed()) this.advancePhase();
        if (this.s.senderPhase > this.s.maxPhase) break;
        continue;
      }
      if (ndx < 0) {
        await this.lists.onNegativeNdx(ndx);
        continue;
      }
      await this.onFileRecord(ndx);
    }
    if (this.s.protocol >= 31) {
      // The sender's goodbye echo (E4) arrives after our G4.
      const ndx = await r.readNdx();
      if (ndx !== NDX_DONE) throw new ProtocolError(`expected goodbye, got ndx ${ndx}`);
      this.advancePhase();
    }
  }

  /**
   * cleanup.c on a fatal error mid-file: with --partial the data that arrived is kept under the
   * file's name (mtime 0, so it is not taken for complete), with --partial-dir in the partial dir;
   * otherwise the temp file goes.
   */
  async abandon(): Promise<void> {
    const t = this.current;
    if (!t) return;
    this.current = null;
    try {
      await this.keepOrDiscard(t);
    } catch {
      try {
        this.closeOutput(t);
        if (t.tempRel !== null) this.s.fs.unlink(t.tempRel, 'temp');
      } catch {
        // best effort
      }
    }
  }

  private advancePhase(): void {
    this.s.senderPhase++;
    this.s.progress.notify();
  }

  private async onFileRecord(ndx: number): Promise<void> {
    const r = this.s.ctx.reader;
    const protocol = this.s.protocol;
    if (!this.lists.listOf(ndx)) throw new ProtocolError(`Invalid file index: ${ndx}`);
    const iflags = protocol >= 29 ? await r.readU16() : ITEM.TRANSFER;
    const fnamecmpType = iflags & ITEM.BASIS_TYPE_FOLLOWS ? await r.readU8() : FNAMECMP.FNAME;
    const xname = iflags & ITEM.XNAME_FOLLOWS ? (await r.readVstring(4095)).toString('latin1') : undefined;
    if (!(iflags & ITEM.TRANSFER)) {
      // We never name a basis in a record without data (CVE-2024-12086).
      if (iflags & ITEM.BASIS_TYPE_FOLLOWS) throw new ProtocolError('rsync: received basis type we did not request');
      return;
    }
    const p = this.requests.get(ndx);
    if (!p) throw new ProtocolError(`got transfer request for file not requested: ${ndx}`);
    // The basis (and fuzzy name) must be exactly the one we asked for (CVE-2024-12086).
    if (protocol >= 29 && (fnamecmpType !== p.basisType || (p.basisType >= FNAMECMP.FUZZY && xname !== p.xname))) {
      throw new ProtocolError('rsync: received basis type we did not request');
    }
    if (!this.s.opts.dryRun) await this.receiveFile(p, iflags);
    this.requests.complete(ndx);
  }

  /** receive_data() and finish_transfer() for one file. */
  private async receiveFile(p: Pending, iflags: number): Promise<void> {
    const head = await readSumHead(this.s.ctx.reader);
    if (head.count !== p.head.count || head.blength !== p.head.blength || head.remainder !== p.head.remainder) {
      throw new ProtocolError(`sum head mismatch for ${printable(p.entry.name)}`);
    }
    const t: Incoming = {
      p,
      head,
      append: this.s.opts.append > 0 && !p.redo,
      basisFd: -1,
      basisSt: null,
      basisType: p.basisType,
      outFd: -1,
      tempRel: null,
      unnamed: false,
      modeSet: false,
      oneInplace: false,
      mode: p.mode,
      out: null,
      failed: null,
      gotLiteral: false,
      iflags,
      literal: 0,
      matched: 0,
    };
    let consumed = false;
    try {
      this.openBasis(t);
      t.oneInplace = (this.s.ctx.compatFlags & CF.INPLACE_PARTIAL_DIR) !== 0 && t.basisType === FNAMECMP.PARTIAL_DIR && t.basisFd >= 0;
      t.mode = this.s.opts.perms ? p.entry.mode : this.attrs.destMode(p.mode, t.basisSt ? t.basisSt.mode : 0, t.basisFd >= 0, true);
      if (!t.failed) this.openOutput(t);
      this.prepareWriter(t);
      const ok = await this.receiveData(t);
      consumed = true;
      if (t.failed) {
        sendTransferError(this.s.ctx, `rsync: [receiver] ${printable(p.entry.name)}: ${t.failed}`);
        return;
      }
      this.completeData(t);
      this.current = null;
      this.account(t, await this.finishTransfer(t, ok), ok);
    } catch (err) {
      if (consumed && err instanceof SandboxError) {
        // The record was read completely: a local failure only fails this file.
        sendTransferError(this.s.ctx, `rsync: [receiver] ${printable(p.entry.name)}: ${err.message}`);
        return;
      }
      // A fatal error mid-file (the client went away ...): keep what arrived when asked to.
      if (this.current === t) {
        await this.abandon();
        t.tempRel = null;
        t.outFd = -1;
      }
      throw err;
    } finally {
      this.release(t);
    }
  }

  /** The basis named in the request; an unusable partial basis falls back to the file itself. */
  private openBasis(t: Incoming): void {
    const p = t.p;
    if (p.basisRel === null) return;
    try {
      const f = this.s.sandbox.openRead(p.basisRel);
      t.basisFd = f.fd;
      t.basisSt = f.stat;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      if (p.basisType === FNAMECMP.PARTIAL_DIR) {
        t.basisType = FNAMECMP.FNAME;
        try {
          const f = this.s.sandbox.openRead(p.dest);
          t.basisFd = f.fd;
          t.basisSt = f.stat;
        } catch {
          t.basisFd = -1;
        }
      }
      if (t.basisFd < 0 && p.hasBasis) t.failed = `open basis failed: ${describe(err)}`;
    }
  }

  /** The file written: in place, the partial file itself, an unnamed file, or a temp file. */
  private openOutput(t: Incoming): void {
    const { p } = t;
    const fs = this.s.fs;
    const inplace = this.s.opts.inplace;
    try {
      if (t.oneInplace) {
        t.outFd = fs.openInPlace(p.partialRel!, 'partial').fd;
      } else if (inplace) {
        const st = this.s.lstatQuiet(p.dest);
        if (!st || st.type !== 'file') {
          // A new file written "in place": created under a temp name that is renamed at once.
          const made = fs.createTemp(dirOf(p.dest), baseOf(p.dest), (t.mode | 0o200) & 0o700, { dest: p.dest });
          try {
            fs.rename(made.rel, p.dest);
          } catch (err) {
            unlinkQuiet(fs, made.rel);
            throw err;
          } finally {
            fs.close(made.fd);
          }
        }
        t.outFd = fs.openInPlace(p.dest).fd;
      } else {
        const made = this.temps.createUnnamed(p.dest, p.destMissing, t.mode);
        if (made !== null) {
          t.outFd = made.fd;
          t.unnamed = true;
          t.modeSet = made.modeSet;
        } else {
          const tmp = this.temps.create(p.dest, t.mode);
          t.outFd = tmp.fd;
          t.tempRel = tmp.rel;
        }
      }
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      t.failed = t.tempRel === null && !inplace && !t.oneInplace ? `mkstemp failed: ${describe(err)}` : `open failed: ${describe(err)}`;
    }
  }

  private prepareWriter(t: Incoming): void {
    const { head } = t;
    // --append: the sender sends only what follows the existing data (count*blength-ish bytes).
    const flength = t.append ? head.count * head.blength - (head.remainder ? head.blength - head.remainder : 0) : 0;
    if (t.outFd >= 0) t.out = new CoalescingWriter(this.s.fs, t.outFd, flength, this.writeBuffer);
    const fresh = t.tempRel !== null || t.unnamed;
    if (t.out && this.s.opts.sparse) {
      t.out.sparse = true;
      // In place (--inplace, --append, an in-place partial file) the old data must be punched out.
      if (!fresh) t.out.punchBelow = this.s.sandbox.fstat(t.outFd).size;
    }
    // A temp file that replaces an existing one by rename: ext4 flushes it all in the rename.
    if (t.out && t.tempRel !== null && !t.p.destMissing) t.out.writeback = true;
    if (fresh && t.out) this.current = t;
    if (this.blockBuffer.length < head.blength) this.blockBuffer = Buffer.allocUnsafe(head.blength);
  }

  /** The token stream into the output (receive_data()); whether the whole-file checksum matched. */
  private async receiveData(t: Incoming): Promise<boolean> {
    const { head, p, out } = t;
    const e = p.entry;
    const hasher = createTransferHasher(this.s.ctx.xferSum);
    const flength = out ? out.position : 0;
    if (t.append && this.s.opts.append === 2 && t.basisFd >= 0 && flength > 0) this.hashPrefix(t.basisFd, flength, hasher);
    const block = this.blockBuffer;
    const maxSize = this.s.ctx.grant.limits.maxFileSize;
    const fresh = t.tempRel !== null || t.unnamed;
    // Not when writing into the basis itself (--inplace): read what is on disk at match time.
    const window = t.basisFd >= 0 && fresh ? new BasisWindow(this.s.sandbox, t.basisFd, this.basisWindowBuffer) : null;
    this.decoder.beginFile(head.count);
    for (;;) {
      const tok = await this.decoder.next();
      if (tok.kind === 'end') break;
      this.s.checkCancelled();
      if (tok.kind === 'literal') {
        t.literal += tok.data.length;
        hasher.update(tok.data);
        if (!t.failed) out?.write(tok.data);
        t.gotLiteral = true;
      } else {
        const len = tok.index === head.count - 1 && head.remainder ? head.remainder : head.blength;
        t.matched += len;
        const data = block.subarray(0, len);
        if (window) {
          window.read(data, tok.index * head.blength, len);
        } else if (t.basisFd >= 0) {
          const n = this.s.sandbox.read(t.basisFd, data, 0, len, tok.index * head.blength);
          if (n < len) data.fill(0, n);
        } else {
          data.fill(0);
        }
        hasher.update(data);
        this.decoder.matched(data);
        if (!t.failed) out?.write(data);
      }
      if (out && maxSize !== undefined && out.length > maxSize) t.failed ??= `exceeds the maximum file size (${maxSize} bytes)`;
      if (out && out.length > e.size + (64 << 20) && !t.failed) {
        // Much more data than announced: keep consuming the stream but stop writing.
        t.failed = 'received more data than the file list announced';
      }
    }
    this.literalBytes += t.literal;
    this.matchedBytes += t.matched;
    const sum = await this.s.ctx.reader.readBytes(digestLength(this.s.ctx.xferSum.name));
    return this.s.ctx.xferSum.name === 'none' || hasher.digest().equals(sum);
  }

  /** The data is all written: the final length (in place or sparse), fsync if asked. */
  private completeData(t: Incoming): void {
    const out = t.out!;
    out.flush();
    // In place the new data may be shorter than the old; -S leaves a trailing hole to extend.
    if (this.s.opts.inplace || t.oneInplace || out.sparse) this.s.fs.truncate(t.outFd, out.length);
    if (this.s.opts.fsync) this.s.fs.fsync(t.outFd);
  }

  /** finish_transfer(), or the partial dir for failed (--partial) and delayed (--delay-updates) data. */
  private async finishTransfer(t: Incoming, ok: boolean): Promise<Outcome> {
    const o = this.s.opts;
    const attrs: Attrs = { ...this.attrs.attrsFor(t.p.entry, false, true), mode: t.mode & 0o7777 };
    if (!ok) delete attrs.mtime;
    if (t.modeSet) delete attrs.mode;
    if ((ok && !(o.delayUpdates && this.s.places.partialDir)) || o.inplace) return this.putInPlace(t, ok, attrs);
    const partialPtr = this.partialPtr(t);
    if (this.s.keepPartial && partialPtr !== undefined && (!t.oneInplace || o.delayUpdates)) return this.putInPartial(t, ok, attrs, partialPtr);
    return 'failed';
  }

  private partialPtr(t: Incoming): string | undefined {
    return this.s.places.partialDir ? t.p.partialRel : t.p.dest;
  }

  /** Attributes on the new data, a backup of the old file, the new one under its name. */
  private async putInPlace(t: Incoming, ok: boolean, attrs: Attrs): Promise<Outcome> {
    const { p } = t;
    const fs = this.s.fs;
    const backups = this.backups.active(p.redo);
    fs.fsetAttrs(t.outFd, attrs);
    let linked = false;
    if (t.unnamed) {
      // A new file gets its name now, complete; linkat never replaces what appeared meanwhile.
      linked = !backups && fs.linkUnnamed(t.outFd, p.dest);
      if (!linked) t.tempRel = this.temps.name(t.outFd, p.dest);
      t.unnamed = false;
    }
    fs.close(t.outFd);
    t.outFd = -1;
    const from = linked ? null : t.oneInplace ? p.partialRel! : t.tempRel;
    let result: Outcome = ok ? 'done' : 'failed';
    if (from !== null) {
      result = (await this.renameIntoPlace(t, from, backups && !this.s.opts.inplace)) && ok ? 'done' : 'failed';
      t.tempRel = null;
    }
    if (t.basisType === FNAMECMP.PARTIAL_DIR && t.basisFd >= 0 && result === 'done') {
      if (!t.oneInplace) unlinkQuiet(fs, p.partialRel!, 'partial');
      this.temps.removePartialDir(p.partialRel!);
    }
    return result;
  }

  /** The data takes the file's name (after its backup); false when it did not. */
  private async renameIntoPlace(t: Incoming, from: string, backup: boolean): Promise<boolean> {
    const { p } = t;
    if (backup && (await this.backups.make(p.dest, false)) === 'failed') {
      // finish_transfer(): without its backup the old file stays; the new data is dropped.
      if (!t.oneInplace) unlinkQuiet(this.s.fs, from);
      return false;
    }
    try {
      this.s.fs.rename(from, p.dest);
      return true;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      // util1.c robust_rename(): a --temp-dir on another filesystem is copied across.
      if (err.code === 'EXDEV' && (await this.copiedAcross(from, p.dest))) return true;
      sendTransferError(this.s.ctx, `rsync: [receiver] rename "${printable(from)}" -> "${printable(this.s.fnameOf(p.entry))}": ${err.message}`);
      if (!t.oneInplace) unlinkQuiet(this.s.fs, from);
      return false;
    }
  }

  private async copiedAcross(from: string, dest: string): Promise<boolean> {
    try {
      await this.backups.copyFile(from, dest, 'entry');
    } catch (err) {
      if (err instanceof SandboxError) return false;
      throw err;
    }
    unlinkQuiet(this.s.fs, from);
    return true;
  }

  /** Failed verification with --partial(-dir), or a delayed update: the data goes to the partial name. */
  private async putInPartial(t: Incoming, ok: boolean, attrs: Attrs, partialPtr: string): Promise<Outcome> {
    const { p } = t;
    const fs = this.s.fs;
    fs.fsetAttrs(t.outFd, attrs);
    if (t.unnamed) {
      t.tempRel = this.temps.name(t.outFd, p.dest);
      t.unnamed = false;
    }
    fs.close(t.outFd);
    t.outFd = -1;
    if (!this.temps.makePartialDir(partialPtr)) {
      const name = this.s.fnameOf(p.entry);
      sendTransferError(this.s.ctx, `Unable to create partial-dir for ${printable(name)} -- discarding ${ok ? 'completed' : 'partial'} file.`);
      return 'failed';
    }
    if (t.oneInplace) {
      // The partial file was updated in place: the data already is at partialPtr.
    } else if (!this.s.places.partialDir && this.backups.active(p.redo) && (await this.backups.make(p.dest, false)) === 'failed') {
      unlinkQuiet(fs, t.tempRel!);
    } else {
      fs.rename(t.tempRel!, partialPtr, 'partial');
    }
    t.tempRel = null;
    if (!(this.s.opts.delayUpdates && ok)) return 'failed';
    this.temps.delay(p.entry, p.dest, partialPtr);
    return 'delayed';
  }

  /** Counts, MSG_SUCCESS, or the redo of a file that failed verification. */
  private account(t: Incoming, result: Outcome, ok: boolean): void {
    const { p } = t;
    const o = this.s.opts;
    if (result === 'done' || result === 'delayed') {
      this.filesTransferred++;
      if (this.s.ctx.transferLog) this.logTransfer(t);
      if (result === 'done' && o.removeSourceFiles) this.s.sendSuccess(p.entry.ndx);
      return;
    }
    if (ok) return;
    const partialPtr = this.partialPtr(t);
    const kept = !(this.s.keepPartial && partialPtr !== undefined) && !o.inplace ? 'discarded' : this.s.places.partialDir ? 'put into partial-dir' : 'retained';
    const name = this.s.fnameOf(p.entry);
    if (!p.redo) {
      if (this.s.infoName > 0 || this.s.hasI > 0) sendWarning(this.s.ctx, `WARNING: ${name} failed verification -- update ${kept} (will try again).`);
      p.list.redo.push(p.entry);
    } else {
      sendTransferError(this.s.ctx, `ERROR: ${name} failed verification -- update ${kept}.`);
    }
  }

  private logTransfer(t: Incoming): void {
    const length = t.p.entry.size;
    this.s.ctx.transferLog!({ op: 'recv', path: t.p.dest, length, literal: t.literal, matched: t.matched, itemize: itemizeText(t.iflags, 'f', '>') });
  }

  /** Every fd of the file is closed and a temp file that did not make it is removed, however it ended. */
  private release(t: Incoming): void {
    if (this.current === t) this.current = null;
    const { sandbox, fs } = this.s;
    if (t.basisFd >= 0 && t.basisSt !== null && t.basisSt.size >= BACKGROUND_CLOSE) sandbox.closeInBackground(t.basisFd);
    else if (t.basisFd >= 0) sandbox.close(t.basisFd);
    t.basisFd = -1;
    if (t.outFd >= 0) fs.close(t.outFd);
    t.outFd = -1;
    if (t.tempRel !== null) unlinkQuiet(fs, t.tempRel);
  }

  /** --append-verify: the existing data is part of the whole-file checksum. */
  private hashPrefix(fd: number, length: number, hasher: { update(b: Buffer): void }): void {
    const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, length));
    let pos = 0;
    while (pos < length) {
      const n = this.s.sandbox.read(fd, buf, 0, Math.min(buf.length, length - pos), pos);
      if (n <= 0) break;
      hasher.update(buf.subarray(0, n));
      pos += n;
    }
  }

  /** abandon(): keep the data as a partial file (--partial / --partial-dir), or remove it. */
  private async keepOrDiscard(t: Incoming): Promise<void> {
    const fs = this.s.fs;
    try {
      t.out?.flush();
    } catch {
      // keep what was written
    }
    const partialPtr = this.partialPtr(t);
    if (t.gotLiteral && this.s.keepPartial && partialPtr !== undefined && this.temps.makePartialDir(partialPtr)) {
      const attrs: Attrs = { ...this.attrs.attrsFor(t.p.entry, false, true), mode: t.mode & 0o7777 };
      if (this.s.places.partialDir) delete attrs.mtime;
      else attrs.mtime = { sec: 0, nsec: t.p.entry.mtimeNsec }; // the reference zeroes only the seconds
      fs.fsetAttrs(t.outFd, attrs);
      t.tempRel ??= this.temps.name(t.outFd, t.p.dest);
      this.closeOutput(t);
      if (!this.s.places.partialDir && this.s.opts.backup && (await this.backups.make(t.p.dest, false)) === 'failed') fs.unlink(t.tempRel, 'temp');
      else fs.rename(t.tempRel, partialPtr, 'partial');
      t.tempRel = null;
      return;
    }
    this.closeOutput(t);
    if (t.tempRel !== null) fs.unlink(t.tempRel, 'temp');
    t.tempRel = null;
  }

  /** Closes the output once (a failed close releases the fd too). */
  private closeOutput(t: Incoming): void {
    const fd = t.outFd;
    t.outFd = -1;
    if (fd >= 0) this.s.fs.close(fd);
  }
}

