/**
 * lz4 token codec: every DEFLATED_DATA chunk is one independent raw LZ4 *block* (no frame, no
 * dictionary) made from at most 16383 input bytes; when the block would exceed 16383 bytes the
 * sender halves the input and retries (rsync token.c send_compressed_token). The receiver decodes
 * into a buffer of max(LZ4_compressBound(32768), 16385) bytes, as rsync does.
 * Both directions are implemented here in plain TypeScript (lz4-napi only offers frames and
 * size-prefixed blocks).
 */
import { ExitCode, ProtocolError } from '../errors.js';
import type { ProtocolWriter } from '../output.js';
import { CHUNK_SIZE, MAX_DATA_COUNT, writeDataHeader, type LiteralCompressor, type LiteralDecompressor } from './framing.js';

const MIN_MATCH = 4;
const MF_LIMIT = 12; // the last match must start at least 12 bytes before the end of the block
const LAST_LITERALS = 5; // the last 5 bytes are always literals
const HASH_LOG = 12;
const MAX_OFFSET = 65535;

export function lz4CompressBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

/** rsync's receive buffer size: max(LZ4_compressBound(CHUNK_SIZE), MAX_DATA_COUNT + 2). */
const LZ4_MAX_DECODED = Math.max(lz4CompressBound(CHUNK_SIZE), MAX_DATA_COUNT + 2);

const hashTable = new Int32Array(1 << HASH_LOG);

function hash4(v: number): number {
  return Math.imul(v, 2654435761) >>> (32 - HASH_LOG);
}

function read32(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
}

/** Short copies by hand: a subarray view per sequence costs more than the bytes. */
function copyBytes(dst: Uint8Array, op: number, src: Uint8Array, from: number, n: number): number {
  if (n > 32) {
    dst.set(src.subarray(from, from + n), op);
    return op + n;
  }
  for (let i = 0; i < n; i++) dst[op + i] = src[from + i];
  return op + n;
}

function writeLength(dst: Uint8Array, op: number, extra: number): number {
  while (extra >= 255) {
    dst[op++] = 255;
    extra -= 255;
  }
  dst[op++] = extra;
  return op;
}

function writeSequence(dst: Uint8Array, op: number, src: Uint8Array, litStart: number, litLen: number, offset: number, matchLen: number): number {
  const tokenPos = op++;
  const ml = matchLen - MIN_MATCH;
  let token = 0;
  if (litLen >= 15) {
    token = 0xf0;
    op = writeLength(dst, op, litLen - 15);
  } else {
    token = litLen << 4;
  }
  op = copyBytes(dst, op, src, litStart, litLen);
  if (matchLen > 0) {
    dst[op++] = offset & 0xff;
    dst[op++] = offset >> 8;
    if (ml >= 15) {
      token |= 0x0f;
      op = writeLength(dst, op, ml - 15);
    } else {
      token |= ml;
    }
  }
  dst[tokenPos] = token;
  return op;
}

/**
 * Greedy single-probe LZ4 block compressor (the shape of LZ4_compress_default). `dst` must hold
 * lz4CompressBound(src.length) bytes. Returns the block length.
 */
export function lz4CompressBlock(src: Uint8Array, dst: Uint8Array): number {
  const len = src.length;
  let op = 0;
  let anchor = 0;
  if (len >= MF_LIMIT + 1) {
    hashTable.fill(-1);
    const matchLimit = len - LAST_LITERALS;
    const lastMatchStart = len - MF_LIMIT;
    let ip = 0;
    let misses = 0;
    while (ip <= lastMatchStart) {
      const seq = read32(src, ip);
      const h = hash4(seq);
      let ref = hashTable[h];
      hashTable[h] = ip;
      if (ref < 0 || ip - ref > MAX_OFFSET || read32(src, ref) !== seq) {
        ip += 1 + (misses++ >> 6);
        continue;
      }
      misses = 0;
      let start = ip;
      while (start > anchor && ref > 0 && src[start - 1] === src[ref - 1]) {
        start--;
        ref--;
      }
      let end = ip + MIN_MATCH;
      let r = ref + (end - start);
      while (end < matchLimit && src[end] === src[r]) {
        end++;
        r++;
      }
      op = writeSequence(dst, op, src, anchor, start - anchor, start - ref, end - start);
      anchor = end;
      ip = end;
      if (ip - 2 >= 0 && ip - 2 <= lastMatchStart) hashTable[hash4(read32(src, ip - 2))] = ip - 2;
    }
  }
  return writeSequence(dst, op, src, anchor, len - anchor, 0, 0);
}

function corrupt(what: string): never {
  throw new ProtocolError(`lz4 uncompress failed: ${what}`, ExitCode.STREAMIO);
}

/** LZ4_decompress_safe: every length and offset checked against both buffers. */
export function lz4DecompressBlock(src: Uint8Array, dst: Uint8Array): number {
  const srcLen = src.length;
  const cap = dst.length;
  if (srcLen === 0) corrupt('empty block');
  let ip = 0;
  let op = 0;
  for (;;) {
    const token = src[ip++];
    let litLen = token >> 4;
    if (litLen === 15) {
      let b: number;
      do {
        if (ip >= srcLen) corrupt('truncated literal length');
        b = src[ip++];
        litLen += b;
      } while (b === 255);
    }
    if (litLen > srcLen - ip || litLen > cap - op) corrupt('literal run out of bounds');
    op = copyBytes(dst, op, src, ip, litLen);
    ip += litLen;
    if (ip === srcLen) return op;
    if (ip + 2 > srcLen) corrupt('truncated offset');
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) corrupt('offset out of bounds');
    let matchLen = (token & 0x0f) + MIN_MATCH;
    if ((token & 0x0f) === 15) {
      let b: number;
      do {
        if (ip >= srcLen) corrupt('truncated match length');
        b = src[ip++];
        matchLen += b;
      } while (b === 255);
    }
    if (matchLen > cap - op) corrupt('match out of bounds');
    let from = op - offset;
    if (offset >= matchLen && matchLen > 32) {
      dst.copyWithin(op, from, from + matchLen);
      op += matchLen;
    } else {
      const end = op + matchLen;
      while (op < end) dst[op++] = dst[from++];
    }
    if (ip >= srcLen) corrupt('block ends with a match');
  }
}

export class Lz4Compressor implements LiteralCompressor {
  private readonly out = Buffer.allocUnsafe(lz4CompressBound(MAX_DATA_COUNT));
  constructor(private readonly w: ProtocolWriter) {}

  beginFile(): void {}

  /** Blocks of up to 16383 input bytes from the start of the call (no flush concept). */
  send(data: Buffer): void {
    let rest = data;
    while (rest.length > 0) rest = rest.subarray(this.compressSome(rest));
  }

  matched(): void {}

  /** Sends one block from the front of `input`; returns how many input bytes it covered. */
  private compressSome(input: Buffer): number {
    let n = Math.min(input.length, MAX_DATA_COUNT);
    for (;;) {
      const size = lz4CompressBlock(input.subarray(0, n), this.out);
      if (size <= MAX_DATA_COUNT) {
        writeDataHeader(this.w, size);
        this.w.bytes(this.out.subarray(0, size));
        return n;
      }
      n >>= 1;
    }
  }
}

export class Lz4Decompressor implements LiteralDecompressor {
  private readonly out = Buffer.allocUnsafe(LZ4_MAX_DECODED);
  private in: Buffer | null = null;

  beginFile(): void {}

  input(chunk: Buffer): void {
    this.in = chunk;
  }

  output(): Buffer | null {
    const src = this.in;
    if (!src) return null;
    this.in = null;
    const n = lz4DecompressBlock(src, this.out);
    return Buffer.from(this.out.subarray(0, n));
  }

  endOfData(): void {}
  matched(): void {}
}
