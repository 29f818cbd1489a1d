/**
 * zlib / zlibx token codecs: raw deflate (windowBits -15, memLevel 8), a fresh stream per file,
 * Z_SYNC_FLUSH before every token and at EOF with the trailing `00 00 ff ff` stripped.
 * `zlib` also adds every matched block to both sides' history (zlibx does not).
 *
 * Node 20 has no public synchronous *stateful* zlib API. We drive the binding handle the same way
 * node:zlib's own *Sync functions do (src/patches/node-zlib.ts). If those internals are ever
 * missing or fail a self-test, we fall back to: a stateless deflateRawSync per literal run (still
 * a valid continuation of the peer's inflate stream, just without cross-run history) and the
 * public async InflateRaw stream for decoding.
 */
import zlib from 'node:zlib';
import { ExitCode, ProtocolError } from '../errors.js';
import { zlibInternals, type NativeZlibHandle } from '../../patches/node-zlib.js';
import type { ProtocolWriter } from '../output.js';
import {
  CHUNK_SIZE,
  MAX_DATA_COUNT,
  writeDataHeader,
  type LiteralCompressor,
  type LiteralDecompressor,
} from './framing.js';

const { Z_NO_FLUSH, Z_SYNC_FLUSH, Z_DEFAULT_STRATEGY } = zlib.constants;
/** Largest fake stored block; also the unit of history feeding on the sender. */
const STORED_MAX = 0xffff;
/** Inflate output is handed out in pieces of at most this size (decompression bombs stay bounded). */
const INFLATE_PIECE = 64 * 1024;
const DEFLATE_OUT = 64 * 1024;
const SYNC_MARKER = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const EMPTY = Buffer.alloc(0);

const ZLIB_DEFAULT_LEVEL = 6;

export function clampZlibLevel(level: number | undefined): number {
  if (level === undefined || level < 0) return ZLIB_DEFAULT_LEVEL;
  return Math.min(9, Math.floor(level));
}

/* ------------------------------------------------------------------------------------------ */
/* The synchronous handle route                                                                */

interface StepResult {
  produced: number;
  consumed: number;
}

/** One raw zlib stream driven synchronously through node:zlib's internal handle. */
class SyncZlibStream {
  private readonly handle: NativeZlibHandle;
  private readonly state: Uint32Array;
  private error: string | null = null;

  constructor(private readonly owner: zlib.DeflateRaw | zlib.InflateRaw) {
    const internals = zlibInternals(owner);
    if (!internals) throw new Error('node:zlib internal handle API unavailable');
    this.handle = internals.handle;
    this.state = internals.state;
    // node:zlib's own handler would destroy the stream; we only record the failure.
    this.handle.onerror = (message: string, errno: number) => {
      this.error = `${message} (errno ${errno})`;
    };
  }

  step(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array): StepResult {
    if (this.error) throw new ProtocolError(`zlib stream unusable: ${this.error}`, ExitCode.STREAMIO);
    this.handle.writeSync(flush, input, inOff, inLen, out, 0, out.length);
    // After an error the native side keeps write_in_progress set: the stream must not be used again.
    if (this.error) throw new ProtocolError(`zlib error: ${this.error}`, ExitCode.STREAMIO);
    return { produced: out.length - this.state[0], consumed: inLen - this.state[1] };
  }

  reset(): void {
    this.handle.reset();
  }

  params(level: number): void {
    this.handle.params(level, Z_DEFAULT_STRATEGY);
  }

  get stream(): zlib.DeflateRaw | zlib.InflateRaw {
    return this.owner;
  }
}

let nativeUsable: boolean | undefined;

/** Self-test of the internal route: a stateful deflate/inflate round trip across two flushes. */
export function nativeZlibAvailable(): boolean {
  if (nativeUsable !== undefined) return nativeUsable;
  try {
    const d = new NativeDeflater(6);
    const parts: Buffer[] = [];
    const text = Buffer.from('rsync token stream self-test; rsync token stream self-test.');
    d.run(text, Z_SYNC_FLUSH, (b) => parts.push(Buffer.from(b)));
    d.run(text, Z_SYNC_FLUSH, (b) => parts.push(Buffer.from(b)));
    const second = parts.pop();
    const inf = new NativeInflater();
    inf.input(Buffer.concat(parts));
    const got: Buffer[] = [];
    for (let b = inf.output(); b; b = inf.output()) got.push(b);
    inf.input(second ?? EMPTY);
    for (let b = inf.output(); b; b = inf.output()) got.push(b);
    nativeUsable = Buffer.concat(got).equals(Buffer.concat([text, text])) && (second?.length ?? 99) < text.length;
  } catch {
    nativeUsable = false;
  }
  return nativeUsable;
}

/** Forces the fallback paths (tests). */
export function setNativeZlibForTesting(on: boolean | undefined): void {
  nativeUsable = on;
}

/* ------------------------------------------------------------------------------------------ */
/* Deflate                                                                                      */

interface Deflater {
  reset(level: number): void;
  /** Compresses `input` with `flush`; every produced byte goes to `sink` (views, consume at once). */
  run(input: Buffer, flush: number, sink: (out: Buffer) => void): void;
}

class NativeDeflater implements Deflater {
  private z: SyncZlibStream;
  private readonly out = Buffer.allocUnsafe(DEFLATE_OUT);
  private level: number;

  constructor(level: number) {
    this.level = level;
    this.z = new SyncZlibStream(zlib.createDeflateRaw({ level, windowBits: 15, memLevel: 8 }));
  }

  reset(level: number): void {
    this.z.reset();
    if (level !== this.level) {
      this.z.params(level); // right after deflateReset: emits nothing
      this.level = level;
    }
  }

  run(input: Buffer, flush: number, sink: (out: Buffer) => void): void {
    let off = 0;
    let left = input.length;
    for (;;) {
      const { produced, consumed } = this.z.step(flush, input, off, left, this.out);
      off += consumed;
      left -= consumed;
      if (produced > 0) sink(this.out.subarray(0, produced));
      if (produced < this.out.length) return; // output space left over: zlib is done with this call
    }
  }
}

/** Fallback: every call is its own raw deflate stream ending in a sync flush (wire-valid, no history). */
class StatelessDeflater implements Deflater {
  private level: number;
  constructor(level: number) {
    this.level = level;
  }
  reset(level: number): void {
    this.level = level;
  }
  run(input: Buffer, _flush: number, sink: (out: Buffer) => void): void {
    const out = zlib.deflateRawSync(input, { level: this.level, memLevel: 8, finishFlush: Z_SYNC_FLUSH });
    if (out.length > 0) sink(out);
  }
}

/**
 * Cuts deflate output into DEFLATED_DATA chunks exactly like rsync's send_deflated_token: a full
 * 16383-byte buffer goes out whole while not flushing; while flushing its last 4 bytes are held
 * back (they may be the 00 00 ff ff tail), and the final tail is dropped.
 */
class DeflateChunker {
  private readonly buf = Buffer.allocUnsafe(MAX_DATA_COUNT);
  private fill = 0;
  flushing = false;

  constructor(private readonly w: ProtocolWriter) {}

  readonly add = (out: Buffer): void => {
    let off = 0;
    while (off < out.length) {
      const n = Math.min(MAX_DATA_COUNT - this.fill, out.length - off);
      out.copy(this.buf, this.fill, off, off + n);
      this.fill += n;
      off += n;
      if (this.fill === MAX_DATA_COUNT) this.bufferFull();
    }
  };

  private bufferFull(): void {
    if (!this.flushing) {
      this.emit(MAX_DATA_COUNT);
      this.fill = 0;
      return;
    }
    this.emit(MAX_DATA_COUNT - 4);
    this.buf.copyWithin(0, MAX_DATA_COUNT - 4, MAX_DATA_COUNT);
    this.fill = 4;
  }

  /**
   * End of one send_token call: a data-only call sends its partial buffer as is; a flushed call
   * sends everything but the 4-byte sync tail.
   */
  endCall(): void {
    if (!this.flushing) {
      this.emit(this.fill);
      this.fill = 0;
      return;
    }
    if (this.fill < 4 || !this.buf.subarray(this.fill - 4, this.fill).equals(SYNC_MARKER)) {
      throw new ProtocolError('deflate sync flush did not end in 00 00 ff ff', ExitCode.STREAMIO);
    }
    this.emit(this.fill - 4);
    this.fill = 0;
    this.flushing = false;
  }

  private emit(n: number): void {
    if (n <= 0) return;
    writeDataHeader(this.w, n);
    this.w.bytes(this.buf.subarray(0, n));
  }
}

export class ZlibCompressor implements LiteralCompressor {
  private readonly deflater: Deflater;
  private readonly chunker: DeflateChunker;
  private readonly discard = (): void => {};

  constructor(
    w: ProtocolWriter,
    private readonly level: number,
    private readonly feedHistory: boolean,
    private readonly protocol: number,
  ) {
    this.chunker = new DeflateChunker(w);
    this.deflater = nativeZlibAvailable() ? new NativeDeflater(level) : new StatelessDeflater(level);
  }

  beginFile(level: number | undefined): void {
    this.deflater.reset(level === undefined ? this.level : Math.max(0, Math.min(9, level)));
  }

  /**
   * rsync hands the data to deflate in CHUNK_SIZE pieces from the start of the call and flushes
   * with the last piece; which bytes come out during the flushing call decides the chunk cuts.
   */
  send(data: Buffer, final: boolean): void {
    if (!final) {
      this.deflater.run(data, Z_NO_FLUSH, this.chunker.add);
      this.chunker.endCall();
      return;
    }
    const lastPiece = data.length === 0 ? 0 : ((data.length - 1) % CHUNK_SIZE) + 1;
    const cut = data.length - lastPiece;
    if (cut > 0) this.deflater.run(data.subarray(0, cut), Z_NO_FLUSH, this.chunker.add);
    this.chunker.flushing = true;
    this.deflater.run(data.subarray(cut), Z_SYNC_FLUSH, this.chunker.add);
    this.chunker.endCall();
  }

  matched(block: Buffer): void {
    if (!this.feedHistory) return;
    // Sync flush + discarded output = rsync's Z_INSERT_ONLY (the peer rebuilds the same history).
    for (const piece of historyPieces(block, this.protocol)) this.deflater.run(piece, Z_SYNC_FLUSH, this.discard);
  }
}

/**
 * The pieces (<= 65535 bytes) a matched block is fed in. Protocol < 31 bug, replicated: the
 * offset never advances, so every piece repeats the block's first bytes.
 */
function* historyPieces(block: Buffer, protocol: number): Generator<Buffer> {
  let left = block.length;
  let off = 0;
  while (left > 0) {
    const n = Math.min(STORED_MAX, left);
    yield block.subarray(off, off + n);
    if (protocol >= 31) off += n;
    left -= n;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Inflate                                                                                      */

class NativeInflater {
  private readonly z = new SyncZlibStream(zlib.createInflateRaw({ windowBits: 15 }));
  private readonly out = Buffer.allocUnsafe(INFLATE_PIECE);
  private readonly scratch = Buffer.allocUnsafe(INFLATE_PIECE);
  private in: Buffer = EMPTY;
  private inOff = 0;

  reset(): void {
    this.z.reset();
    this.in = EMPTY;
    this.inOff = 0;
  }

  input(chunk: Buffer): void {
    this.in = chunk;
    this.inOff = 0;
  }

  output(): Buffer | null {
    for (;;) {
      const left = this.in.length - this.inOff;
      const { produced, consumed } = this.z.step(Z_NO_FLUSH, this.in, this.inOff, left, this.out);
      this.inOff += consumed;
      if (produced > 0) return Buffer.from(this.out.subarray(0, produced));
      if (left === 0) return null;
      if (consumed === 0) throw new ProtocolError('inflate made no progress (data after end of stream)', ExitCode.STREAMIO);
    }
  }

  /** Runs `data` through inflate, throwing the output away (sync marker, fake stored blocks). */
  discard(data: Buffer): void {
    let off = 0;
    for (;;) {
      const left = data.length - off;
      const { produced, consumed } = this.z.step(Z_SYNC_FLUSH, data, off, left, this.scratch);
      off += consumed;
      if (left - consumed === 0 && produced < this.scratch.length) return;
      if (consumed === 0 && produced === 0) throw new ProtocolError('inflate (token) made no progress', ExitCode.STREAMIO);
    }
  }
}

/** Fallback inflater over the public async stream API (one DEFLATED_DATA chunk at a time). */
class StreamInflater {
  private stream = zlib.createInflateRaw({ windowBits: 15, chunkSize: INFLATE_PIECE });
  private queue: Buffer[] = [];
  private failure: Error | null = null;
  private chain: Promise<void> = Promise.resolve();
  private in: Buffer | null = null;

  constructor() {
    this.attach();
  }

  private attach(): void {
    this.stream.on('data', (b: Buffer) => this.queue.push(b));
    this.stream.on('error', (e: Error) => {
      this.failure = e;
    });
  }

  private run(data: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.failure) return reject(this.wrap(this.failure));
      this.stream.write(data);
      this.stream.flush(Z_SYNC_FLUSH, () => (this.failure ? reject(this.wrap(this.failure)) : resolve()));
    });
  }

  private wrap(e: Error): ProtocolError {
    return new ProtocolError(`inflate failed: ${e.message}`, ExitCode.STREAMIO);
  }

  reset(): void {
    this.chain = this.chain.then(() => {
      this.stream.reset();
      this.queue = [];
    });
    this.in = null;
  }

  input(chunk: Buffer): void {
    this.in = chunk;
  }

  async output(): Promise<Buffer | null> {
    await this.chain;
    if (this.queue.length === 0 && this.in) {
      const data = this.in;
      this.in = null;
      await this.run(data);
    }
    return this.queue.shift() ?? null;
  }

  discard(data: Buffer): void {
    const copy = Buffer.from(data);
    this.chain = this.chain.then(async () => {
      await this.run(copy);
      this.queue = [];
    });
  }

  async settle(): Promise<void> {
    await this.chain;
  }
}

export class ZlibDecompressor implements LiteralDecompressor {
  private readonly native: NativeInflater | null;
  private readonly fallback: StreamInflater | null;
  private readonly header = Buffer.alloc(5);

  constructor(
    private readonly feedHistory: boolean,
    private readonly protocol: number,
  ) {
    this.native = nativeZlibAvailable() ? new NativeInflater() : null;
    this.fallback = this.native ? null : new StreamInflater();
  }

  beginFile(): void {
    if (this.native) this.native.reset();
    else this.fallback?.reset();
  }

  input(chunk: Buffer): void {
    if (this.native) this.native.input(chunk);
    else this.fallback?.input(chunk);
  }

  output(): Buffer | null | Promise<Buffer | null> {
    if (this.native) return this.native.output();
    return this.fallback ? this.fallback.output() : null;
  }

  endOfData(): void | Promise<void> {
    this.feed(SYNC_MARKER);
    if (this.fallback) return this.fallback.settle();
  }

  matched(block: Buffer): void {
    if (!this.feedHistory) return;
    for (const piece of historyPieces(block, this.protocol)) {
      // A fake stored block: 00, LEN, ~LEN (little-endian), then the bytes.
      this.header[0] = 0;
      this.header.writeUInt16LE(piece.length, 1);
      this.header.writeUInt16LE(~piece.length & 0xffff, 3);
      this.feed(this.header);
      this.feed(piece);
    }
  }

  private feed(data: Buffer): void {
    if (this.native) this.native.discard(data);
    else this.fallback?.discard(data);
  }
}
