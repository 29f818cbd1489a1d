/**
 * The sum head (count, blength, s2length, remainder) and the block sums that follow it
 * (docs/protocol.md §7.3-7.6). Everything read from the wire is validated before any allocation
 * sized by it (CVE-2024-12084, CVE-2026-53792).
 */
import { ExitCode, ProtocolError, RsyncError } from './errors.js';
import type { ProtocolReader } from './input.js';
import type { ProtocolWriter } from './output.js';

export interface SumHead {
  count: number;
  blength: number;
  s2length: number;
  remainder: number;
}

export interface BlockSums {
  head: SumHead;
  sum1: Uint32Array;
  /** count * s2length bytes. */
  sum2: Buffer;
}

/** BLOCK_SIZE: the minimum automatic block length. */
const MIN_BLOCK_LENGTH = 700;
/** MAX_BLOCK_SIZE (protocol >= 30) and OLD_MAX_BLOCK_SIZE (protocol < 30). */
const MAX_BLOCK_LENGTH = 1 << 17;
const OLD_MAX_BLOCK_LENGTH = 1 << 29;
/** SUM_LENGTH: the longest strong sum a sum head may carry. */
const MAX_S2LENGTH = 16;
const SHORT_SUM_LENGTH = 2;
const BLOCKSUM_BIAS = 10;
/**
 * Memory bound for one file's block sums (sum1 + sum2 + the matcher's 4-byte chain link).
 * A 2 TiB file at protocol 30 (16 Mi blocks of 128 KiB, s2length 6) needs about 300 MiB.
 */
const MAX_SUMS_MEMORY = 384 * 1024 * 1024;
/** Blocks read per piece by readBlockSums. */
const READ_PIECE_BLOCKS = 4096;

function maxBlockLength(protocol: number): number {
  return protocol < 30 ? OLD_MAX_BLOCK_LENGTH : MAX_BLOCK_LENGTH;
}

/** floor(log2(n)) for a non-negative safe integer; 0 for n < 2. */
function log2Floor(n: number): number {
  let b = 0;
  while (n >= 2) {
    n = Math.floor(n / 2);
    b++;
  }
  return b;
}

/** The reference's block length: ~sqrt(len) rounded down to a multiple of 8, in [700, max]. */
function chooseBlockLength(len: number, protocol: number): number {
  if (len <= MIN_BLOCK_LENGTH * MIN_BLOCK_LENGTH) return MIN_BLOCK_LENGTH;
  const maxb = maxBlockLength(protocol);
  let c = 2 ** Math.floor(log2Floor(len) / 2); // c = 1; l = len; while (l >>= 2) c <<= 1
  if (c >= maxb) return maxb;
  let blength = 0;
  do {
    blength |= c;
    if (len < blength * blength) blength &= ~c;
    c >>= 1;
  } while (c >= 8);
  return Math.max(blength, MIN_BLOCK_LENGTH);
}

/** The strong-sum length for a normal pass: just enough bits for the file and block size. */
function chooseS2Length(len: number, blength: number, digestLen: number): number {
  const maxS2 = Math.min(MAX_S2LENGTH, digestLen);
  let b = BLOCKSUM_BIAS + 2 * log2Floor(len);
  for (let c = blength; (c >>= 1) && b; ) b--;
  const s2 = Math.trunc((b + 1 - 32 + 7) / 8); // C integer division truncates toward 0
  return Math.min(Math.max(s2, SHORT_SUM_LENGTH), maxS2);
}

/**
 * The sum head rsync's generator (sum_sizes_sqroot) computes for a basis of fileLength bytes.
 * `redo` is the second attempt after a failed whole-file checksum: the full strong sum, capped
 * at the digest length (3.4+ senders refuse more; docs/protocol.md §11 trap 13). protocol must be >= 27.
 */
export function chooseSumHead(
  fileLength: number,
  protocol: number,
  digestLen: number,
  opts: { blockSize?: number; redo?: boolean } = {},
): SumHead {
  if (!Number.isSafeInteger(fileLength) || fileLength < 0) {
    throw new RsyncError(`invalid file length ${fileLength}`, ExitCode.FILEIO);
  }
  const blength = opts.blockSize ? opts.blockSize : chooseBlockLength(fileLength, protocol);
  const s2length = opts.redo
    ? Math.min(MAX_S2LENGTH, digestLen)
    : chooseS2Length(fileLength, blength, digestLen);
  const remainder = fileLength % blength;
  const count = Math.floor(fileLength / blength) + (remainder !== 0 ? 1 : 0);
  if (count > 0x7fffffff) {
    throw new RsyncError(`too many blocks (${count}) for a ${fileLength}-byte file`, ExitCode.FILEIO);
  }
  return { count, blength, s2length, remainder };
}

/**
 * Refuses a sum head a hostile peer could use against us. s2length may exceed the digest length
 * (3.2.x/3.4.x generators send 16 in the redo pass even for 8-byte xxh64/xxh3): we accept up to
 * 16 and the matcher compares only min(s2length, digestLen) bytes of a freshly computed digest,
 * so no byte beyond the real digest is ever compared (CVE-2024-12085).
 */
export function validateSumHead(head: SumHead, protocol: number, digestLen: number): void {
  const { count, blength, s2length, remainder } = head;
  const ints = [count, blength, s2length, remainder];
  if (!ints.every((v) => Number.isInteger(v))) throw new ProtocolError('invalid sum head');
  if (count < 0) throw new ProtocolError(`Invalid checksum count ${count}`);
  if (blength < 0 || blength > maxBlockLength(protocol)) {
    throw new ProtocolError(`Invalid block length ${blength}`);
  }
  if (count > 0 && blength === 0) throw new ProtocolError('Invalid zero block length');
  if (count * blength > Number.MAX_SAFE_INTEGER) {
    throw new ProtocolError('checksum count*blength overflows');
  }
  if (s2length < 0 || s2length > MAX_S2LENGTH) {
    throw new ProtocolError(`Invalid checksum length ${s2length}`);
  }
  if (remainder < 0 || remainder > blength) {
    throw new ProtocolError(`Invalid remainder length ${remainder}`);
  }
  // digestLen plays no part: any s2length up to 16 is tolerated (see above).
  void digestLen;
  if (count * (8 + s2length) > MAX_SUMS_MEMORY) {
    throw new ProtocolError(`Invalid checksum count ${count} (too large)`);
  }
}

/**
 * Reads a sum head (s2length is on the wire from protocol 27). Validates everything that does
 * not depend on the digest; the caller still runs validateSumHead with its digest length.
 */
export async function readSumHead(r: ProtocolReader): Promise<SumHead> {
  const count = await r.readI32();
  const blength = await r.readI32();
  const s2length = r.protocol < 27 ? SHORT_SUM_LENGTH : await r.readI32();
  const remainder = await r.readI32();
  const head = { count, blength, s2length, remainder };
  validateSumHead(head, r.protocol, 0);
  return head;
}

export function writeSumHead(w: ProtocolWriter, head: SumHead): void {
  w.i32(head.count);
  w.i32(head.blength);
  if (w.protocol >= 27) w.i32(head.s2length);
  w.i32(head.remainder);
}

/**
 * Reads count × (int32 sum1 + s2length bytes). Storage grows with the data actually received,
 * so a large claimed count costs the peer bandwidth before it costs us memory.
 */
export async function readBlockSums(r: ProtocolReader, head: SumHead): Promise<BlockSums> {
  validateSumHead(head, r.protocol, 0);
  const { count, s2length } = head;
  const rec = 4 + s2length;
  let cap = Math.min(count, 1 << 16);
  let sum1 = new Uint32Array(cap);
  let sum2 = Buffer.alloc(cap * s2length);
  for (let done = 0; done < count; ) {
    const n = Math.min(READ_PIECE_BLOCKS, count - done);
    if (done + n > cap) {
      cap = Math.min(count, Math.max(cap * 2, done + n));
      const g1 = new Uint32Array(cap);
      g1.set(sum1.subarray(0, done));
      const g2 = Buffer.alloc(cap * s2length);
      sum2.copy(g2, 0, 0, done * s2length);
      sum1 = g1;
      sum2 = g2;
    }
    const piece = await r.readBytes(n * rec);
    for (let j = 0, p = 0; j < n; j++, p += rec) {
      sum1[done + j] = piece.readUInt32LE(p);
      piece.copy(sum2, (done + j) * s2length, p + 4, p + rec);
    }
    done += n;
  }
  return { head, sum1, sum2 };
}

/** Writes the sums of consecutive blocks: sum1[j] as an int32, then s2length bytes of sum2. */
export function writeBlockSumBatch(w: ProtocolWriter, sum1: Uint32Array, sum2: Buffer, s2length: number): void {
  for (let j = 0; j < sum1.length; j++) {
    w.i32(sum1[j] | 0);
    w.bytes(sum2.subarray(j * s2length, j * s2length + s2length));
  }
}
