/**
 * zstd token codec: ONE compression/decompression context for the whole session (rsync never
 * resets it between files and never ends the frame). Literal data is compressed with
 * ZSTD_e_continue, and with ZSTD_e_flush when a token or the end of the file follows.
 */
import { ExitCode, ProtocolError } from '../errors.js';
import type { ProtocolWriter } from '../output.js';
import { MAX_DATA_COUNT, writeDataHeader, type LiteralCompressor, type LiteralDecompressor } from './framing.js';
import { zstdBinding } from '../../patches/zstd-napi.js';

const binding = zstdBinding;

const ZSTD_DEFAULT_LEVEL = 3;
/** Decompressed pieces handed to the receiver (rsync: 2 x ZSTD_DStreamOutSize()). */
const ZSTD_OUT_PIECE = 128 * 1024;
/** Same default limit as libzstd (ZSTD_WINDOWLOG_LIMIT_DEFAULT): refuses frames needing > 128 MiB. */
const ZSTD_WINDOW_LOG_MAX = 27;

export function clampZstdLevel(level: number | undefined): number {
  if (level === undefined || level === 0) return ZSTD_DEFAULT_LEVEL;
  return Math.max(binding.minCLevel(), Math.min(binding.maxCLevel(), Math.floor(level)));
}

export class ZstdCompressor implements LiteralCompressor {
  private readonly cctx = new binding.CCtx();
  private readonly out = Buffer.allocUnsafe(MAX_DATA_COUNT);
  constructor(
    private readonly w: ProtocolWriter,
    level: number,
  ) {
    this.cctx.setParameter(binding.CParameter.compressionLevel, level);
  }

  /** The session context persists; a per-file level is not applied (rsync can't either). */
  beginFile(): void {}

  send(data: Buffer, final: boolean): void {
    this.compress(data, final ? binding.EndDirective.flush : binding.EndDirective.continue);
  }

  matched(): void {}

  /** rsync's loop: 16383-byte output buffer, every non-empty output sent as one chunk. */
  private compress(input: Buffer, op: (typeof binding.EndDirective)[keyof typeof binding.EndDirective]): void {
    let src = input;
    for (;;) {
      const [remaining, produced, consumed] = this.cctx.compressStream2(this.out, src, op);
      src = src.subarray(consumed);
      if (produced > 0) {
        writeDataHeader(this.w, produced);
        this.w.bytes(this.out.subarray(0, produced));
      }
      const finished = op === binding.EndDirective.flush ? remaining === 0 : src.length === 0;
      if (finished) return;
    }
  }
}

export class ZstdDecompressor implements LiteralDecompressor {
  private readonly dctx = new binding.DCtx();
  private readonly out = Buffer.allocUnsafe(ZSTD_OUT_PIECE);
  private in: Buffer = Buffer.alloc(0);
  private more = false;

  constructor() {
    this.dctx.setParameter(binding.DParameter.windowLogMax, ZSTD_WINDOW_LOG_MAX);
  }

  beginFile(): void {}

  input(chunk: Buffer): void {
    this.in = chunk;
    this.more = true;
  }

  output(): Buffer | null {
    while (this.more) {
      let result: [number, number, number];
      try {
        result = this.dctx.decompressStream(this.out, this.in);
      } catch (e) {
        throw new ProtocolError(`zstd decompression failed: ${(e as Error).message}`, ExitCode.STREAMIO);
      }
      const [, produced, consumed] = result;
      this.in = this.in.subarray(consumed);
      // Same rule as rsync: done once the input is used up and the output buffer was not filled.
      if (this.in.length === 0 && produced < this.out.length) this.more = false;
      if (produced > 0) return Buffer.from(this.out.subarray(0, produced));
      if (consumed === 0 && this.more) throw new ProtocolError('zstd decompression made no progress', ExitCode.STREAMIO);
    }
    return null;
  }

  endOfData(): void {}
  matched(): void {}
}
