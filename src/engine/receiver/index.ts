/**
 * The receiving role of a push: the generator (generator.ts, generator-file.ts) and the receiving
 * half (receive.ts) run as two concurrent tasks sharing the session's reader and writer. They
 * are cancelled and awaited together: when one fails the other stops at its next wait, releases
 * what it holds, and only then does the role end (and the session close its sandbox).
 */
import type { ServerOptions } from '../../policy/server-options.js';
import { incomingModeFn } from '../../policy/modes.js';
import { ExitCode, ProtocolError, RsyncError } from '../../protocol/errors.js';
import { MsgTag } from '../../protocol/mux.js';
import { createTokenDecoder } from '../../protocol/token.js';
import { incRecurse, type SessionContext } from '../context.js';
import { IOERR } from '../../protocol/errors.js';
import { IoTimeout } from '../io-timeout.js';
import { installMessageHandler } from '../messages.js';
import { Attributes, setupIdMaps } from './attrs.js';
import { Backups } from './backup.js';
import { BasisFinder } from './basis.js';
import { PartialDir, TMP_PARTIAL_DIR } from './basis-dirs.js';
import { Deleter, DirFilters } from './delete.js';
import { resolveDestination, setupBasisOptions } from './destination.js';
import { FileLists } from './flists.js';
import { Generator } from './generator.js';
import { FileGenerator, Requests } from './generator-file.js';
import { HardLinks } from './hardlinks.js';
import { Receive } from './receive.js';
import { ReceiverState } from './state.js';
import { TempFiles } from './tempfiles.js';

/** The reference's allow_inc_recurse for a receiving server. */
export function allowIncRecurseForReceiver(opts: ServerOptions): boolean {
  if (!opts.recursive || opts.useQsort || opts.pruneEmptyDirs || opts.delayUpdates) return false;
  if (opts.deleteMode && (opts.deleteTiming === 'before' || opts.deleteTiming === 'after')) return false;
  return true;
}

/**
 * The reference's option post-processing (options.c) as it applies to a receiving server:
 * --append implies --inplace, --backup without --backup-dir implies --omit-dir-times,
 * --delay-updates without --partial-dir uses .~tmp~.
 */
function receiverState(ctx: SessionContext): ReceiverState {
  const o = ctx.opts;
  const append = o.append === 1 && ctx.protocol < 30 ? 2 : o.append;
  const opts: ServerOptions = {
    ...o,
    append,
    inplace: o.inplace || append > 0,
    omitDirTimes: o.omitDirTimes || (o.backup && o.backupDir === undefined),
    partialDir: o.partialDir ?? (o.delayUpdates ? TMP_PARTIAL_DIR : undefined),
  };
  const partialUsable = PartialDir.usable(opts.partialDir, ctx.grant);
  if (opts.inplace && opts.partialDir !== undefined && partialUsable) {
    throw new RsyncError(
      `--${append ? 'append' : 'inplace'} cannot be used with --${o.delayUpdates ? 'delay-updates' : 'partial-dir'}`,
      ExitCode.SYNTAX,
    );
  }
  return new ReceiverState(ctx, {
    opts,
    inc: incRecurse(ctx),
    keepPartial: !opts.inplace && (o.partial || partialUsable),
    backupSuffix: o.suffix ?? (o.backupDir !== undefined ? '' : '~'),
    incomingChmod: incomingModeFn(ctx.grant.limits),
  });
}

class Receiver {
  private readonly s: ReceiverState;
  private readonly attrs: Attributes;
  private readonly temps: TempFiles;
  private readonly backups: Backups;
  private readonly dirFilters: DirFilters;
  private readonly deleter: Deleter;
  private readonly lists: FileLists;
  private readonly requests: Requests;
  private peer: { peerIoError: () => number } = { peerIoError: () => 0 };
  private receiving: Receive | null = null;

  constructor(private readonly ctx: SessionContext) {
    this.s = receiverState(ctx);
    this.attrs = new Attributes(this.s);
    this.temps = new TempFiles(this.s);
    this.backups = new Backups(this.s);
    this.dirFilters = new DirFilters(this.s);
    this.deleter = new Deleter(this.s, this.backups, this.dirFilters);
    this.lists = new FileLists(this.s, this.dirFilters);
    this.requests = new Requests(this.s);
  }

  /** What the exec summary record reports about the push. */
  get stats(): { files: number; deletions: number; literalBytes: number; matchedBytes: number } {
    const r = this.receiving;
    return { files: r?.filesTransferred ?? 0, deletions: this.deleter.deletions, literalBytes: r?.literalBytes ?? 0, matchedBytes: r?.matchedBytes ?? 0 };
  }

  async run(): Promise<number> {
    this.peer = installMessageHandler(this.ctx, (tag, payload) => this.onRoleMessage(tag, payload));
    const timeout = this.s.opts.timeout > 0 ? new IoTimeout(this.ctx, this.s.opts.timeout) : null;
    timeout?.expired.catch((err: Error) => this.s.cancel(err));
    timeout?.start();
    try {
      await this.lists.receiveFirst();
      this.s.checkCancelled();
      const generator = this.prepare();
      const receive = this.receiving!;
      await this.together(
        () => generator.run(),
        () => receive.run(),
      );
    } catch (err) {
      await this.receiving?.abandon();
      throw this.s.cancelled ?? err;
    } finally {
      timeout?.stop();
    }
    return this.exitCode();
  }

  /** The destination and helper dirs, then the two halves with their collaborators. */
  private prepare(): Generator {
    const s = this.s;
    const made = resolveDestination(s, this.lists.open[0]!);
    setupBasisOptions(s);
    setupIdMaps(s);
    const basis = new BasisFinder(s, this.attrs, this.temps);
    const hardLinks = new HardLinks(s, this.attrs, this.backups, this.deleter, this.temps);
    const files = new FileGenerator(s, this.attrs, basis, this.backups, this.deleter, hardLinks, this.temps, this.requests);
    const generator = new Generator(s, {
      lists: this.lists,
      files,
      requests: this.requests,
      attrs: this.attrs,
      basis,
      deleter: this.deleter,
      hardLinks,
      backups: this.backups,
      temps: this.temps,
      ioError: () => this.peer.peerIoError(),
    });
    if (made.destinationDir) generator.destinationMade();
    if (made.rootDir) generator.rootCreated();
    const decoder = createTokenDecoder(this.ctx.reader, this.ctx.compress, s.protocol, (bytes) =>
      this.ctx.budget.charge(bytes, 'the zstd decompression window'),
    );
    this.receiving = new Receive(s, this.lists, this.requests, this.attrs, this.backups, this.temps, decoder);
    return generator;
  }

  /**
   * Runs both halves to their end. The first failure cancels the other half, which is awaited
   * (it stops at its next wait or read) before the failure is rethrown.
   */
  private async together(...halves: Array<() => Promise<void>>): Promise<void> {
    let failure: { err: unknown } | null = null;
    await Promise.all(
      halves.map(async (half) => {
        try {
          await half();
        } catch (err) {
          if (!failure) {
            failure = { err };
            this.s.cancel(err instanceof Error ? err : new Error(String(err)));
          }
        }
      }),
    );
    if (failure) throw (failure as { err: unknown }).err;
  }

  private onRoleMessage(tag: number, payload: Buffer): boolean {
    if (tag === MsgTag.NO_SEND) {
      if (payload.length !== 4) throw new ProtocolError('invalid MSG_NO_SEND');
      this.requests.complete(payload.readInt32LE(0));
      return true;
    }
    return false;
  }

  private exitCode(): number {
    const io = this.lists.ioError | this.peer.peerIoError() | this.ctx.ioError;
    if (this.ctx.hadTransferError || io & IOERR.GENERAL) return ExitCode.PARTIAL;
    if (io & IOERR.VANISHED) return ExitCode.VANISHED;
    if (this.deleter.limitExceeded) return ExitCode.DEL_LIMIT;
    return ExitCode.OK;
  }
}

export async function runReceiver(ctx: SessionContext): Promise<number> {
  const receiver = new Receiver(ctx);
  const code = await receiver.run();
  const stats = receiver.stats;
  ctx.log.info({ filesTransferred: stats.files }, 'receiver done');
  ctx.stats = stats;
  return code;
}
