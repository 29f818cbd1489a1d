/**
 * ProtocolWriter: the outbound byte stream of a session. Encoders append synchronously to a
 * pending buffer; flush() hands it to the sink, cut into MSG_DATA frames once multiplexing is on.
 * Callers await `writable()` at natural points so output respects the sink's backpressure.
 */
import type { Writable } from 'node:stream';
import { ByteWriter } from './bytes.js';
import { DATA_FRAME_MAX, frameHeader, MsgTag, tagForProtocol } from './mux.js';
import { escapeControlBytes, isTextMessage } from './message-text.js';
import { NdxState, writeNdx } from './ndx.js';
import { writeLongint, writeVarint, writeVarlong, writeVstring } from './varint.js';

const FLUSH_THRESHOLD = 256 * 1024;
/** Frame buffers big enough for a flush at the threshold; reused once the sink is done with them. */
const FRAME_BUFFER = FLUSH_THRESHOLD + 128 * 1024;
const SPARE_FRAME_BUFFERS = 16;
/** Smaller flushes get a buffer of their own size (from Node's small-buffer pool). */
const REUSE_MIN = 32 * 1024;

export interface Sink {
  /** `done` (when the sink calls it) says the chunk is no longer needed: its buffer is reused. */
  write(chunk: Buffer, done?: (err?: Error | null) => void): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

export class ProtocolWriter {
  readonly pending = new ByteWriter(FLUSH_THRESHOLD + 64 * 1024);
  private multiplexed = false;
  private blocked = false;
  private drainWaiters: Array<() => void> = [];
  /** Set by abort(): the sink is gone, so 'drain' will never come. */
  private failure: Error | null = null;
  /**
   * Frame buffers the sink has finished with. Allocating a fresh 256 KiB buffer per flush costs
   * more in garbage collection (V8 collects on external-memory growth) than the copy itself.
   */
  private readonly spareFrames: Buffer[] = [];
  /** Bytes handed to the sink (frame headers included), for stats. */
  totalWritten = 0;
  readonly ndxState = new NdxState();
  protocol = 32;

  /** --bwlimit of a sending role: bytes per second, and where the average is measured from. */
  private rate: { limit: number; start: number; base: number } | null = null;

  constructor(private readonly sink: Sink | Writable) {}

  /** From now on writable() keeps the average output rate under `bytesPerSecond` (rsync's --bwlimit). */
  setRateLimit(bytesPerSecond: number): void {
    this.rate = { limit: bytesPerSecond, start: Date.now(), base: this.totalWritten };
  }

  setMultiplexed(on: boolean): void {
    this.flush();
    this.multiplexed = on;
  }

  get isMultiplexed(): boolean {
    return this.multiplexed;
  }

  u8(v: number): void {
    this.pending.u8(v);
  }
  u16(v: number): void {
    this.pending.u16(v);
  }
  i32(v: number): void {
    this.pending.i32(v);
  }
  bytes(b: Uint8Array): void {
    this.pending.bytes(b);
  }
  varint(v: number): void {
    writeVarint(this.pending, v);
  }
  varlong(v: number, minBytes: number): void {
    writeVarlong(this.pending, v, minBytes);
  }
  longint(v: number): void {
    writeLongint(this.pending, v);
  }
  varint30(v: number): void {
    if (this.protocol < 30) this.pending.i32(v);
    else writeVarint(this.pending, v);
  }
  varlong30(v: number, minBytes: number): void {
    if (this.protocol < 30) writeLongint(this.pending, v);
    else writeVarlong(this.pending, v, minBytes);
  }
  vstring(s: Buffer): void {
    writeVstring(this.pending, s);
  }
  ndx(n: number): void {
    writeNdx(this.pending, this.ndxState, this.protocol, n);
  }

  get pendingBytes(): number {
    return this.pending.length;
  }

  /** Hands all pending data to the sink. */
  flush(): void {
    const len = this.pending.length;
    if (len === 0) return;
    const src = this.pending.view();
    let out: Buffer;
    if (!this.multiplexed) {
      out = Buffer.from(src);
    } else {
      const frames = Math.ceil(len / DATA_FRAME_MAX);
      const need = len + 4 * frames;
      if (need >= REUSE_MIN && need <= FRAME_BUFFER) {
        const whole = this.spareFrames.pop() ?? Buffer.allocUnsafe(FRAME_BUFFER);
        this.fillFrames(whole, src, len);
        this.pending.reset();
        this.toSink(whole.subarray(0, need), whole);
        return;
      }
      out = Buffer.allocUnsafe(need);
      this.fillFrames(out, src, len);
    }
    this.pending.reset();
    this.toSink(out);
  }

  /** Copies src[0, len) into out as MSG_DATA frames. */
  private fillFrames(out: Buffer, src: Buffer, len: number): void {
    let o = 0;
    for (let i = 0; i < len; i += DATA_FRAME_MAX) {
      const n = Math.min(DATA_FRAME_MAX, len - i);
      out.writeUInt32LE(frameHeader(MsgTag.DATA, n), o);
      src.copy(out, o + 4, i, i + n);
      o += 4 + n;
    }
  }

  /** `reuse`: the buffer behind `out`, taken back when the sink says it is done with it. */
  private toSink(out: Buffer, reuse?: Buffer): void {
    if (this.failure) return;
    this.totalWritten += out.length;
    const done = reuse
      ? () => {
          if (this.spareFrames.length < SPARE_FRAME_BUFFERS) this.spareFrames.push(reuse);
        }
      : undefined;
    if (!this.sink.write(out, done) && !this.blocked) {
      this.blocked = true;
      this.sink.once('drain', () => this.release());
    }
  }

  private release(): void {
    this.blocked = false;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * The sink is gone (closed or failed): every task waiting for it wakes up, writable() throws
   * `err` from now on, drain() returns at once and further output is dropped. Without this a
   * task blocked on a dead client's backpressure would wait (holding its files) forever.
   */
  abort(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.pending.reset();
    this.release();
  }

  /** Sends an out-of-band message (after any pending data, preserving order); text has its control bytes escaped. */
  message(tag: number, payload: Buffer | string): void {
    const raw = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    const body = isTextMessage(tag) ? escapeControlBytes(raw) : raw;
    this.flush();
    const t = tagForProtocol(tag, this.protocol);
    const out = Buffer.allocUnsafe(4 + body.length);
    out.writeUInt32LE(frameHeader(t, body.length), 0);
    body.copy(out, 4);
    this.toSink(out);
  }

  /** An empty MSG_DATA frame: the keep-alive every client version accepts. */
  keepAlive(): void {
    this.flush();
    const out = Buffer.alloc(4);
    out.writeUInt32LE(frameHeader(MsgTag.DATA, 0), 0);
    this.toSink(out);
  }

  /** The sink is backpressured: writable() and drain() wait for it. */
  get isBlocked(): boolean {
    return this.blocked;
  }

  /** Flushes when enough is pending, and waits while the sink is backpressured. */
  async writable(): Promise<void> {
    if (this.pending.length >= FLUSH_THRESHOLD) this.flush();
    if (this.blocked && !this.failure) await new Promise<void>((r) => this.drainWaiters.push(r));
    if (this.rate && !this.failure) await this.keepUnderRate(this.rate);
    if (this.failure) throw this.failure;
  }

  /** Sleeps while the bytes sent so far are ahead of the limit (at most a second at a time). */
  private async keepUnderRate(rate: { limit: number; start: number; base: number }): Promise<void> {
    const aheadMs = ((this.totalWritten - rate.base) / rate.limit) * 1000 - (Date.now() - rate.start);
    if (aheadMs > 5) await new Promise<void>((r) => setTimeout(r, Math.min(aheadMs, 1000)).unref());
  }

  /** Flushes everything and waits until the sink has accepted it. */
  async drain(): Promise<void> {
    this.flush();
    if (this.blocked && !this.failure) await new Promise<void>((r) => this.drainWaiters.push(r));
  }
}
