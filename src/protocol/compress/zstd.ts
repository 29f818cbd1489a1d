/**
 * zstd token codec: ONE compression/decompression context for the whole session (rsync never
 * resets it between files and never ends the frame). Literal data is compressed with
 * ZSTD_e_continue, and with ZSTD_e_flush when a token or the end of the file follows.
 */
import { ExitCode, ProtocolError } from '../errors.js';
import type { ProtocolWriter } from '../output.js';
import { MAX_DATA_COUNT, writeDataHeader, type LiteralCompressor, type LiteralDecompressor } from './framing.js';
import { zstdBinding } from '../../patches/zstd-napi.js';
import { decoderBytes, readFrameStart } from './zstd-frame.js';

const binding = zstdBinding;

const ZSTD_DEFAULT_LEVEL = 3;
/** Decompressed pieces handed to the receiver (rsync: 2 x ZSTD_DStreamOutSize()). */
const ZSTD_OUT_PIECE = 128 * 1024;
/**
 * Same default limit as libzstd (ZSTD_WINDOWLOG_LIMIT_DEFAULT): refuses frames needing > 128 MiB.
 * Not lower: a stock client at --compress-level=22 declares exactly 2^27 (zstd's level table).
 */
const ZSTD_WINDOW_LOG_MAX = 27;

/** Told how many more bytes the decoder is about to reserve for a larger window (it may throw). */
export type WindowCharge = (bytes: number) => void;

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

/**
 * Each frame's header is held back until it is complete, so the window it declares is charged
 * before the decoder reserves it (the decoder keeps its largest buffers for the session).
 */
export class ZstdDecompressor implements LiteralDecompressor {
  private readonly dctx = new binding.DCtx();
  private readonly out = Buffer.allocUnsafe(ZSTD_OUT_PIECE);
  private in: Buffer = Buffer.alloc(0);
  private more = false;
  /** The next input byte starts a frame; `header` holds its first bytes seen so far. */
  private frameStart = true;
  private header: Buffer = Buffer.alloc(0);
  private charged = 0;

  constructor(private readonly chargeWindow: WindowCharge = () => undefined) {
    this.dctx.setParameter(binding.DParameter.windowLogMax, ZSTD_WINDOW_LOG_MAX);
  }

  beginFile(): void {}

  input(chunk: Buffer): void {
    this.in = chunk;
    this.more = true;
  }

  output(): Buffer | null {
    while (this.more) {
      if (this.frameStart && !this.takeHeader()) {
        this.more = false;
        break;
      }
      let result: [number, number, number];
      try {
        result = this.dctx.decompressStream(this.out, this.in);
      } catch (e) {
        throw new ProtocolError(`zstd decompression failed: ${(e as Error).message}`, ExitCode.STREAMIO);
      }
      const [hint, produced, consumed] = result;
      this.in = this.in.subarray(consumed);
      // The decoder stops at the end of a frame (hint 0): what follows starts another.
      if (hint === 0) this.frameStart = true;
      // Same rule as rsync: done once the input is used up and the output buffer was not filled.
      if (this.in.length === 0 && produced < this.out.length) this.more = false;
      if (produced > 0) return Buffer.from(this.out.subarray(0, produced));
      if (consumed === 0 && this.more) throw new ProtocolError('zstd decompression made no progress', ExitCode.STREAMIO);
    }
    return null;
  }

  /**
   * Moves input into `header` until the frame header is complete, charges its window, and puts
   * the header back in front of the input. False while more input is needed.
   */
  private takeHeader(): boolean {
    for (;;) {
      const start = readFrameStart(this.header);
      if ('window' in start) {
        if (start.window !== null) this.charge(start.window);
        this.in = this.header.length ? Buffer.concat([this.header, this.in]) : this.in;
        this.header = Buffer.alloc(0);
        this.frameStart = false;
        return true;
      }
      if (this.in.length === 0) return false;
      const n = Math.min(start.need - this.header.length, this.in.length);
      this.header = Buffer.concat([this.header, this.in.subarray(0, n)]);
      this.in = this.in.subarray(n);
    }
  }

  /** Windows past the decoder's limit are not charged: the decoder refuses them. */
  private charge(window: number): void {
    if (window > 2 ** ZSTD_WINDOW_LOG_MAX) return;
    const bytes = decoderBytes(window);
    if (bytes <= this.charged) return;
    this.chargeWindow(bytes - this.charged);
    this.charged = bytes;
  }

  endOfData(): void {}
  matched(): void {}
}
