/**
 * `rrsyncd relay`: rsync between two remote hosts through this machine. The relay is the client
 * of two servers, a pull from the source and a push to the destination, joined in the middle:
 * handshake with both (agreement.ts), the filter rules to each, the file list re-encoded
 * (file-list.ts), then the transfer loops (transfer.ts). Nothing is written locally.
 */
import { randomInt } from 'node:crypto';
import { ExitCode, RsyncError, UnexpectedEofError } from '../protocol/errors.js';
import { initChecksums, type ChecksumSpec } from '../protocol/checksum.js';
import { initCompression, type CompressName } from '../protocol/token.js';
import { writeFilterList } from '../protocol/filter.js';
import { MsgTag } from '../protocol/mux.js';
import { parseRelayArgs, remoteCommand, RELAY_USAGE, type FilterRuleText, type RelayOptions } from './args.js';
import { Side, RELAY_MAX_PROTOCOL, type SideExit } from './side.js';
import { checksumSpecFor, chooseChecksumNames, chooseCompression, chooseOffers, chooseTokenMode, sameStrongSums, type TokenMode } from './agreement.js';
import { flistOptionsFor, relayFileList, summarize, type RelayedList } from './file-list.js';
import { Transfer } from './transfer.js';
import { printSideMessage, processTerminal, type Terminal } from './messages.js';
import { printSummary } from './summary.js';
import { hashWasmBinaries } from '../patches/hash-wasm.js';

const SHUTDOWN_GRACE_MS = 5000;

/** A side ended the session with MSG_ERROR_EXIT. */
class SideErrorExit extends RsyncError {}

interface Negotiated {
  sums: [ChecksumSpec, ChecksumSpec];
  compress: [CompressName, CompressName];
  mode: TokenMode;
}

/** rsync's wire form of a rule for a peer of `protocol` (modifiers s/r only from 29). */
function ruleText(rule: FilterRuleText, protocol: number): string {
  const mods = protocol >= 29;
  switch (rule.action) {
    case 'H':
      return `${mods ? '-s' : '-'} ${rule.pattern}`;
    case 'S':
      return `${mods ? '+s' : '+'} ${rule.pattern}`;
    case 'P':
      return `${mods ? '-r' : '-'} ${rule.pattern}`;
    case 'R':
      return `${mods ? '+r' : '+'} ${rule.pattern}`;
    default:
      return `${rule.action} ${rule.pattern}`;
  }
}

/**
 * Which rules each peer gets, as a stock client decides for a pull (we are the receiver: sender-
 * side rules go out, receiver-side ones stay) and a push (the reverse; plain rules stay local
 * with --delete-excluded).
 */
export function rulesFor(o: RelayOptions, role: 'source' | 'destination', protocol: number): string[] | undefined {
  if (role === 'source') return o.filters.filter((f) => f.action !== 'P' && f.action !== 'R').map((f) => ruleText(f, protocol));
  const wanted = o.deleteMode !== 'none' && (!o.deleteExcluded || protocol >= 29);
  if (!wanted) return undefined;
  return o.filters
    .filter((f) => f.action !== 'H' && f.action !== 'S' && !(o.deleteExcluded && (f.action === '+' || f.action === '-')))
    .map((f) => ruleText(f, protocol));
}

async function handshake(src: Side, dst: Side, o: RelayOptions): Promise<Negotiated> {
  const [vs, vd] = await Promise.all([bySide(src, src.readVersion()), bySide(dst, dst.readVersion())]);
  const [os, od] = chooseOffers(vs, vd, RELAY_MAX_PROTOCOL);
  await Promise.all([bySide(src, src.sendVersion(os, o.compress)), bySide(dst, dst.sendVersion(od, o.compress))]);
  const [cs, cd] = chooseChecksumNames(src, dst);
  const comp = o.compress ? chooseCompression(src, dst) : undefined;
  await Promise.all([bySide(src, src.finishHandshake(cs, comp?.send[0])), bySide(dst, dst.finishHandshake(cd, comp?.send[1]))]);
  const sums: [ChecksumSpec, ChecksumSpec] = [checksumSpecFor(src, cs), checksumSpecFor(dst, cd)];
  const compress: [CompressName, CompressName] = comp ? comp.use : ['none', 'none'];
  const mode = o.wholeFile ? 'whole' : chooseTokenMode(sums, compress, [src.protocol, dst.protocol]);
  return { sums, compress, mode };
}

function installMessages(src: Side, dst: Side, o: RelayOptions, term: Terminal, transfer: () => Transfer | undefined): void {
  src.reader.onMessage = (tag, payload) => {
    if (printSideMessage(term, o, tag, payload)) return;
    if (tag === MsgTag.NO_SEND && payload.length === 4) transfer()?.onSourceNoSend(payload.readInt32LE(0));
    else if (tag === MsgTag.IO_ERROR && payload.length === 4 && dst.protocol >= 30) dst.writer.message(MsgTag.IO_ERROR, payload);
    else if (tag === MsgTag.ERROR_EXIT) throw new SideErrorExit('', payload.length === 4 ? payload.readInt32LE(0) : ExitCode.PROTOCOL);
  };
  dst.reader.onMessage = (tag, payload) => {
    if (printSideMessage(term, o, tag, payload)) return;
    if (tag === MsgTag.ERROR_EXIT) throw new SideErrorExit('', payload.length === 4 ? payload.readInt32LE(0) : ExitCode.PROTOCOL);
  };
  // Either side's reader may wait while the other side's output sits unflushed.
  const flushBoth = (): void => {
    src.writer.flush();
    dst.writer.flush();
  };
  src.reader.onStarve = flushBoth;
  dst.reader.onStarve = flushBoth;
}

/** Tags a loop's failure with the side whose stream it was reading. */
class SideFailure extends Error {
  constructor(
    readonly side: Side,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

function bySide<T>(side: Side, p: Promise<T>): Promise<T> {
  return p.catch((err: unknown) => {
    throw err instanceof SideFailure ? err : new SideFailure(side, err);
  });
}

function codeOf(err: unknown): number {
  const inner = err instanceof SideFailure ? err.cause : err;
  if (inner instanceof UnexpectedEofError) return ExitCode.STREAMIO;
  if (inner instanceof RsyncError) return inner.code;
  return ExitCode.PROTOCOL;
}

function describe(o: RelayOptions, side: Side): string {
  const spec = side.role === 'source' ? o.src : o.dst;
  return `the ${side.role} (${spec.host}:${spec.path})`;
}

function failureLine(o: RelayOptions, err: unknown): string {
  if (!(err instanceof SideFailure)) return `rrsyncd relay: ${err instanceof Error ? err.message : String(err)}`;
  const who = describe(o, err.side);
  if (err.cause instanceof UnexpectedEofError) return `rrsyncd relay: connection to ${who} closed unexpectedly`;
  if (err.cause instanceof SideErrorExit) return `rrsyncd relay: ${who} ended the transfer with an error (code ${err.cause.code})`;
  return `rrsyncd relay: ${who}: ${err.message}`;
}

async function relaySession(src: Side, dst: Side, o: RelayOptions, term: Terminal, onTransfer: (t: Transfer) => void): Promise<{ list: RelayedList; transfer: Transfer }> {
  const n = await handshake(src, dst, o);
  src.reader.setMultiplexed(true);
  src.writer.setMultiplexed(src.protocol >= 30);
  dst.reader.setMultiplexed(true);
  dst.writer.setMultiplexed(dst.protocol >= 30);
  writeFilterList(src.writer, rulesFor(o, 'source', src.protocol)!);
  src.writer.flush();
  const dstRules = rulesFor(o, 'destination', dst.protocol);
  if (dstRules) writeFilterList(dst.writer, dstRules);
  if (o.verbose) term.out('receiving file list ... ');
  const sameFileSums = sameStrongSums(n.sums[0], n.sums[1]);
  const list = await bySide(src, relayFileList(src, dst, flistOptionsFor(src, o, n.sums[0]), flistOptionsFor(dst, o, n.sums[1]), sameFileSums));
  if (o.verbose) term.out('done\n');
  const transfer = new Transfer({ src, dst, o, list, mode: n.mode, sums: n.sums, compress: n.compress, term });
  onTransfer(transfer);
  const [requests, answers] = transfer.run();
  const loops = [bySide(dst, requests), bySide(src, answers)];
  // The first failure ends both connections, so the other loop cannot wait forever.
  for (const l of loops) l.catch(() => abortInputs(src, dst));
  await Promise.all(loops);
  return { list, transfer };
}

function abortInputs(src: Side, dst: Side): void {
  src.closeInput();
  dst.closeInput();
}

function exitStatus(e: SideExit): number {
  return e.signal ? ExitCode.SIGNAL : e.code;
}

export async function runRelay(argv: string[], term: Terminal = processTerminal()): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    term.out(RELAY_USAGE);
    return 0;
  }
  let o: RelayOptions;
  try {
    o = parseRelayArgs(argv);
  } catch (err) {
    term.err(`${(err as Error).message}\n`);
    return err instanceof RsyncError ? err.code : ExitCode.SYNTAX;
  }
  await Promise.all([initChecksums(hashWasmBinaries()), initCompression()]);
  const seed = randomInt(1, 0x7fffffff);
  const stderr = (b: Buffer): void => term.err(b.toString('latin1'));
  const src = new Side('source', remoteCommand(o, 'source', seed), stderr);
  const dst = new Side('destination', remoteCommand(o, 'destination', seed), stderr);
  let transfer: Transfer | undefined;
  installMessages(src, dst, o, term, () => transfer);
  const started = Date.now();
  let relayCode = 0;
  let result: { list: RelayedList; transfer: Transfer } | undefined;
  try {
    result = await relaySession(src, dst, o, term, (t) => (transfer = t));
  } catch (err) {
    relayCode = codeOf(err);
    abortInputs(src, dst);
    term.err(`${failureLine(o, err)}\n`);
  }
  const [se, de] = await Promise.all([src.shutdown(SHUTDOWN_GRACE_MS), dst.shutdown(SHUTDOWN_GRACE_MS)]);
  for (const [side, e] of [[src, se], [dst, de]] as const) {
    if (side.failure) term.err(`rrsyncd relay: ${side.failure}\n`);
    else if (exitStatus(e) !== 0 && result) term.err(`rrsyncd relay: ${describe(o, side)} exited with code ${exitStatus(e)}\n`);
  }
  if (result) {
    printSummary(term, o, {
      summary: summarize(result.list.srcSorted),
      totals: result.transfer.totals,
      flistBytes: result.list.wireBytes,
      readFromSource: src.reader.totalRead,
      writtenToDestination: dst.writer.totalWritten,
      seconds: (Date.now() - started) / 1000,
    });
  }
  return Math.max(relayCode, exitStatus(se), exitStatus(de));
}
