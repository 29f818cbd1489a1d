/**
 * The delta algorithm: block sums of a basis file (generator side) and the rolling search of a
 * new file against a receiver's block sums (sender side, rsync's match.c hash_search;
 * docs/protocol.md §8.3). Both are push-driven with bounded memory: nothing buffers a whole file.
 */
import {
  createBlockSummer,
  digestLength,
  rollingChecksum,
  sum1Blocks,
  type BlockSummer,
  type ChecksumSpec,
} from '../protocol/checksum.js';
import type { BlockSums, SumHead } from '../protocol/sumhead.js';

// ---------------------------------------------------------------------------------------------
// Generator side

/**
 * Finished block sums, in block order: sum1[j] and sum2[j * s2length, (j + 1) * s2length) belong
 * to one block. Views of the builder's batch, valid only during the call.
 */
export type BlockSumsSink = (sum1: Uint32Array, sum2: Buffer) => void;

/** Blocks whose sums a builder holds before handing them to its sink. */
const SUMS_BATCH = 4096;

/**
 * Computes sum1 + truncated strong sum for each block of basis data pushed in order, and hands
 * them to the sink a batch at a time: memory stays flat whatever the number of blocks.
 */
export class BlockSumsBuilder {
  /** The batch: sums of blocks [batchStart, index). */
  private readonly sum1: Uint32Array;
  private readonly sum2: Buffer;
  private readonly batch: number;
  private batchStart = 0;
  private readonly summer: BlockSummer;
  private readonly s2: number;
  private readonly copyLen: number;
  /** Bytes of a block split across chunks. */
  private readonly partial: Buffer;
  private partialLen = 0;
  private index = 0;

  /** Bytes a builder for `head` holds: its batch and one block split across chunks. */
  static bytesFor(head: SumHead): number {
    return Math.min(head.count, SUMS_BATCH) * (4 + head.s2length) + (head.count > 0 ? head.blength : 0);
  }

  constructor(
    private readonly head: SumHead,
    spec: ChecksumSpec,
    private readonly sink: BlockSumsSink,
  ) {
    this.batch = Math.min(head.count, SUMS_BATCH);
    this.sum1 = new Uint32Array(this.batch);
    this.sum2 = Buffer.alloc(this.batch * head.s2length);
    this.summer = createBlockSummer(spec);
    this.s2 = head.s2length;
    // Never more than the digest really has; extra bytes (if a caller asks for them) stay zero.
    this.copyLen = Math.min(head.s2length, digestLength(spec.name));
    this.partial = Buffer.allocUnsafe(head.count > 0 ? head.blength : 0);
  }

  /** Basis bytes that make a batch of blocks (feed pieces this long to bound each push's output). */
  get batchBytes(): number {
    return Math.max(1, this.batch) * this.head.blength;
  }

  /** Every block was summed (more data is ignored). */
  get complete(): boolean {
    return this.index === this.head.count;
  }

  private blockLength(i: number): number {
    const h = this.head;
    return i === h.count - 1 && h.remainder !== 0 ? h.remainder : h.blength;
  }

  /** Hands the batch to the sink once it is full (or the last block is in). */
  private emitIfFull(): void {
    const n = this.index - this.batchStart;
    if (n === 0 || (n < this.batch && !this.complete)) return;
    this.sink(this.sum1.subarray(0, n), this.sum2.subarray(0, n * this.s2));
    this.batchStart = this.index;
  }

  private sumBlock(data: Uint8Array, start: number, end: number): void {
    const j = this.index++ - this.batchStart;
    this.sum1[j] = rollingChecksum(data, start, end);
    this.summer(data, start, end, this.sum2, j * this.s2, this.copyLen);
    this.emitIfFull();
  }

  /**
   * Sums the blocks lying whole in chunk[p, n), up to the end of the batch (sum1 in one bulk
   * call); returns the new p.
   */
  private sumWholeBlocks(chunk: Buffer, p: number, n: number): number {
    let end = p;
    let last = this.index;
    const stop = Math.min(this.head.count, this.batchStart + this.batch);
    while (last < stop && n - end >= this.blockLength(last)) end += this.blockLength(last++);
    if (last === this.index) return p;
    sum1Blocks(chunk, p, end, this.head.blength, this.sum1, this.index - this.batchStart);
    for (let at = p; this.index < last; at += this.head.blength) {
      const j = this.index++ - this.batchStart;
      this.summer(chunk, at, Math.min(at + this.head.blength, end), this.sum2, j * this.s2, this.copyLen);
    }
    this.emitIfFull();
    return end;
  }

  /** Basis data in order, any chunk sizes. Data beyond the head's length is ignored. */
  push(chunk: Buffer): void {
    let p = 0;
    const n = chunk.length;
    while (p < n && this.index < this.head.count) {
      if (this.partialLen === 0) {
        const q = this.sumWholeBlocks(chunk, p, n);
        if (q > p) {
          p = q;
          continue;
        }
      }
      const want = this.blockLength(this.index);
      const take = Math.min(want - this.partialLen, n - p);
      chunk.copy(this.partial, this.partialLen, p, p + take);
      this.partialLen += take;
      p += take;
      if (this.partialLen === want) {
        this.sumBlock(this.partial, 0, want);
        this.partialLen = 0;
      }
    }
  }

  /**
   * Sums the blocks still missing: if the basis delivered fewer bytes than the head promised (it
   * shrank while being read, or a read failed), the missing bytes count as zeros, as rsync's
   * map_ptr does. The sink has then had exactly `count` sums.
   */
  finish(): void {
    while (this.index < this.head.count) {
      const want = this.blockLength(this.index);
      this.partial.fill(0, this.partialLen, want);
      this.partialLen = 0;
      this.sumBlock(this.partial, 0, want);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sender side

/**
 * Receives the delta. Buffers passed in are views into the matcher's window: valid only for the
 * duration of the call (copy them to keep them).
 */
export interface DeltaSink {
  literal(data: Buffer): void;
  /** blockIndex of the receiver's basis; data = the matched bytes of the new file. */
  match(blockIndex: number, data: Buffer): void;
}

export interface DeltaMatcherOptions {
  /** The receiver overwrites its basis as it goes (--inplace or in-place partial dir). */
  inplace?: boolean;
  /** literal() pieces never exceed this (default 32768 = CHUNK_SIZE). */
  maxLiteral?: number;
}

/** Candidates examined per offset before giving up there (CVE-2026-70453, rsync issue #217). */
const MAX_CHAIN_LEN = 1024;
/**
 * Total candidate work allowed per file: a fixed allowance plus this much per byte of new data.
 * Work = candidates visited + strong-sum bytes / 64. Past the budget (only reachable with
 * crafted sums, e.g. thousands of blocks sharing one sum1), the rest of the file is literal.
 */
const WORK_PER_BYTE = 16;
const WORK_ALLOWANCE = 1 << 22;
/**
 * Blocks longer than this are never searched (all literal). Real generators produce at most
 * 128 KiB at protocol >= 30 and ~sqrt(file size) below that (16 MiB = a 256 TiB basis); a hostile
 * receiver must not make us hold a 512 MiB window.
 */
export const MAX_SEARCH_BLOCK = 16 * 1024 * 1024;
/** Fresh data appended to the window per step. */
const WINDOW_STEP = 256 * 1024;
const GOLDEN = 0x9e3779b1 | 0;

/**
 * Hash table over sum1: heads[bucket] -> first block, next[block] -> following block, -1 ends.
 * `filter` is a bitmap of hashed sum1 values, small enough to stay in cache: the rolling loop
 * tests one bit per offset and only looks at the table on a hit (few mispredicted branches).
 */
interface SumTable {
  shift: number;
  heads: Int32Array;
  next: Int32Array;
  filterShift: number;
  filter: Int32Array;
}

function buildSumTable(sum1: Int32Array, count: number): SumTable {
  let bits = 16;
  while (bits < 24 && 1 << bits < count * 2) bits++;
  let filterBits = 20;
  while (filterBits < 26 && 1 << filterBits < count * 16) filterBits++;
  const heads = new Int32Array(1 << bits).fill(-1);
  const next = new Int32Array(count);
  const filter = new Int32Array(1 << (filterBits - 5));
  const shift = 32 - bits;
  const filterShift = 32 - filterBits;
  // Insert in reverse so every chain lists blocks in ascending order (the reference's order).
  for (let i = count - 1; i >= 0; i--) {
    const x = Math.imul(sum1[i], GOLDEN);
    const b = x >>> shift;
    next[i] = heads[b];
    heads[b] = i;
    const f = x >>> filterShift;
    filter[f >>> 5] |= 1 << (f & 31);
  }
  return { shift, heads, next, filterShift, filter };
}

/** The rolling state rollToCandidate ends with (a reused object: no allocation). */
const rolled = { s1: 0, s2: 0 };

/**
 * The hot loop: rolls the checksum of the window [k, k+bl) forward until its sum1 may be in the
 * table (filter bit set) or k reaches stop. Signed bytes (sbuf is an Int8Array view), and only
 * the low 16 bits of s1/s2 matter, so int32 wrap-around is harmless. Returns the new k.
 */
function rollToCandidate(
  sbuf: Int8Array,
  filter: Int32Array,
  fshift: number,
  bl: number,
  k: number,
  stop: number,
  s1: number,
  s2: number,
): number {
  while (k < stop) {
    const f = Math.imul((s1 & 0xffff) | (s2 << 16), GOLDEN) >>> fshift;
    if (filter[f >>> 5] & (1 << f)) break;
    const out = sbuf[k];
    s1 = (s1 + sbuf[k + bl] - out) | 0;
    s2 = (s2 + s1 - Math.imul(bl, out)) | 0;
    k++;
  }
  rolled.s1 = s1;
  rolled.s2 = s2;
  return k;
}

/**
 * The sender's search over the NEW file against the receiver's block sums. Emits literal runs
 * and block matches to the sink, synchronously, as data is pushed.
 */
export class DeltaMatcher {
  private readonly sink: DeltaSink;
  private readonly maxLiteral: number;
  private readonly inplace: boolean;
  /** False: everything is literal (no sums, 'none', or an absurd block length). */
  private readonly searching: boolean;

  private readonly count: number;
  private readonly bl: number;
  private readonly remainder: number;
  private readonly lastLen: number;
  private readonly sum1: Int32Array;
  private readonly sum2: Buffer;
  private readonly s2: number;
  /** Bytes of the strong sums we compare: min(s2length, digest length). */
  private readonly cmpLen: number;
  private readonly table: SumTable | null;
  private readonly summer: BlockSummer | null;
  private readonly strong: Buffer;
  /** --inplace: block i was matched at its own offset, so its data is still in place. */
  private readonly sameOffset: Uint8Array | null;

  // Window over the new file: buf[0, end) holds file bytes [base, base + end).
  private buf: Buffer;
  private sbuf: Int8Array;
  private end = 0;
  private base = 0;
  /** Start of pending literal data (rsync's last_match), as a buf index. */
  private lit = 0;
  /** Current search offset (window start), as a buf index. */
  private k = 0;
  /** s1/s2 hold the checksum of buf[k, k + bl). */
  private haveSum = false;
  /** The window at k was already looked up and did not match (it could not roll yet). */
  private checked = false;
  private s1 = 0;
  private s2sum = 0;
  private wantI = 0;
  private finished = false;
  /** Candidate work done so far (see WORK_PER_BYTE). */
  private work = 0;

  constructor(sums: BlockSums, spec: ChecksumSpec, sink: DeltaSink, opts: DeltaMatcherOptions = {}) {
    this.sink = sink;
    this.maxLiteral = Math.max(1, opts.maxLiteral ?? 32768);
    this.inplace = opts.inplace ?? false;
    const head = sums.head;
    this.count = head.count;
    this.bl = head.blength;
    this.remainder = head.remainder;
    this.lastLen = head.remainder !== 0 ? head.remainder : head.blength;
    this.s2 = head.s2length;
    this.cmpLen = Math.min(head.s2length, digestLength(spec.name));
    this.searching =
      head.count > 0 && head.blength > 0 && head.blength <= MAX_SEARCH_BLOCK && spec.name !== 'none';
    this.sum1 = new Int32Array(sums.sum1.buffer, sums.sum1.byteOffset, Math.min(sums.sum1.length, head.count));
    this.sum2 = sums.sum2;
    if (this.searching && (this.sum1.length < head.count || this.sum2.length < head.count * head.s2length)) {
      throw new RangeError('block sums shorter than their head');
    }
    this.table = this.searching ? buildSumTable(this.sum1, this.count) : null;
    this.summer = this.searching ? createBlockSummer(spec) : null;
    this.strong = Buffer.alloc(Math.max(1, digestLength(spec.name)));
    this.sameOffset = this.searching && this.inplace ? new Uint8Array(this.count) : null;
    const cap = this.searching ? this.maxLiteral + this.bl + WINDOW_STEP : this.maxLiteral;
    this.buf = Buffer.allocUnsafe(cap);
    this.sbuf = new Int8Array(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  }

  /** New-file data in order, any chunk sizes; calls the sink synchronously. */
  push(chunk: Buffer): void {
    if (this.finished) throw new Error('DeltaMatcher.push after finish');
    if (!this.searching) {
      this.pushLiteral(chunk);
      return;
    }
    let p = 0;
    while (p < chunk.length) {
      if (this.end === this.buf.length) this.compact();
      const n = Math.min(this.buf.length - this.end, chunk.length - p);
      chunk.copy(this.buf, this.end, p, p + n);
      this.end += n;
      p += n;
      this.search();
    }
  }

  /** Flushes the remaining literal data (after matching the short last block, if it fits). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.searching) {
      if (this.end > 0) this.sink.literal(this.buf.subarray(0, this.end));
      this.end = 0;
      return;
    }
    this.search();
    this.matchTail();
    this.flushLiteral(this.end);
  }

  // --- all-literal mode ---

  private pushLiteral(chunk: Buffer): void {
    const max = this.maxLiteral;
    let p = 0;
    while (p < chunk.length) {
      if (this.end === 0 && chunk.length - p >= max) {
        this.sink.literal(chunk.subarray(p, p + max));
        p += max;
        continue;
      }
      const n = Math.min(max - this.end, chunk.length - p);
      chunk.copy(this.buf, this.end, p, p + n);
      this.end += n;
      p += n;
      if (this.end === max) {
        this.sink.literal(this.buf.subarray(0, max));
        this.end = 0;
      }
    }
  }

  // --- search mode ---

  /** Drops the bytes before the pending literal data to make room at the end. */
  private compact(): void {
    const drop = this.lit;
    if (drop === 0) throw new Error('delta window overflow'); // impossible: lit >= end - (maxLiteral + bl)
    this.buf.copy(this.buf, 0, drop, this.end);
    this.end -= drop;
    this.k -= drop;
    this.lit = 0;
    this.base += drop;
  }

  /** Emits pending literal data up to buf index `upTo`, in pieces of at most maxLiteral. */
  private flushLiteral(upTo: number): void {
    const max = this.maxLiteral;
    while (this.lit < upTo) {
      const n = Math.min(max, upTo - this.lit);
      this.sink.literal(this.buf.subarray(this.lit, this.lit + n));
      this.lit += n;
    }
  }

  /** Examines every window offset whose full block is in the buffer. */
  private search(): void {
    const bl = this.bl;
    const sbuf = this.sbuf;
    const filter = this.table!.filter;
    const fshift = this.table!.filterShift;
    const maxLit = this.maxLiteral;
    for (;;) {
      let k = this.k;
      const end = this.end;
      if (!this.haveSum) {
        if (k + bl > end) return;
        const sum = rollingChecksum(this.buf, k, k + bl);
        this.s1 = sum & 0xffff;
        this.s2sum = sum >>> 16;
        this.haveSum = true;
        this.checked = false;
      }
      let s1 = this.s1;
      let s2 = this.s2sum;
      if (this.checked) {
        // The window at k was looked up last time but could not roll for lack of data.
        if (k + bl >= end) return;
        const out = sbuf[k];
        s1 = (s1 + sbuf[k + bl] - out) | 0;
        s2 = (s2 + s1 - Math.imul(bl, out)) | 0;
        k++;
        this.checked = false;
      }
      // Hot loop: roll while the filter says no block has the current sum1.
      const rollEnd = end - bl; // positions < rollEnd can roll (buf[k + bl] exists)
      let stop = Math.min(rollEnd, this.lit + maxLit);
      for (;;) {
        k = rollToCandidate(sbuf, filter, fshift, bl, k, stop, s1, s2);
        s1 = rolled.s1;
        s2 = rolled.s2;
        if (k < stop || k === rollEnd) break; // a candidate, or the last window in the buffer
        // Pending literal reached maxLiteral: send it and keep rolling.
        this.k = k;
        this.flushLiteral(k);
        stop = Math.min(rollEnd, this.lit + maxLit);
      }
      this.k = k;
      this.s1 = s1;
      this.s2sum = s2;
      const sum = (s1 & 0xffff) | (s2 << 16);
      if (k - this.lit >= maxLit) this.flushLiteral(k);
      const f = Math.imul(sum, GOLDEN) >>> fshift;
      const i = filter[f >>> 5] & (1 << f) ? this.findMatch(k, sum, bl) : -1;
      if (i >= 0) {
        this.emitMatch(i, k, bl);
        continue;
      }
      if (k + bl >= end) {
        this.checked = true;
        return;
      }
      // Not a match: roll one byte and go back to the hot loop.
      const out = sbuf[k];
      this.s1 = (s1 + sbuf[k + bl] - out) | 0;
      this.s2sum = (this.s2sum + this.s1 - Math.imul(bl, out)) | 0;
      this.k = k + 1;
    }
  }

  private emitMatch(i: number, k: number, len: number): void {
    this.flushLiteral(k);
    this.sink.match(i, this.buf.subarray(k, k + len));
    this.wantI = i + 1;
    this.k = k + len;
    this.lit = this.k;
    this.haveSum = false;
    this.checked = false;
  }

  /** At the very end, the short last block can match the file's last `remainder` bytes. */
  private matchTail(): void {
    if (this.remainder === 0) return;
    const at = this.end - this.remainder;
    if (at < this.k) return;
    const sum = rollingChecksum(this.buf, at, this.end) | 0;
    const i = this.count - 1;
    if (this.sum1[i] !== sum) return;
    this.strongValid = false;
    if (!this.usable(i, this.base + at) || !this.strongMatches(i, at, this.remainder)) return;
    this.emitMatch(i, at, this.remainder);
  }

  private strongValid = false;

  /** Compares block i's strong sum with the window buf[k, k+len) (computed once per offset). */
  private strongMatches(i: number, k: number, len: number): boolean {
    const n = this.cmpLen;
    if (!this.strongValid) {
      this.summer!(this.buf, k, k + len, this.strong, 0, n);
      this.strongValid = true;
      this.work += len >>> 6;
    }
    const s = this.strong;
    const t = this.sum2;
    const o = i * this.s2;
    for (let j = 0; j < n; j++) if (s[j] !== t[o + j]) return false;
    return true;
  }

  /** --inplace: block data must not have been overwritten yet at the receiver. */
  private usable(i: number, offset: number): boolean {
    return !this.sameOffset || i * this.bl >= offset || this.sameOffset[i] === 1;
  }

  private blockLen(i: number): number {
    return i === this.count - 1 ? this.lastLen : this.bl;
  }

  /** A matching block for the full window at buf index k, or -1 (rsync's preference order). */
  private findMatch(k: number, sum: number, len: number): number {
    this.strongValid = false;
    const offset = this.base + k;
    if (this.work > WORK_ALLOWANCE + WORK_PER_BYTE * (this.base + this.end)) return -1;
    const sum1 = this.sum1;
    const count = this.count;
    // --inplace: identical data already at the same offset is the best match of all.
    if (this.sameOffset && offset % this.bl === 0) {
      const a = offset / this.bl;
      if (a < count && sum1[a] === sum && this.blockLen(a) === len && this.strongMatches(a, k, len)) {
        this.sameOffset[a] = 1;
        return a;
      }
    }
    // The block after the previous match keeps runs adjacent.
    const w = this.wantI;
    if (w < count && sum1[w] === sum && this.blockLen(w) === len && this.usable(w, offset)) {
      if (this.strongMatches(w, k, len)) return w;
    }
    const table = this.table!;
    const next = table.next;
    const bucket = Math.imul(sum, GOLDEN) >>> table.shift;
    let prev = -1;
    let visited = 0;
    for (let i = table.heads[bucket]; i >= 0; ) {
      const following = next[i];
      if (this.sameOffset && i * this.bl < offset && this.sameOffset[i] === 0) {
        // --inplace: this block's data is gone at the receiver for good; unlink it.
        if (prev < 0) table.heads[bucket] = following;
        else next[prev] = following;
        i = following;
        continue;
      }
      if (++visited > MAX_CHAIN_LEN) break;
      this.work++;
      if (sum1[i] === sum && this.blockLen(i) === len && i !== w && this.strongMatches(i, k, len)) {
        return i;
      }
      prev = i;
      i = following;
    }
    return -1;
  }
}
