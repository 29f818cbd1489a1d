/**
 * The sending side of a pull (`rsync --server --sender`, rsync's sender.c): reads the client's
 * filters, has the file list(s) sent (lists.ts, walk.ts), then answers the client generator's
 * requests with token streams (send-file.ts) until the goodbye.
 */
import type { ServerOptions } from '../../policy/server-options.js';
import { digestLength } from '../../protocol/checksum.js';
import { ExitCode, FileListAbort, IOERR, ProtocolError } from '../../protocol/errors.js';
import { readFilterList, type FilterRule } from '../../protocol/filter.js';
import { isDir, isRegular, isSymlink } from '../../protocol/flist/entry.js';
import { ITEM, itemizeText } from '../../protocol/itemize.js';
import { MsgTag } from '../../protocol/mux.js';
import { NDX_DEL_STATS, NDX_DONE } from '../../protocol/ndx.js';
import { readBlockSums, readSumHead, validateSumHead } from '../../protocol/sumhead.js';
import { createTokenEncoder } from '../../protocol/token.js';
import { printable } from '../../printable.js';
import { errorText } from '../../sandbox/errors.js';
import { readSmallFile } from '../../sandbox/small-file.js';
import { incRecurse, type SessionContext } from '../context.js';
import { FilterSet, MAX_MERGE_FILE_BYTES } from '../filter-match.js';
import { IoTimeout } from '../io-timeout.js';
import { installMessageHandler, sendInfo, sendTransferError } from '../messages.js';
import { dirbufLength, joinRel } from '../relpath.js';
import { physOf } from './entry.js';
import { readFilesFrom } from './files-from.js';
import { SendLists } from './lists.js';
import { FileSender, type AppendMode } from './send-file.js';
import { SenderWalker } from './walk.js';
import { blockSumsBytes } from '../budget.js';

/** The reference's allow_inc_recurse for a sending server: -r, not --use-qsort (the 'i' letter is checked by the caller). */
export function allowIncRecurseForSender(opts: ServerOptions): boolean {
  return opts.recursive && !opts.useQsort;
}

class Sender {
  private readonly opts: ServerOptions;
  private readonly protocol: number;
  private readonly inc: boolean;
  private filters: FilterSet | undefined;
  private walker!: SenderWalker;
  private lists!: SendLists;
  private files!: FileSender;
  private flistBuildMs = 0;
  private flistXferMs = 0;
  /** Where a directory whose contents were reached through a followed symlink lives. */
  private mergeDir = { name: '', phys: '', base: '' };

  constructor(private readonly ctx: SessionContext) {
    this.opts = ctx.opts;
    this.protocol = ctx.protocol;
    this.inc = incRecurse(ctx);
  }

  /** What the exec summary record reports about the pull (a sender deletes nothing). */
  get stats(): { files: number; literalBytes: number; matchedBytes: number } {
    const f = this.files as FileSender | undefined;
    return { files: f?.files ?? 0, literalBytes: f?.literalBytes ?? 0, matchedBytes: f?.matchedBytes ?? 0 };
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
    const names = this.opts.filesFrom !== undefined ? await readFilesFrom(this.ctx) : null;
    this.lists = new SendLists(this.ctx, this.walker, this.inc);
    const t0 = Date.now();
    const args = this.opts.args.length ? this.opts.args : ['.'];
    const first = this.walker.buildFirstList(args, names);
    this.flistBuildMs = Math.max(1, Date.now() - t0);
    const t1 = Date.now();
    this.lists.sendFirstList(first);
    this.flistXferMs = Date.now() - t1;
    if (first.length === 0) {
      // Nothing to send: the reference exits right after the list.
      await this.ctx.writer.drain();
      return this.exitCode();
    }
    const encoder = createTokenEncoder(this.ctx.writer, this.ctx.compress, this.ctx.compressLevel, this.protocol);
    this.files = new FileSender(this.ctx, encoder, this.walker);
    // --timeout: keep-alives while idle and exit 30 when the client goes silent (started after the
    // first list: pre-3.1 clients must not see a keep-alive while they read it).
    const timeout = this.opts.timeout > 0 ? new IoTimeout(this.ctx, this.opts.timeout, 'sender') : null;
    timeout?.start();
    try {
      const work = this.ctx.resources.task(this.serveRequests());
      work.catch(() => undefined);
      await (timeout ? Promise.race([work, timeout.expired]) : work);
    } catch (err) {
      // Once the first list is out the client is busy with it: the end is told (MSG_ERROR_EXIT).
      if (err instanceof FileListAbort) throw new ProtocolError(err.message, err.code);
      throw err;
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

  // ---- filters ------------------------------------------------------------------------------

  private setupFilters(rules: FilterRule[]): void {
    if (rules.length === 0 && !this.opts.cvsExclude) return;
    this.filters = new FilterSet(rules, {
      side: 'sender',
      cvsExclude: this.opts.cvsExclude,
      protocol: this.protocol,
      readMergeFile: (dirRel, name) => this.readMergeFile(dirRel, name),
      // DEBUG_GTE(FILTER, 1): -vv implies it (--debug itself is refused, policy/restrict.ts).
      trace: this.opts.verbose >= 2 ? (line) => sendInfo(this.ctx, line) : undefined,
      dirPathLength: (dirRel) => dirbufLength(this.ctx.sandbox.rootPath, this.mergePhys(dirRel)),
      reportError: (message) => {
        this.walker.ioError |= IOERR.GENERAL;
        sendTransferError(this.ctx, message);
      },
    });
  }

  private readMergeFile(dirRel: string, name: string): Buffer | null {
    return readSmallFile(this.ctx.sandbox, joinRel(this.mergePhys(dirRel), name), MAX_MERGE_FILE_BYTES);
  }

  /** Where a directory named `dirRel` by the filters lives below the root. */
  private mergePhys(dirRel: string): string {
    const m = this.mergeDir;
    return dirRel === m.name ? m.phys : joinRel(m.base, dirRel);
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
      if (this.inc && !this.lists.flistEof) {
        this.lists.sendMoreLists(false);
        if (!this.lists.flistEof && r.idle) this.lists.sendMoreLists(true);
      }
      const ndx = await this.readNdx();
      if (ndx === NDX_DONE) {
        if (this.inc && this.lists.activeCount > 0) {
          this.lists.freeOldestList();
          if (this.lists.activeCount > 0) {
            w.ndx(NDX_DONE);
            continue;
          }
          if (!this.lists.flistEof) throw new ProtocolError('client finished every file list before NDX_FLIST_EOF');
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
      const e = this.lists.entryFor(ndx);
      if (!e) {
        // Protocol 29 keep-alive: a fake request for ndx == list count with ITEM_IS_NEW.
        if (this.protocol === 29 && !this.inc && ndx === this.lists.firstListLength && iflags === ITEM.IS_NEW) {
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
      const append: AppendMode = this.opts.append > 0 && !e.sent ? (this.opts.append > 1 || this.protocol < 30 ? 2 : 1) : 0;
      const sumsBytes = append ? 0 : blockSumsBytes(head);
      this.ctx.budget.charge(sumsBytes, `the block sums of ${printable(e.name)} (${head.count} blocks)`);
      try {
        const sums = append ? null : await readBlockSums(r, head);
        const sent = await this.files.send(e, ndx, head, sums, append, echo);
        if (sent && this.ctx.transferLog) this.ctx.transferLog({ op: 'send', path: physOf(e), length: e.size, ...sent, itemize: itemizeText(iflags, 'f', '<') });
      } finally {
        this.ctx.budget.release(sumsBytes);
      }
      e.sent = true;
      await w.writable();
    }
    if (this.ioError !== savedIoError && this.protocol >= 30 && !this.opts.ignoreErrors) this.lists.sendIoErrorMsg();
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

  private writeStats(): void {
    const w = this.ctx.writer;
    const read = this.ctx.reader.totalRead;
    const written = w.totalWritten + w.pendingBytes;
    if (this.protocol < 29) {
      w.longint(read);
      w.longint(written);
      w.longint(this.lists.totalSize);
      return;
    }
    for (const v of [read, written, this.lists.totalSize, this.flistBuildMs, this.flistXferMs]) w.varlong30(v, 3);
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
    const e = ndx >= 0 ? this.lists.entryFor(ndx) : undefined;
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
      sendTransferError(this.ctx, `rsync: [sender] sender failed to remove ${printable(e.name)}: ${errorText(err)}`);
    }
  }
}

export async function runSender(ctx: SessionContext): Promise<number> {
  const sender = new Sender(ctx);
  try {
    return await sender.run();
  } finally {
    ctx.stats = sender.stats;
  }
}

