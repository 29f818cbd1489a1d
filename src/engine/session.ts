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
import { ExitCode, RsyncError } from '../protocol/errors.js';
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
  let sandbox: Sandbox | undefined;
  let ctx: SessionContext | undefined;
  let lock: RootLock | null = null;
  if (!req.grant.noLock && !req.grant.readOnly) {
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
      gateway: openGateway(sandbox, req.grant, log, { quota: !opts.sender, extra: req.changePolicies }),
      reader,
      writer,
      log,
      signal: req.signal,
      ioError: 0,
      hadTransferError: false,
      stats: {},
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
    const code = opts.sender ? await runSender(ctx) : await runReceiver(ctx);
    await writer.drain();
    return result(code);
  } catch (err) {
    const code = await reportFatal(io, ctx, log, err);
    return result(code);
  } finally {
    sandbox?.close();
    lock?.release();
  }
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
  if (ctx.protocol >= 31 && code !== ExitCode.STREAMIO) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(code, 0);
    ctx.writer.message(MsgTag.ERROR_EXIT, b);
    ctx.writer.flush();
    // As the reference does: keep reading until the client closes (it answers MSG_ERROR_EXIT).
    await ctx.reader.drainUntilEof(10_000);
  } else {
    await Promise.race([ctx.writer.drain(), new Promise((r) => setTimeout(r, 2000).unref())]);
  }
  return code;
}
