/**
 * Shared pieces of the compressed token stream (rsync token.c, every protocol with `-z`):
 * flag bytes, the DEFLATED_DATA chunk writer and the codec interfaces token.ts drives.
 */
import type { ProtocolWriter } from '../output.js';

export const END_FLAG = 0x00;
export const TOKEN_LONG = 0x20;
export const TOKENRUN_LONG = 0x21;
export const DEFLATED_DATA = 0x40;
export const TOKEN_REL = 0x80;
export const TOKENRUN_REL = 0xc0;
/** Largest DEFLATED_DATA payload: a 14-bit count. */
export const MAX_DATA_COUNT = 16383;
/** rsync's CHUNK_SIZE: literal input is handed to the compressor in pieces of this size. */
export const CHUNK_SIZE = 32 * 1024;

export function writeDataHeader(w: ProtocolWriter, n: number): void {
  w.u8(DEFLATED_DATA | (n >> 8));
  w.u8(n & 0xff);
}

/**
 * Sender half of a codec. The framing layer calls send() the way rsync calls send_token():
 * `final = false` is a data-only call (token -2: no flush), `final = true` is the data that
 * precedes a token or the end of the file (flushed: Z_SYNC_FLUSH / ZSTD_e_flush).
 */
export interface LiteralCompressor {
  /** A new file starts (zlib resets its stream here; zstd keeps its session context). */
  beginFile(level: number | undefined): void;
  send(data: Buffer, final: boolean): void;
  /** A matched block was sent as a token (zlib adds it to the compressor's history). */
  matched(block: Buffer): void;
}

/** Receiver half of a codec. */
export interface LiteralDecompressor {
  beginFile(): void;
  /** One DEFLATED_DATA payload (it stays referenced until output() returns null). */
  input(chunk: Buffer): void;
  /** The next bounded piece of decompressed data, or null once the input is used up. */
  output(): Buffer | null | Promise<Buffer | null>;
  /** zlib only: a non-data flag follows inflated data (re-insert the stripped 00 00 ff ff). */
  endOfData(): void | Promise<void>;
  /** The receiver copied a matched block from its basis (zlib: fake stored block). */
  matched(block: Buffer): void;
}

/**
 * Accumulates literal bytes into pieces of `size` and hands a full piece to `onPiece` only once
 * more data is known to follow, so the last piece before a flush is always left for the flush
 * (this reproduces how rsync feeds its compressor: CHUNK_SIZE pieces, the last one flushed).
 * `onPiece` returns how many bytes it consumed (lz4 may take only half); the rest stays pending.
 */
export class PieceBuffer {
  private readonly buf: Buffer;
  private fill = 0;

  constructor(readonly size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  get length(): number {
    return this.fill;
  }

  push(data: Buffer, onPiece: (piece: Buffer) => number): void {
    let off = 0;
    while (off < data.length) {
      if (this.fill === this.size) {
        const used = onPiece(this.buf);
        this.buf.copyWithin(0, used, this.fill);
        this.fill -= used;
        continue;
      }
      if (this.fill === 0 && data.length - off > this.size) {
        off += onPiece(data.subarray(off, off + this.size));
        continue;
      }
      const n = Math.min(this.size - this.fill, data.length - off);
      data.copy(this.buf, this.fill, off, off + n);
      this.fill += n;
      off += n;
    }
  }

  /** The pending bytes (a view, valid until the next push) and an empty buffer afterwards. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.fill);
    this.fill = 0;
    return out;
  }
}
