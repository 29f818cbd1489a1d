/**
 * ProtocolReader: the inbound byte stream of a session. Bytes arrive from any Readable (an ssh2
 * channel, a pipe, a socket in tests); they are demultiplexed lazily (only when the consumer needs
 * data), so the mode can switch mid-stream (raw <-> multiplexed, protocol < 31 --files-from).
 * Every read is bounded by the caller; inbound buffering is bounded with pause()/resume().
 */
import type { Readable } from 'node:stream';
import { ExitCode, ProtocolError, UnexpectedEofError } from './errors.js';
import { MsgTag } from './mux.js';
import { NdxState, NDX_DONE } from './ndx.js';
import { extraBytes, varintFrom, varlongFrom } from './varint.js';

const RAW_HIGH_WATER = 4 * 1024 * 1024;
const RAW_LOW_WATER = 1024 * 1024;
/** Largest non-data message payload we accept (the reference's limit is MAXPATHLEN+1024). */
const MAX_MSG_PAYLOAD = 64 * 1024;

export type MessageHandler = (tag: number, payload: Buffer) => void | Promise<void>;

class ChunkQueue {
  chunks: Buffer[] = [];
  head = 0; // offset into chunks[0]
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  /** Moves every byte of `other` in front of this queue's bytes. */
  unshiftAll(other: ChunkQueue): void {
    if (other.length === 0) return;
    const front = other.chunks.map((c, i) => (i === 0 ? c.subarray(other.head) : c));
    const back = this.chunks.map((c, i) => (i === 0 ? c.subarray(this.head) : c));
    this.chunks = [...front, ...back];
    this.head = 0;
    this.length += other.length;
    other.chunks = [];
    other.head = 0;
    other.length = 0;
  }

  /** Removes and returns n bytes (n <= length): a view when they lie in one chunk, else a copy. */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0); // the queue may be empty (a 1-byte varlong, min_bytes 1)
    const c0 = this.chunks[0];
    if (c0.length - this.head >= n) {
      const out = c0.subarray(this.head, this.head + n);
      this.head += n;
      this.length -= n;
      if (this.head === c0.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const avail = c.length - this.head;
      const want = Math.min(avail, n - filled);
      c.copy(out, filled, this.head, this.head + want);
      filled += want;
      this.head += want;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.length -= n;
    return out;
  }

  /** Removes one byte (length >= 1). */
  takeU8(): number {
    const c0 = this.chunks[0];
    const v = c0[this.head++];
    this.length--;
    if (this.head === c0.length) {
      this.chunks.shift();
      this.head = 0;
    }
    return v;
  }

  /** Removes a little-endian int32 (length >= 4), without allocating when it lies in one chunk. */
  takeI32(): number {
    const c0 = this.chunks[0];
    if (c0.length - this.head >= 4) {
      const v = c0.readInt32LE(this.head);
      this.head += 4;
      this.length -= 4;
      if (this.head === c0.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return v;
    }
    return this.take(4).readInt32LE(0);
  }

  /** Removes up to n bytes that lie in the first chunk (no copy). */
  takeSome(n: number): Buffer {
    const c0 = this.chunks[0];
    const m = Math.min(n, c0.length - this.head);
    return this.take(m);
  }
}

export class ProtocolReader {
  private raw = new ChunkQueue();
  private data = new ChunkQueue();
  private multiplexed = false;
  private frameRemaining = 0;
  private eof = false;
  private failure: Error | null = null;
  /** A one-shot failure for the read that waits (interrupt()). */
  private interruption: Error | null = null;
  private wake: (() => void) | null = null;
  private paused = false;
  /** Bytes consumed from the underlying stream (frame headers included), for stats. */
  totalRead = 0;
  /** Per-direction ndx registers for delta-encoded indexes (proto >= 30). */
  readonly ndxState = new NdxState();
  /** Called with every non-data message, in stream order. */
  onMessage: MessageHandler = (tag) => {
    throw new ProtocolError(`unexpected tag ${tag}`, ExitCode.STREAMIO);
  };
  /** Called before the reader blocks waiting for input (flush pending output here). */
  onStarve: () => void = () => {};
  protocol = 32;

  private rateLimit = 0;
  private rateStart = 0;
  private rateBytes = 0;
  private rateTimer: NodeJS.Timeout | null = null;

  constructor(private readonly source: Readable) {
    source.on('data', (chunk: Buffer) => {
      this.raw.push(chunk);
      this.totalRead += chunk.length;
      if (this.raw.length > RAW_HIGH_WATER && !this.paused) {
        this.paused = true;
        source.pause();
      }
      if (this.rateLimit > 0) this.throttle(chunk.length);
      this.notify();
    });
    source.on('end', () => {
      this.eof = true;
      this.notify();
    });
    source.on('close', () => {
      this.eof = true;
      this.notify();
    });
    source.on('error', (err: Error) => {
      this.failure = err;
      this.notify();
    });
  }

  /** Limits how fast inbound bytes are accepted (bytes per second; 0 = unlimited). */
  setRateLimit(bytesPerSecond: number): void {
    this.rateLimit = bytesPerSecond;
    this.rateStart = Date.now();
    this.rateBytes = 0;
  }

  /** Pauses the source until the average rate is back under the limit (the peer's window fills). */
  private throttle(n: number): void {
    this.rateBytes += n;
    const aheadMs = (this.rateBytes / this.rateLimit) * 1000 - (Date.now() - this.rateStart);
    if (aheadMs <= 5 || this.rateTimer) return;
    this.source.pause();
    this.rateTimer = setTimeout(() => {
      this.rateTimer = null;
      if (!this.paused) this.source.resume();
    }, aheadMs);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    if (w) w();
  }

  private maybeResume(): void {
    if (this.paused && this.raw.length < RAW_LOW_WATER) {
      this.paused = false;
      if (!this.rateTimer) this.source.resume();
    }
  }

  /**
   * Makes the read that is waiting for input (or the next one that must wait) fail with `err`,
   * once: a task blocked on the peer can be stopped while the stream stays usable.
   */
  interrupt(err: Error): void {
    this.interruption = err;
    this.notify();
  }

  /**
   * The session is over (its owner cancelled it): the waiting read and every later one fail with
   * `err`, and the rate limiter's timer is cleared.
   */
  abort(err: Error): void {
    this.failure ??= err;
    if (this.rateTimer) clearTimeout(this.rateTimer);
    this.rateTimer = null;
    this.notify();
  }

  private waitRaw(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.interruption) {
      const err = this.interruption;
      this.interruption = null;
      throw err;
    }
    if (this.eof) throw new UnexpectedEofError();
    this.onStarve();
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /** Switch the interpretation of inbound bytes (the handshake is raw; multiplexing starts later). */
  setMultiplexed(on: boolean): void {
    if (on === this.multiplexed) return;
    if (on) {
      // Unconsumed raw-mode bytes belong to the multiplexed stream.
      this.raw.unshiftAll(this.data);
    } else if (this.data.length !== 0 || this.frameRemaining !== 0) {
      throw new ProtocolError('cannot leave multiplexed mode inside a data frame');
    }
    this.multiplexed = on;
  }

  get isMultiplexed(): boolean {
    return this.multiplexed;
  }

  /** True when no inbound byte is waiting (used to poll without blocking). */
  get idle(): boolean {
    return this.data.length === 0 && this.raw.length === 0;
  }

  /** Moves at least one more byte into the data queue (or dispatches messages), waiting as needed. */
  private async pump(): Promise<void> {
    for (;;) {
      if (!this.multiplexed) {
        if (this.raw.length > 0) {
          while (this.raw.length > 0) this.data.push(this.raw.takeSome(this.raw.length));
          this.maybeResume();
          return;
        }
        await this.waitRaw();
        continue;
      }
      if (this.frameRemaining > 0) {
        if (this.raw.length === 0) {
          await this.waitRaw();
          continue;
        }
        while (this.frameRemaining > 0 && this.raw.length > 0) {
          const piece = this.raw.takeSome(this.frameRemaining);
          this.frameRemaining -= piece.length;
          this.data.push(piece);
        }
        this.maybeResume();
        return;
      }
      if (this.raw.length < 4) {
        await this.waitRaw();
        continue;
      }
      const hdr = this.raw.take(4).readUInt32LE(0);
      const tag = (hdr >>> 24) - 7;
      const len = hdr & 0xffffff;
      if (tag === MsgTag.DATA) {
        this.frameRemaining = len;
        continue;
      }
      // The reference exits with RERR_STREAMIO (12) for both (io.c read_a_msg).
      if (tag < 0) throw new ProtocolError(`unexpected tag ${tag} (stream corrupt)`, ExitCode.STREAMIO);
      if (len > MAX_MSG_PAYLOAD) throw new ProtocolError(`multiplexing overflow ${tag}:${len}`, ExitCode.STREAMIO);
      while (this.raw.length < len) await this.waitRaw();
      const payload = len ? Buffer.from(this.raw.take(len)) : Buffer.alloc(0);
      this.maybeResume();
      await this.onMessage(tag, payload);
    }
  }

  private async ensure(n: number): Promise<void> {
    while (this.data.length < n) await this.pump();
  }

  // The readers below return a plain value when the bytes are already buffered (the common
  // case) and a promise only when they must wait: `await` works on both, and the fast path
  // allocates nothing.

  readU8(): number | Promise<number> {
    if (this.data.length >= 1) return this.data.takeU8();
    return this.ensure(1).then(() => this.data.takeU8());
  }

  readU16(): number | Promise<number> {
    if (this.data.length >= 2) return this.data.takeU8() | (this.data.takeU8() << 8);
    return this.ensure(2).then(() => this.data.takeU8() | (this.data.takeU8() << 8));
  }

  readI32(): number | Promise<number> {
    if (this.data.length >= 4) return this.data.takeI32();
    return this.ensure(4).then(() => this.data.takeI32());
  }

  readU32(): number | Promise<number> {
    if (this.data.length >= 4) return this.data.takeI32() >>> 0;
    return this.ensure(4).then(() => this.data.takeI32() >>> 0);
  }

  /** Exactly n bytes; n must already be bounded by the caller. The result may be a view. */
  readBytes(n: number): Buffer | Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0);
    if (this.data.length >= n) return this.data.take(n);
    return this.ensure(n).then(() => this.data.take(n));
  }

  /** Up to n (>0) bytes, at least 1, without copying: for streaming large payloads. */
  async readSome(n: number): Promise<Buffer> {
    if (this.data.length < 1) await this.ensure(1);
    return this.data.takeSome(n);
  }

  readVarint(): number | Promise<number> {
    const d = this.data;
    if (d.length >= 5 || (d.length >= 1 && d.length >= 1 + extraBytes(d.chunks[0][d.head]))) {
      const lead = d.takeU8();
      const extra = extraBytes(lead);
      if (extra === 0) return lead;
      if (extra > 4) throw new ProtocolError('overflow in read_varint');
      return varintFrom(lead, d.take(extra), 0, extra);
    }
    return this.readVarintSlow();
  }

  private async readVarintSlow(): Promise<number> {
    const lead = await this.readU8();
    const extra = extraBytes(lead);
    if (extra === 0) return lead;
    if (extra > 4) throw new ProtocolError('overflow in read_varint');
    const rest = await this.readBytes(extra);
    return varintFrom(lead, rest, 0, extra);
  }

  readVarlong(minBytes: number): number | Promise<number> {
    const d = this.data;
    if (d.length >= 9 || (d.length >= minBytes && d.length >= minBytes + extraBytes(d.chunks[0][d.head]))) {
      const lead = d.takeU8();
      const n = minBytes - 1 + extraBytes(lead);
      if (n > 8) throw new ProtocolError('overflow in read_varlong');
      return varlongFrom(lead, d.take(n), minBytes);
    }
    return this.readVarlongSlow(minBytes);
  }

  private async readVarlongSlow(minBytes: number): Promise<number> {
    const lead = await this.readU8();
    const extra = extraBytes(lead);
    const n = minBytes - 1 + extra;
    if (n > 8) throw new ProtocolError('overflow in read_varlong');
    const low = await this.readBytes(n);
    return varlongFrom(lead, low, minBytes);
  }

  /** proto < 30 64-bit value: int32, or -1 followed by 8 bytes. */
  async readLongint(): Promise<number> {
    const v = await this.readI32();
    if (v !== -1) return v;
    const b = await this.readBytes(8);
    const lo = b.readUInt32LE(0);
    const hi = b.readInt32LE(4);
    return hi * 4294967296 + lo;
  }

  readVarint30(): number | Promise<number> {
    return this.protocol < 30 ? this.readI32() : this.readVarint();
  }

  readVarlong30(minBytes: number): number | Promise<number> {
    return this.protocol < 30 ? this.readLongint() : this.readVarlong(minBytes);
  }

  /** vstring with a length limit (negotiation lists: 255, names: 4095). */
  async readVstring(max: number): Promise<Buffer> {
    let len = await this.readU8();
    if (len & 0x80) len = ((len & 0x7f) << 8) | (await this.readU8());
    if (len > max) throw new ProtocolError(`over-long vstring received (${len} > ${max})`, 4);
    return Buffer.from(await this.readBytes(len));
  }

  async readNdx(): Promise<number> {
    if (this.protocol < 30) return this.readI32();
    const st = this.ndxState;
    let b = await this.readU8();
    let negative = false;
    if (b === 0xff) {
      negative = true;
      b = await this.readU8();
    } else if (b === 0) {
      return NDX_DONE;
    }
    let num: number;
    if (b === 0xfe) {
      const b0 = await this.readU8();
      const b1 = await this.readU8();
      if (b0 & 0x80) {
        const rest = await this.readBytes(2);
        num = (b1 | (rest[0] << 8) | (rest[1] << 16)) + (b0 & 0x7f) * 0x1000000;
      } else {
        num = ((b0 << 8) | b1) + (negative ? st.prevNegative : st.prevPositive);
      }
    } else {
      num = b + (negative ? st.prevNegative : st.prevPositive);
    }
    if (num > 0x7fffffff) throw new ProtocolError('invalid file index');
    if (negative) {
      st.prevNegative = num;
      return -num;
    }
    st.prevPositive = num;
    return num;
  }

  /** Waits until the peer closes (or the timeout passes), discarding input. */
  async drainUntilEof(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.eof && !this.failure && Date.now() < deadline) {
      this.raw = new ChunkQueue();
      this.maybeResume();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((r) => {
          this.wake = r;
        }),
        new Promise<void>((r) => {
          timer = setTimeout(r, Math.max(1, deadline - Date.now()));
        }),
      ]);
      clearTimeout(timer);
    }
  }

  get atEof(): boolean {
    return this.eof && this.raw.length === 0 && this.data.length === 0;
  }
}
