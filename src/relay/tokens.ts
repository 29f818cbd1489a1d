/**
 * One file's token stream, source -> destination: forwarded byte for byte when both sides use the
 * same codec (only the framing is parsed, to find the end and count matched blocks), or decoded
 * and encoded again when they differ (block references are kept as they are).
 */
import { ProtocolError } from '../protocol/errors.js';
import type { ProtocolReader } from '../protocol/input.js';
import type { ProtocolWriter } from '../protocol/output.js';
import { DEFLATED_DATA, END_FLAG, TOKEN_LONG, TOKEN_REL, TOKENRUN_LONG, TOKENRUN_REL } from '../protocol/compress/framing.js';
import { createTokenDecoder, createTokenEncoder, type CompressName, type TokenDecoder, type TokenEncoder } from '../protocol/token.js';
import type { Hasher } from '../protocol/checksum.js';
import type { SumHead } from '../protocol/sumhead.js';
import type { TokenMode } from './agreement.js';

/** Plain literal runs are at most CHUNK_SIZE (32 KiB) in rsync; anything far beyond is corrupt. */
const MAX_PLAIN_LITERAL = 1 << 24;
const COPY_PIECE = 64 * 1024;
const NO_DATA = Buffer.alloc(0);

export interface FileTally {
  /** Literal bytes (exact for plain and transcoded streams; compressed bytes for raw -z). */
  literal: number;
  /** Number of basis blocks referenced. */
  matchedBlocks: number;
  /** Whether the last block (the short one) was referenced. */
  matchedLast: boolean;
}

export interface TokenRelay {
  /** Forwards one file's tokens (up to and including the end marker). */
  forward(head: SumHead, tally: FileTally, onData: () => void, hasher?: Hasher): Promise<void>;
}

async function copyBytes(r: ProtocolReader, w: ProtocolWriter, n: number, onData: () => void): Promise<void> {
  let left = n;
  while (left > 0) {
    const piece = await r.readSome(Math.min(left, COPY_PIECE));
    w.bytes(piece);
    left -= piece.length;
    onData();
    await w.writable();
  }
}

function countMatch(head: SumHead, tally: FileTally, index: number, run: number): void {
  tally.matchedBlocks += run;
  if (index + run - 1 === head.count - 1) tally.matchedLast = true;
}

class RawPlainRelay implements TokenRelay {
  constructor(
    private readonly r: ProtocolReader,
    private readonly w: ProtocolWriter,
  ) {}

  async forward(head: SumHead, tally: FileTally, onData: () => void): Promise<void> {
    for (;;) {
      const n = await this.r.readI32();
      this.w.i32(n);
      if (n === 0) return;
      if (n < 0) {
        countMatch(head, tally, -(n + 1), 1);
        onData();
        continue;
      }
      if (n > MAX_PLAIN_LITERAL) throw new ProtocolError(`invalid literal length ${n} from the source`);
      tally.literal += n;
      await copyBytes(this.r, this.w, n, onData);
    }
  }
}

/**
 * rsync token.c framing: flag byte, then a 14-bit data count, a token number or a run. Relative
 * tokens count from the last block of the previous run (0 at the start of a file).
 */
class RawCompressedRelay implements TokenRelay {
  private lastRunEnd = 0;

  constructor(
    private readonly r: ProtocolReader,
    private readonly w: ProtocolWriter,
  ) {}

  async forward(head: SumHead, tally: FileTally, onData: () => void): Promise<void> {
    const r = this.r;
    const w = this.w;
    this.lastRunEnd = 0;
    for (;;) {
      const flag = await r.readU8();
      w.u8(flag);
      if (flag === END_FLAG) return;
      if ((flag & 0xc0) === DEFLATED_DATA) {
        const lo = await r.readU8();
        w.u8(lo);
        const n = ((flag & 0x3f) << 8) | lo;
        tally.literal += n;
        await copyBytes(r, w, n, onData);
        continue;
      }
      let token: number;
      let run = 0;
      if ((flag & 0x80) === 0) {
        if (flag !== TOKEN_LONG && flag !== TOKENRUN_LONG) throw new ProtocolError(`invalid token flag 0x${flag.toString(16)} from the source`);
        token = await r.readI32();
        w.i32(token);
        if (flag === TOKENRUN_LONG) run = await this.readRun();
      } else {
        token = this.lastRunEnd + (flag & 0x3f);
        if ((flag & 0xc0) === TOKENRUN_REL) run = await this.readRun();
        else if ((flag & 0xc0) !== TOKEN_REL) throw new ProtocolError(`invalid token flag 0x${flag.toString(16)} from the source`);
      }
      countMatch(head, tally, token, run + 1);
      this.lastRunEnd = token + run;
      onData();
    }
  }

  private async readRun(): Promise<number> {
    const lo = await this.r.readU8();
    const hi = await this.r.readU8();
    this.w.u8(lo);
    this.w.u8(hi);
    return lo | (hi << 8);
  }
}

class TranscodingRelay implements TokenRelay {
  private readonly decoder: TokenDecoder;
  private readonly encoder: TokenEncoder;

  constructor(r: ProtocolReader, private readonly w: ProtocolWriter, from: CompressName, to: CompressName, fromProtocol: number, toProtocol: number) {
    this.decoder = createTokenDecoder(r, from, fromProtocol);
    this.encoder = createTokenEncoder(w, to, undefined, toProtocol);
  }

  async forward(head: SumHead, tally: FileTally, onData: () => void, hasher?: Hasher): Promise<void> {
    this.decoder.beginFile(head.count);
    this.encoder.beginFile();
    for (;;) {
      const tok = await this.decoder.next();
      if (tok.kind === 'end') break;
      if (tok.kind === 'literal') {
        tally.literal += tok.data.length;
        hasher?.update(tok.data);
        this.encoder.literal(tok.data);
        onData();
      } else {
        if (hasher) throw new ProtocolError('the source sent a block reference for a whole-file transfer');
        countMatch(head, tally, tok.index, 1);
        this.encoder.match(tok.index, NO_DATA);
        onData();
      }
      await this.w.writable();
    }
    this.encoder.endFile();
  }
}

export function createTokenRelay(
  mode: TokenMode,
  r: ProtocolReader,
  w: ProtocolWriter,
  compress: [CompressName, CompressName],
  protocols: [number, number],
): TokenRelay {
  if (mode === 'raw') return compress[0] === 'none' ? new RawPlainRelay(r, w) : new RawCompressedRelay(r, w);
  return new TranscodingRelay(r, w, compress[0], compress[1], protocols[0], protocols[1]);
}
