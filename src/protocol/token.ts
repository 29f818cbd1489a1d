/**
 * The token stream that carries a file's data (sender -> receiver): literal bytes and references
 * to blocks of the receiver's basis file, plain (docs/protocol.md §8.2) or compressed (§8.4, rsync
 * token.c). One encoder / decoder per session: zstd keeps its context across files.
 */
import { ProtocolError } from './errors.js';
import type { ProtocolReader } from './input.js';
import type { ProtocolWriter } from './output.js';
import {
  CHUNK_SIZE,
  DEFLATED_DATA,
  END_FLAG,
  PieceBuffer,
  TOKEN_LONG,
  TOKEN_REL,
  TOKENRUN_LONG,
  TOKENRUN_REL,
  type LiteralCompressor,
  type LiteralDecompressor,
} from './compress/framing.js';
import { Lz4Compressor, Lz4Decompressor } from './compress/lz4.js';
import { clampZlibLevel, nativeZlibAvailable, ZlibCompressor, ZlibDecompressor } from './compress/zlib.js';
import { clampZstdLevel, ZstdCompressor, ZstdDecompressor, type WindowCharge } from './compress/zstd.js';

export type CompressName = 'none' | 'zlib' | 'zlibx' | 'zstd' | 'lz4';

/** Announced in this order (rsync 3.2+ server list). */
export const SUPPORTED_COMPRESSIONS: CompressName[] = ['zstd', 'lz4', 'zlibx', 'zlib', 'none'];

/** rsync accepts exactly these spellings (compat.c valid_compressions_items). */
export function canonicalCompressName(name: string): CompressName | undefined {
  return (SUPPORTED_COMPRESSIONS as string[]).includes(name) ? (name as CompressName) : undefined;
}

export function defaultCompressLevel(name: CompressName): number {
  switch (name) {
    case 'zlib':
    case 'zlibx':
      return 6;
    case 'zstd':
      return 3;
    default:
      return 0;
  }
}

/** Runs the zlib internal-handle self-test once (every codec initialises synchronously). */
export async function initCompression(): Promise<void> {
  nativeZlibAvailable();
}

/** Literal pieces returned by decoders never exceed this. */
const MAX_LITERAL_PIECE = 256 * 1024;
/** rsync's MAX_TOKEN_INDEX: token numbers above it are invalid. */
const MAX_TOKEN_INDEX = 0x7ffffffe;
/** A compressed token run covers at most 65536 consecutive blocks (16-bit extra count). */
const MAX_RUN = 65536;

export interface TokenEncoder {
  beginFile(opts?: { level?: number }): void;
  literal(data: Buffer): void;
  match(blockIndex: number, blockData: Buffer): void;
  endFile(): void;
}

export type Token = { kind: 'literal'; data: Buffer } | { kind: 'match'; index: number } | { kind: 'end' };

export interface TokenDecoder {
  beginFile(maxBlockIndex: number): void;
  next(): Promise<Token>;
  matched(blockData: Buffer): void;
}

export function createTokenEncoder(w: ProtocolWriter, name: CompressName, level: number | undefined, protocol: number): TokenEncoder {
  switch (name) {
    case 'none':
      return new PlainTokenEncoder(w);
    case 'zlib':
      return new CompressedTokenEncoder(w, new ZlibCompressor(w, clampZlibLevel(level), true, protocol));
    case 'zlibx':
      return new CompressedTokenEncoder(w, new ZlibCompressor(w, clampZlibLevel(level), false, protocol));
    case 'zstd':
      return new CompressedTokenEncoder(w, new ZstdCompressor(w, clampZstdLevel(level)));
    case 'lz4':
      return new CompressedTokenEncoder(w, new Lz4Compressor(w));
  }
}

/** `chargeWindow` is told the history a zstd stream makes the decoder reserve, before it does. */
export function createTokenDecoder(r: ProtocolReader, name: CompressName, protocol: number, chargeWindow?: WindowCharge): TokenDecoder {
  switch (name) {
    case 'none':
      return new PlainTokenDecoder(r);
    case 'zlib':
      return new CompressedTokenDecoder(r, new ZlibDecompressor(true, protocol), true);
    case 'zlibx':
      return new CompressedTokenDecoder(r, new ZlibDecompressor(false, protocol), true);
    case 'zstd':
      return new CompressedTokenDecoder(r, new ZstdDecompressor(chargeWindow), false);
    case 'lz4':
      return new CompressedTokenDecoder(r, new Lz4Decompressor(), false);
  }
}

function checkBlockIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > MAX_TOKEN_INDEX) throw new RangeError(`bad block index ${index}`);
}

/* ------------------------------------------------------------------------------------------ */
/* Plain: int32 n > 0 + n literal bytes | int32 -(i+1) = block i | int32 0 = end              */

class PlainTokenEncoder implements TokenEncoder {
  /** Literal bytes are coalesced into CHUNK_SIZE chunks, as rsync's simple_send_token writes them. */
  private readonly pending = new PieceBuffer(CHUNK_SIZE);
  private readonly writeChunk = (chunk: Buffer): number => {
    this.w.i32(chunk.length);
    this.w.bytes(chunk);
    return chunk.length;
  };

  constructor(private readonly w: ProtocolWriter) {}

  beginFile(): void {
    this.pending.take();
  }

  literal(data: Buffer): void {
    this.pending.push(data, this.writeChunk);
  }

  private flushLiteral(): void {
    if (this.pending.length > 0) this.writeChunk(this.pending.take());
  }

  match(blockIndex: number): void {
    checkBlockIndex(blockIndex);
    this.flushLiteral();
    this.w.i32(-(blockIndex + 1));
  }

  endFile(): void {
    this.flushLiteral();
    this.w.i32(0);
  }
}

class PlainTokenDecoder implements TokenDecoder {
  private residue = 0;
  private maxBlock = 0;

  constructor(private readonly r: ProtocolReader) {}

  beginFile(maxBlockIndex: number): void {
    this.maxBlock = maxBlockIndex;
    this.residue = 0;
  }

  async next(): Promise<Token> {
    if (this.residue === 0) {
      const n = await this.r.readI32();
      if (n === 0) return { kind: 'end' };
      if (n < 0) {
        const index = -(n + 1);
        if (index >= this.maxBlock) throw new ProtocolError(`invalid block token ${index} (file has ${this.maxBlock} blocks)`);
        return { kind: 'match', index };
      }
      // Any positive length is legal (some peers send 64 KiB runs); it is read in bounded pieces.
      this.residue = n;
    }
    const data = await this.r.readSome(Math.min(this.residue, MAX_LITERAL_PIECE));
    this.residue -= data.length;
    return { kind: 'literal', data };
  }

  matched(): void {}
}

/* ------------------------------------------------------------------------------------------ */
/* Compressed framing (token.c): lazy token runs relative to last_run_end, DEFLATED_DATA chunks */

/** Literal bytes held back at most (more is sent at once as data-only calls). */
const HOLD_MAX = 1024 * 1024;

class CompressedTokenEncoder implements TokenEncoder {
  private lastRunEnd = 0;
  private runStart = -1; // -1: no run pending
  private runLast = -1;
  /**
   * The latest literal() data, not yet compressed: if another literal() follows it is a data-only
   * call (rsync's token -2, no flush); if a token or EOF follows it is that call's flushed data.
   */
  private held: Buffer | null = null;
  /** A data-only call went out: the next token/EOF must flush even without data (flush_pending). */
  private flushPending = false;

  constructor(
    private readonly w: ProtocolWriter,
    private readonly codec: LiteralCompressor,
  ) {}

  beginFile(opts?: { level?: number }): void {
    this.lastRunEnd = 0;
    this.runStart = -1;
    this.runLast = -1;
    this.held = null;
    this.flushPending = false;
    this.codec.beginFile(opts?.level);
  }

  literal(data: Buffer): void {
    if (data.length === 0) return;
    this.emitRun(); // literal data ends the pending run (it precedes the data on the wire)
    if (this.held) this.sendDataOnly(this.held);
    let rest = data;
    if (rest.length > HOLD_MAX) {
      this.sendDataOnly(rest.subarray(0, rest.length - HOLD_MAX));
      rest = rest.subarray(rest.length - HOLD_MAX);
    }
    this.held = Buffer.from(rest); // the caller may reuse its buffer
  }

  match(blockIndex: number, blockData: Buffer): void {
    checkBlockIndex(blockIndex);
    this.sendFinal();
    const extendsRun = this.runStart >= 0 && blockIndex === this.runLast + 1 && blockIndex < this.runStart + MAX_RUN;
    if (extendsRun) {
      this.runLast = blockIndex;
    } else {
      this.emitRun();
      this.runStart = this.runLast = blockIndex;
    }
    this.codec.matched(blockData);
  }

  endFile(): void {
    this.emitRun();
    this.sendFinal();
    this.w.u8(END_FLAG);
  }

  private sendDataOnly(data: Buffer): void {
    this.codec.send(data, false);
    this.flushPending = true;
    this.held = null;
  }

  private sendFinal(): void {
    if (!this.held && !this.flushPending) return;
    this.codec.send(this.held ?? EMPTY, true);
    this.held = null;
    this.flushPending = false;
  }

  private emitRun(): void {
    if (this.runStart < 0) return;
    const rel = this.runStart - this.lastRunEnd;
    const extra = this.runLast - this.runStart;
    if (rel >= 0 && rel <= 63) {
      this.w.u8((extra === 0 ? TOKEN_REL : TOKENRUN_REL) + rel);
    } else {
      this.w.u8(extra === 0 ? TOKEN_LONG : TOKENRUN_LONG);
      this.w.i32(this.runStart);
    }
    if (extra !== 0) {
      this.w.u8(extra & 0xff);
      this.w.u8(extra >> 8);
    }
    this.lastRunEnd = this.runLast;
    this.runStart = this.runLast = -1;
  }
}

const EMPTY = Buffer.alloc(0);

type RecvState = 'idle' | 'inflating' | 'inflated' | 'running';

class CompressedTokenDecoder implements TokenDecoder {
  private state: RecvState = 'idle';
  private rxToken = 0;
  private rxRun = 0;
  private savedFlag = -1;
  private maxBlock = 0;

  constructor(
    private readonly r: ProtocolReader,
    private readonly codec: LiteralDecompressor,
    /** zlib/zlibx: the sender stripped each flush's 00 00 ff ff; we re-insert it. */
    private readonly stripsSyncMarker: boolean,
  ) {}

  beginFile(maxBlockIndex: number): void {
    this.maxBlock = maxBlockIndex;
    this.state = 'idle';
    this.rxToken = 0;
    this.rxRun = 0;
    this.savedFlag = -1;
    this.codec.beginFile();
  }

  async next(): Promise<Token> {
    for (;;) {
      if (this.state === 'running') return this.nextInRun();
      if (this.state === 'inflating') {
        const data = await this.codec.output();
        if (data && data.length > 0) return { kind: 'literal', data };
        if (!data) this.state = this.stripsSyncMarker ? 'inflated' : 'idle';
        continue;
      }
      const flag = this.savedFlag >= 0 ? this.savedFlag : await this.r.readU8();
      this.savedFlag = -1;
      if ((flag & 0xc0) === DEFLATED_DATA) {
        const n = ((flag & 0x3f) << 8) | (await this.r.readU8());
        this.codec.input(await this.r.readBytes(n));
        this.state = 'inflating';
        continue;
      }
      if (this.state === 'inflated') {
        this.state = 'idle';
        await this.codec.endOfData();
      }
      if (flag === END_FLAG) return { kind: 'end' };
      return this.tokenFromFlag(flag);
    }
  }

  private async tokenFromFlag(flag: number): Promise<Token> {
    let isRun: boolean;
    if (flag & TOKEN_REL) {
      const incr = flag & 0x3f;
      if (this.rxToken > MAX_TOKEN_INDEX - incr) this.invalid();
      this.rxToken += incr;
      isRun = (flag & 0x40) !== 0;
    } else if (flag === TOKEN_LONG || flag === TOKENRUN_LONG) {
      const t = await this.r.readI32();
      if (t < 0 || t > MAX_TOKEN_INDEX) this.invalid();
      this.rxToken = t;
      isRun = flag === TOKENRUN_LONG;
    } else {
      throw new ProtocolError(`invalid flag byte 0x${flag.toString(16)} in compressed token stream`);
    }
    if (isRun) {
      const run = (await this.r.readU8()) | ((await this.r.readU8()) << 8);
      if (run <= 0 || this.rxToken > MAX_TOKEN_INDEX - run) this.invalid();
      if (this.rxToken + run >= this.maxBlock) this.outOfRange(this.rxToken + run);
      this.rxRun = run;
      this.state = 'running';
    }
    return this.matchToken(this.rxToken);
  }

  private nextInRun(): Token {
    this.rxToken++;
    if (--this.rxRun === 0) this.state = 'idle';
    return this.matchToken(this.rxToken);
  }

  private matchToken(index: number): Token {
    if (index >= this.maxBlock) this.outOfRange(index);
    return { kind: 'match', index };
  }

  private invalid(): never {
    throw new ProtocolError('invalid token number in compressed stream');
  }

  private outOfRange(index: number): never {
    throw new ProtocolError(`invalid block token ${index} (file has ${this.maxBlock} blocks)`);
  }

  matched(blockData: Buffer): void {
    this.codec.matched(blockData);
  }
}

