/**
 * The transfer phase, two loops at once: the destination's requests (index, item flags, block
 * sums) go to the source, and the source's answers (sum head, tokens, file checksum) go to the
 * destination. The relay is the generator the source talks to and the sender the destination
 * talks to, so each side's end-of-phase markers and goodbye follow that side's own protocol.
 */
import { NDX_DEL_STATS, NDX_DONE } from '../protocol/ndx.js';
import { ProtocolError } from '../protocol/errors.js';
import { MsgTag } from '../protocol/mux.js';
import { createTransferHasher, digestLength, type ChecksumSpec } from '../protocol/checksum.js';
import { readSumHead, validateSumHead, writeSumHead, type SumHead } from '../protocol/sumhead.js';
import { isRegular, type FileEntry } from '../protocol/flist/entry.js';
import type { CompressName } from '../protocol/token.js';
import { ITEM } from '../protocol/itemize.js';
import type { RelayOptions } from './args.js';
import type { Side } from './side.js';
import type { RelayedList } from './file-list.js';
import type { TokenMode } from './agreement.js';
import { createTokenRelay, type FileTally, type TokenRelay } from './tokens.js';
import { logItem, type Terminal } from './messages.js';
import { Progress } from './progress.js';

const WHOLE_FILE_HEAD: SumHead = { count: 0, blength: 0, s2length: 0, remainder: 0 };
const SUMS_PIECE = 64 * 1024;

interface Pending {
  dstNdx: number;
  iflags: number;
  basisType: number | undefined;
  xname: Buffer | undefined;
  head: SumHead;
}

interface DeleteCounts {
  files: number;
  dirs: number;
  symlinks: number;
  devices: number;
  specials: number;
}

export interface TransferTotals {
  filesTransferred: number;
  transferredSize: number;
  literal: number;
  matched: number;
  deleted: DeleteCounts | undefined;
}

export interface TransferSetup {
  src: Side;
  dst: Side;
  o: RelayOptions;
  list: RelayedList;
  mode: TokenMode;
  sums: [ChecksumSpec, ChecksumSpec];
  compress: [CompressName, CompressName];
  term: Terminal;
}

export class Transfer {
  readonly totals: TransferTotals = { filesTransferred: 0, transferredSize: 0, literal: 0, matched: 0, deleted: undefined };
  private readonly pending = new Map<number, Pending[]>();
  private readonly tokens: TokenRelay;
  private readonly progress: Progress | undefined;
  private markE2Written!: () => void;
  private readonly e2Written = new Promise<void>((r) => {
    this.markE2Written = r;
  });

  constructor(private readonly s: TransferSetup) {
    this.tokens = createTokenRelay(s.mode, s.src.reader, s.dst.writer, s.compress, [s.src.protocol, s.dst.protocol]);
    if (s.o.progress) this.progress = new Progress(s.term);
  }

  /**
   * Runs both directions. A source whose file list is empty exits right after it (as rsync's
   * server sender does): the relay then ends the destination's phases on its own.
   */
  run(): [Promise<void>, Promise<void>] {
    if (this.s.list.srcSorted.length === 0) {
      this.markE2Written();
      return [this.requests(true), Promise.resolve()];
    }
    return [this.requests(false), this.answers()];
  }

  // ---- source messages that concern the transfer ----

  /** MSG_NO_SEND: the source could not open a file it was asked for; the destination is told. */
  onSourceNoSend(srcNdx: number): void {
    const p = this.pending.get(srcNdx)?.shift();
    if (!p) throw new ProtocolError(`the source refused a file that was not requested: ${srcNdx}`);
    if (this.s.dst.protocol >= 30) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(p.dstNdx, 0);
      this.s.dst.writer.message(MsgTag.NO_SEND, b);
    }
  }

  // ---- destination -> source ----

  private async requests(sourceDone: boolean): Promise<void> {
    const { src, dst } = this.s;
    const r = dst.reader;
    // Without a source, our end-of-phase echoes go straight back to the destination.
    const w = sourceDone ? dst.writer : src.writer;
    let phase = 0;
    while (phase < 2) {
      const ndx = await r.readNdx();
      if (ndx === NDX_DONE) {
        phase++;
        w.ndx(NDX_DONE);
        // The source ends its phases at 2 (protocol >= 29); the destination's later ones are ours.
        if (phase === 2 && src.protocol >= 29 && !sourceDone) w.ndx(NDX_DONE);
        w.flush();
        continue;
      }
      if (ndx === NDX_DEL_STATS && dst.protocol >= 31) {
        await this.readDeleteStats();
        continue;
      }
      await this.request(ndx);
    }
    await this.e2Written;
    await this.destinationGoodbye();
  }

  private async request(ndx: number): Promise<void> {
    const { src, dst, list, o } = this.s;
    const r = dst.reader;
    if (ndx < 0) throw new ProtocolError(`Invalid file index ${ndx} from the destination`);
    const iflags = dst.protocol >= 29 ? await r.readU16() : ITEM.TRANSFER;
    const basisType = iflags & ITEM.BASIS_TYPE_FOLLOWS ? await r.readU8() : undefined;
    const xname = iflags & ITEM.XNAME_FOLLOWS ? await r.readVstring(4095) : undefined;
    const e = list.dstSorted[ndx];
    if (!e) {
      // Protocol 29 keep-alive: a request for index == count with only ITEM_IS_NEW.
      if (dst.protocol === 29 && ndx === list.dstSorted.length && iflags === ITEM.IS_NEW) return;
      throw new ProtocolError(`Invalid file index ${ndx} from the destination`);
    }
    logItem(this.s.term, o, iflags, e);
    if (!(iflags & ITEM.TRANSFER)) return;
    if (!isRegular(e)) throw new ProtocolError(`the destination asked for a non-regular file: ${e.name}`);
    if (o.dryRun) {
      this.echoToDestination(ndx, iflags, basisType, xname);
      return;
    }
    const head = await readSumHead(r);
    validateSumHead(head, dst.protocol, digestLength(this.s.sums[1].name));
    const srcNdx = list.dstToSrc[ndx]!;
    let queue = this.pending.get(srcNdx);
    if (!queue) this.pending.set(srcNdx, (queue = []));
    queue.push({ dstNdx: ndx, iflags, basisType, xname, head });

    const w = src.writer;
    w.ndx(srcNdx);
    if (src.protocol >= 29) {
      w.u16(iflags);
      if (basisType !== undefined) w.u8(basisType);
      if (xname !== undefined) w.vstring(xname);
    }
    const whole = this.s.mode === 'whole';
    writeSumHead(w, whole ? WHOLE_FILE_HEAD : head);
    let left = head.count * (4 + head.s2length);
    while (left > 0) {
      const piece = await r.readSome(Math.min(left, SUMS_PIECE));
      if (!whole) w.bytes(piece);
      left -= piece.length;
      await w.writable();
    }
    await w.writable();
  }

  private echoToDestination(ndx: number, iflags: number, basisType: number | undefined, xname: Buffer | undefined): void {
    const w = this.s.dst.writer;
    w.ndx(ndx);
    if (this.s.dst.protocol >= 29) {
      w.u16(iflags);
      if (basisType !== undefined) w.u8(basisType);
      if (xname !== undefined) w.vstring(xname);
    }
  }

  private async readDeleteStats(): Promise<void> {
    const r = this.s.dst.reader;
    const v: number[] = [];
    for (let i = 0; i < 5; i++) v.push(await r.readVarint());
    this.totals.deleted = { files: v[0]!, dirs: v[1]!, symlinks: v[2]!, devices: v[3]!, specials: v[4]! };
  }

  /** Reads to the destination's next NDX_DONE (items of late phases are only logged). */
  private async readDestinationDone(): Promise<void> {
    const { dst, list, o } = this.s;
    const r = dst.reader;
    for (;;) {
      const ndx = await r.readNdx();
      if (ndx === NDX_DONE) return;
      if (ndx === NDX_DEL_STATS && dst.protocol >= 31) {
        await this.readDeleteStats();
        continue;
      }
      const e = ndx >= 0 ? list.dstSorted[ndx] : undefined;
      if (!e || dst.protocol < 29) throw new ProtocolError(`Invalid packet at end of run (${ndx}) [destination]`);
      const iflags = await r.readU16();
      if (iflags & ITEM.BASIS_TYPE_FOLLOWS) await r.readU8();
      if (iflags & ITEM.XNAME_FOLLOWS) await r.readVstring(4095);
      if (iflags & ITEM.TRANSFER) throw new ProtocolError('got transfer request in phase 2 [destination]');
      logItem(this.s.term, o, iflags, e);
    }
  }

  /** The sending client's end: our final NDX_DONE, then the receiver's goodbye (and ours at 31+). */
  private async destinationGoodbye(): Promise<void> {
    const dst = this.s.dst;
    const w = dst.writer;
    await this.readDestinationDone();
    if (dst.protocol < 29) return;
    w.ndx(NDX_DONE);
    w.flush();
    await this.readDestinationDone();
    if (dst.protocol >= 31) {
      w.ndx(NDX_DONE);
      w.flush();
      await this.readDestinationDone();
    }
  }

  // ---- source -> destination ----

  private async answers(): Promise<void> {
    const { src, dst } = this.s;
    const r = src.reader;
    const w = dst.writer;
    let phase = 0;
    for (;;) {
      const ndx = await r.readNdx();
      if (ndx === NDX_DONE) {
        phase++;
        w.ndx(NDX_DONE);
        w.flush();
        if (phase === 2) break;
        continue;
      }
      await this.answer(ndx);
    }
    this.markE2Written();
    await this.sourceGoodbye();
  }

  private async answer(ndx: number): Promise<void> {
    const { src, dst, list } = this.s;
    const r = src.reader;
    const w = dst.writer;
    const e = ndx >= 0 ? list.srcSorted[ndx] : undefined;
    if (!e) throw new ProtocolError(`Invalid file index ${ndx} from the source`);
    const iflags = src.protocol >= 29 ? await r.readU16() : ITEM.TRANSFER;
    if (iflags & ITEM.BASIS_TYPE_FOLLOWS) await r.readU8();
    if (iflags & ITEM.XNAME_FOLLOWS) await r.readVstring(4095);
    if (!(iflags & ITEM.TRANSFER)) return;
    const p = this.pending.get(ndx)?.shift();
    if (!p) throw new ProtocolError(`the source sent a file that was not requested: ${e.name}`);
    const head = await readSumHead(r);
    validateSumHead(head, src.protocol, digestLength(this.s.sums[0].name));
    w.ndx(p.dstNdx);
    if (dst.protocol >= 29) {
      w.u16(p.iflags);
      if (p.basisType !== undefined) w.u8(p.basisType);
      if (p.xname !== undefined) w.vstring(p.xname);
    }
    writeSumHead(w, p.head);
    await this.forwardData(e, head);
  }

  private async forwardData(e: FileEntry, srcHead: SumHead): Promise<void> {
    const { src, dst } = this.s;
    const hasher = this.s.mode === 'whole' ? createTransferHasher(this.s.sums[1]) : undefined;
    const tally: FileTally = { literal: 0, matchedBlocks: 0, matchedLast: false };
    const progress = this.progress;
    progress?.start(e);
    const onData = progress ? (): void => progress.update(tally.literal + tally.matchedBlocks * srcHead.blength) : (): void => {};
    await this.tokens.forward(srcHead, tally, onData, hasher);
    const sum = Buffer.from(await src.reader.readBytes(digestLength(this.s.sums[0].name)));
    dst.writer.bytes(hasher ? hasher.digest() : sum);
    let matched = tally.matchedBlocks * srcHead.blength;
    if (tally.matchedLast && srcHead.remainder) matched -= srcHead.blength - srcHead.remainder;
    this.totals.filesTransferred++;
    this.totals.transferredSize += e.size;
    this.totals.matched += matched;
    this.totals.literal += Math.max(0, e.size - matched);
    progress?.finish(e.size);
    await dst.writer.writable();
  }

  /** The receiving client's end: the source's last NDX_DONE and its totals, then our goodbye. */
  private async sourceGoodbye(): Promise<void> {
    const src = this.s.src;
    const r = src.reader;
    const w = src.writer;
    if (src.protocol >= 29 && (await r.readNdx()) !== NDX_DONE) throw new ProtocolError('Invalid packet at end of run [source]');
    const n = src.protocol >= 29 ? 5 : 3;
    for (let i = 0; i < n; i++) await r.readVarlong30(3);
    w.ndx(NDX_DONE);
    w.flush();
    if (src.protocol >= 31) {
      if ((await r.readNdx()) !== NDX_DONE) throw new ProtocolError('Invalid packet at end of run [source]');
      w.ndx(NDX_DONE);
      w.flush();
    }
  }
}
