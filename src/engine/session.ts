/**
 * Engine entry point: one `rsync --server ...` exec request, run over any duplex byte stream.
 * The ssh layer calls this with the channel; tests may call it with pipes.
 */
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { Grant } from '../policy/grant.js';
import { ProtocolReader } from '../protocol/input.js';
import { ProtocolWriter } from '../protocol/output.js';
import { MsgTag } from '../protocol/mux.js';
import { ExitCode, FileListAbort, RsyncError } from '../protocol/errors.js';
import { initChecksums } from '../protocol/checksum.js';
import { initCompression } from '../protocol/token.js';
import { parseProtectedArgs, parseServerArgs } from '../policy/options.js';
import { applyGrant } from '../policy/restrict.js';
import type { ServerOptions } from '../policy/server-options.js';
import { Sandbox } from '../sandbox/sandbox.js';
import { lockRoot, type RootLock } from '../sandbox/lock.js';
import { rootUnavailableError } from '../policy/root-errors.js';
import { escapeControlBytes } from '../protocol/message-text.js';
import {
  checksumSpecs,
  chooseSeed,
  computeCompatFlags,
  exchangeVersions,
  negotiate,
  readProtectedArgs,
} from './handshake.js';
import type { SessionContext } from './context.js';
import { CF } from '../protocol/compat.js';
import { PeerExitSignal as PeerExit } from './peer-exit.js';
import { allowIncRecurseForReceiver, runReceiver } from './receiver/index.js';
import { openGateway, type ChangePolicy } from '../gateway/index.js';
import { allowIncRecurseForSender, runSender } from './sender/sender.js';
import { hashWasmBinaries } from '../patches/hash-wasm.js';
import type { RevisionHooks, RevisionsConfig } from '../revisions/layout.js';
import { prepareRevisions, type RevisionPush } from '../revisions/session.js';
import { usageLedgers } from '../usage/registry.js';
import type { UsageLedger } from '../usage/ledger.js';
import { anyLeft, SessionResources } from './resources.js';
import { DEFAULT_SESSION_MEMORY, MemoryBudget } from './budget.js';
import { transferLogTo } from './transfer-log.js';

export interface SessionIO {
  /** Bytes from the client (the channel's readable side). */
  input: Readable;
  /** Bytes to the client (the channel's writable side). */
  output: Writable;
  /** The channel's stderr (extended data). */
  stderr: Writable;
}

export interface SessionRequest {
  /** The exec command split into words (byte strings); argv[0] is rsync, argv[1] is --server. */
  argv: string[];
  grant: Grant;
  log: Logger;
  /** Aborted on shutdown deadline or connection loss. */
  signal?: AbortSignal;
  /** Policies applied to every change of the tree after the built-in ones (audit, tests). */
  changePolicies?: readonly ChangePolicy[];
  /** Who the key is (manifests, revision events and hooks; from the ssh layer). */
  tenant?: string;
  keyFingerprint?: string;
  /** The operator's revision hooks (verify may veto a publish). */
  revisionHooks?: RevisionHooks;
  /** log.transfers: one info record per file sent, received or deleted. */
  transferLog?: boolean;
}

export interface SessionResult {
  exitCode: number;
  role: 'sender' | 'receiver' | 'none';
  bytesIn: number;
  bytesOut: number;
  files?: number;
  /** Entries the receiver deleted (--delete), when it ran. */
  deletions?: number;
  /** Receiver: file data sent by the client, and data copied from basis files. */
  literalBytes?: number;
  matchedBytes?: number;
}

let initialised: Promise<void> | null = null;
function initEngine(): Promise<void> {
  initialised ??= Promise.all([initChecksums(hashWasmBinaries()), initCompression()]).then(() => undefined);
  return initialised;
}

function writeStderr(io: SessionIO, text: string): void {
  io.stderr.write(escapeControlBytes(Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'latin1')));
}

/** The grant's root, or rsync's "root not available" for the client (the path only in the log). */
function openRoot(root: string, sender: boolean, log: Logger): Sandbox {
  try {
    return Sandbox.open(root);
  } catch (err) {
    throw rootUnavailableError(err, root, sender, log);
  }
}

function withRevisions(grant: Grant): grant is Grant & { revisions: RevisionsConfig } {
  return grant.revisions !== undefined;
}

function parseOptions(argv: string[], grant: Grant): ServerOptions {
  return applyGrant(parseServerArgs(argv), grant);
}

export async function runRsyncSession(io: SessionIO, req: SessionRequest): Promise<SessionResult> {
  const log = req.log;
  let opts: ServerOptions;
  try {
    opts = parseOptions(req.argv, req.grant);
  } catch (err) {
    return refuseBeforeStart(io, log, err);
  }
  const role = opts.sender ? 'sender' : 'receiver';
  const reader = new ProtocolReader(io.input);
  const writer = new ProtocolWriter(io.output);
  reader.onStarve = () => writer.flush();
  const resources = ownSession(io, req, reader, writer);
  let sandbox: Sandbox | undefined;
  let ctx: SessionContext | undefined;
  let lock: RootLock | null = null;
  let push: RevisionPush | null = null;
  let ledger: UsageLedger | null = null;
  // A revisions root has one writer at a time whatever the grant says; pulls read published revisions.
  const locks = req.grant.revisions ? !opts.sender : !req.grant.noLock && !req.grant.readOnly;
  if (locks) {
    try {
      lock = lockRoot(req.grant.root);
    } catch (err) {
      return refuseBeforeStart(io, log, rootUnavailableError(err, req.grant.root, opts.sender, log));
    }
    if (!lock) {
      return refuseBeforeStart(
        io,
        log,
        new RsyncError('rrsyncd error: Another instance of rrsync is already accessing this directory.', ExitCode.SYNTAX),
      );
    }
  }
  const result = (exitCode: number): SessionResult => ({
    exitCode,
    role,
    bytesIn: reader.totalRead,
    bytesOut: writer.totalWritten,
    ...ctx?.stats,
  });

  try {
    await initEngine();
    if (opts.protectArgs) {
      const streamArgs = await readProtectedArgs(reader);
      opts = applyGrant(parseProtectedArgs(opts, streamArgs), req.grant);
      log.info({ protectedArgs: streamArgs.map((a) => Buffer.from(a, 'latin1').toString('utf8')) }, 'secluded args');
    }
    sandbox = openRoot(req.grant.root, opts.sender, log);
    const revisions = withRevisions(req.grant) ? await prepareRevisions(sandbox, req.grant, opts, log) : null;
    if (revisions) ({ opts, push } = revisions);
    const protocol = await exchangeVersions(reader, writer);
    reader.protocol = writer.protocol = protocol;
    const allowInc = opts.sender ? allowIncRecurseForSender(opts) : allowIncRecurseForReceiver(opts);
    const compatFlags = protocol >= 30 ? computeCompatFlags(opts, allowInc) : 0;
    if (protocol >= 30) {
      writer.varint(compatFlags);
    }
    const negotiated = await negotiate(reader, writer, protocol, compatFlags, opts);
    const seed = chooseSeed(opts);
    writer.i32(seed);
    writer.flush();
    const sums = checksumSpecs(negotiated, protocol, seed, compatFlags);
    // a pull with --remove-source-files changes the tree too
    ledger = opts.sender && !opts.removeSourceFiles ? null : await openLedger(sandbox, req);
    ctx = {
      protocol,
      compatFlags,
      seed,
      xferSum: sums.xfer,
      fileSum: sums.file,
      compress: negotiated.compress,
      compressLevel: negotiated.compressLevel,
      opts,
      grant: req.grant,
      sandbox,
      gateway: openGateway(sandbox, req.grant, log, { ledger, keepsBackups: opts.backup, extra: req.changePolicies, guards: revisions?.guards }),
      reader,
      writer,
      log,
      resources,
      budget: new MemoryBudget(req.grant.limits.memoryBytes ?? DEFAULT_SESSION_MEMORY),
      ioError: 0,
      hadTransferError: false,
      stats: {},
      hiddenPath: revisions?.hiddenPath,
      transferLog: req.transferLog ? transferLogTo(log) : undefined,
    };
    log.info(
      { protocol, compatFlags, checksum: negotiated.xferName, compress: negotiated.compress, role, incRecurse: (compatFlags & CF.INC_RECURSE) !== 0 },
      'session negotiated',
    );
    // From here on the server's output is multiplexed (any protocol >= 23); the client's from 30.
    writer.setMultiplexed(true);
    // A client receiver also multiplexes below 30 when its generator must send MSG_SUCCESS
    // (need_messages_from_generator: --remove-source-files).
    reader.setMultiplexed(protocol >= 30 || (opts.sender && opts.removeSourceFiles));
    const uploadLimit = req.grant.limits.uploadBytesPerSecond;
    if (uploadLimit && !opts.sender) reader.setRateLimit(uploadLimit);
    // --bwlimit as rsync applies it, to what this side sends (a push's client throttles itself)
    if (opts.bwlimit && opts.sender) writer.setRateLimit(opts.bwlimit);
    let code = opts.sender ? await runSender(ctx) : await runReceiver(ctx);
    await writer.drain();
    // The exit status waits for the publish, so that a failed or vetoed one reaches the client.
    if (push) code = await push.finish(code, { tenant: req.tenant, keyFingerprint: req.keyFingerprint, argv: req.argv, hooks: req.revisionHooks }, (line) => writeStderr(io, line));
    return result(code);
  } catch (err) {
    const code = await reportFatal(io, ctx, log, err);
    return result(code);
  } finally {
    const left = await resources.end(() => sandbox?.openFileCount ?? 0);
    if (anyLeft(left)) log.warn({ leftovers: left }, 'session ended with resources still open (released now)');
    ctx?.gateway.end();
    // the staging was removed behind the gateway: the ledger learns it from a background walk;
    // the root lock is held until it is gone (the next push must not find it half removed)
    if (push && (await push.discardUnpublished()) && ledger) void usageLedgers.reconcile(ledger).catch(() => undefined);
    sandbox?.close();
    lock?.release();
  }
}

/**
 * The root's usage ledger for a session that changes the tree: always on a server (kept in its
 * state dir), otherwise only when the grant has a quota. A root never measured is walked first,
 * in the background: this session waits for it (other sessions do not).
 */
async function openLedger(sandbox: Sandbox, req: SessionRequest): Promise<UsageLedger | null> {
  const { quotaBytes, quotaFiles } = req.grant.limits;
  if (!usageLedgers.persistent && quotaBytes === undefined && quotaFiles === undefined) return null;
  try {
    return await usageLedgers.open(sandbox, req.signal);
  } catch (err) {
    if (req.signal?.aborted) throw err;
    req.log.error({ err: (err as Error).message }, 'usage of the root could not be measured');
    throw new RsyncError('rrsyncd: the usage of this directory could not be measured (quota); try again later', ExitCode.FILEIO);
  }
}

/**
 * The session's resources, cancelled when the connection goes (the ssh layer's signal, or the
 * output stream closing or failing): its reader and writer then fail every wait, so no task stays
 * blocked on a client that is gone.
 */
function ownSession(io: SessionIO, req: SessionRequest, reader: ProtocolReader, writer: ProtocolWriter): SessionResources {
  const resources = new SessionResources();
  resources.onCancel((err) => {
    writer.abort(err);
    reader.abort(err);
  });
  const gone = (): void => resources.cancel(new RsyncError('connection unexpectedly closed', ExitCode.STREAMIO));
  io.output.once('close', gone);
  io.output.once('error', gone);
  resources.own(() => {
    io.output.off('close', gone);
    io.output.off('error', gone);
  });
  const signal = req.signal;
  if (signal) {
    const aborted = (): void => resources.cancel(new RsyncError(`session cancelled: ${String(signal.reason?.message ?? signal.reason)}`, ExitCode.STREAMIO));
    if (signal.aborted) aborted();
    else {
      signal.addEventListener('abort', aborted, { once: true });
      resources.own(() => signal.removeEventListener('abort', aborted));
    }
  }
  return resources;
}

function refuseBeforeStart(io: SessionIO, log: Logger, err: unknown): SessionResult {
  const code = err instanceof RsyncError ? err.code : ExitCode.SYNTAX;
  const message = err instanceof Error ? err.message : String(err);
  log.warn({ refusal: message, exitCode: code }, 'refused');
  writeStderr(io, message);
  return { exitCode: code, role: 'none', bytesIn: 0, bytesOut: 0 };
}

/** Reports a fatal error the way the client expects for the protocol in use, and returns the exit code. */
async function reportFatal(io: SessionIO, ctx: SessionContext | undefined, log: Logger, err: unknown): Promise<number> {
  if (err instanceof PeerExit) {
    if (ctx && ctx.protocol >= 31) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(err.code, 0);
      ctx.writer.message(MsgTag.ERROR_EXIT, b);
      await ctx.writer.drain().catch(() => undefined);
    }
    log.info({ exitCode: err.code }, 'client requested exit');
    return err.code;
  }
  const code = err instanceof RsyncError ? err.code : ExitCode.PROTOCOL;
  const message = err instanceof Error ? err.message : String(err);
  log.warn({ err: message, exitCode: code, stack: err instanceof RsyncError ? undefined : (err as Error)?.stack }, 'session failed');
  if (!ctx || !ctx.writer.isMultiplexed) {
    writeStderr(io, message);
    return code;
  }
  const line = message.endsWith('\n') ? message : `${message}\n`;
  ctx.writer.message(MsgTag.ERROR, line);
  if (ctx.protocol >= 31 && code !== ExitCode.STREAMIO && !(err instanceof FileListAbort)) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(code, 0);
    ctx.writer.message(MsgTag.ERROR_EXIT, b);
    ctx.writer.flush();
    // As the reference does: keep reading until the client closes (it answers MSG_ERROR_EXIT).
    await ctx.reader.drainUntilEof(10_000);
  } else {
    await ctx.resources.within(ctx.writer.drain(), 2000);
  }
  return code;
}
