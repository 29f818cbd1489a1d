/**
 * rsync's integer encodings: varint (proto >= 30, 32-bit), varlong(min_bytes) (proto >= 30, 64-bit),
 * longint (proto < 30, 4 or 12 bytes), vstring lengths. Encoders append to a ByteWriter; decoders
 * take a Buffer and an offset (the async reader in input.ts reuses the same helpers).
 */
import type { ByteWriter } from './bytes.js';

const TWO32 = 4294967296;

export function writeVarint(w: ByteWriter, value: number): void {
  const x = value | 0;
  const b = [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, (x >>> 24) & 0xff];
  let cnt = 4;
  while (cnt > 1 && b[cnt - 1] === 0) cnt--;
  const bit = 1 << (8 - cnt);
  let lead: number;
  if (b[cnt - 1] >= bit) {
    cnt++;
    lead = ~(bit - 1) & 0xff;
  } else if (cnt > 1) {
    lead = b[cnt - 1] | (~(2 * bit - 1) & 0xff);
  } else {
    lead = b[0];
  }
  w.u8(lead);
  for (let i = 0; i < cnt - 1; i++) w.u8(b[i]);
}

/** Number of bytes that follow a varint/varlong lead byte (count of leading one bits). */
export function extraBytes(lead: number): number {
  let k = 0;
  for (let m = 0x80; m && lead & m; m >>= 1) k++;
  return k;
}

/** Decodes a varint whose lead byte is `lead` and whose `extra` following bytes start at `buf[off]`. */
export function varintFrom(lead: number, buf: Uint8Array, off: number, extra: number): number {
  if (extra === 0) return lead;
  if (extra > 4) throw new RangeError('varint overflow');
  let v = 0;
  for (let i = extra - 1; i >= 0; i--) v = v * 256 + buf[off + i];
  const top = lead & (0xff >> (extra + 1));
  if (extra < 4) v += top * 2 ** (8 * extra);
  return v | 0;
}

function le64(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  for (let i = 0; i < 8; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

export function writeVarlong(w: ByteWriter, value: number | bigint, minBytes: number): void {
  const b = le64(value);
  let cnt = 8;
  while (cnt > minBytes && b[cnt - 1] === 0) cnt--;
  const bit = 1 << (7 - cnt + minBytes);
  let lead: number;
  if (b[cnt - 1] >= bit) {
    cnt++;
    lead = ~(bit - 1) & 0xff;
  } else if (cnt > minBytes) {
    lead = b[cnt - 1] | (~(2 * bit - 1) & 0xff);
  } else {
    lead = b[cnt - 1];
  }
  w.u8(lead);
  for (let i = 0; i < cnt - 1; i++) w.u8(b[i]);
}

/**
 * Decodes a varlong given its lead byte and the bytes after it: `low` holds the (minBytes-1) low
 * bytes followed by `extraBytes(lead)` higher bytes. Returns a Number (exact up to 2^53; negative
 * 64-bit values, used for pre-1970 times, are returned as negative numbers).
 */
export function varlongFrom(lead: number, low: Uint8Array, minBytes: number): number {
  const extra = extraBytes(lead);
  const nLow = minBytes - 1 + extra;
  if (nLow > 8) throw new RangeError('varlong overflow');
  const bytes = new Array<number>(8).fill(0);
  for (let i = 0; i < nLow; i++) bytes[i] = low[i];
  if (nLow < 8) bytes[nLow] = lead & ((1 << (8 - extra)) - 1) & 0xff;
  if (bytes[7] === 0 && bytes[6] < 0x20) {
    let v = 0;
    for (let i = 7; i >= 0; i--) v = v * 256 + bytes[i];
    return v;
  }
  let big = 0n;
  for (let i = 7; i >= 0; i--) big = (big << 8n) | BigInt(bytes[i]);
  return Number(BigInt.asIntN(64, big));
}

/** longint (proto < 30): 4-byte int when 0..0x7fffffff, else ff ff ff ff + 8 bytes. */
export function writeLongint(w: ByteWriter, value: number): void {
  if (value >= 0 && value <= 0x7fffffff) {
    w.i32(value);
    return;
  }
  w.i32(-1);
  const lo = value >>> 0;
  const hi = Math.floor(value / TWO32);
  w.u32(lo);
  w.i32(hi);
}

/** vstring (negotiation lists, xname): 1-byte length below 128, else 2 bytes with 0x80 set; max 0x7fff. */
export function writeVstring(w: ByteWriter, s: Buffer): void {
  if (s.length > 0x7fff) throw new RangeError('vstring too long');
  if (s.length > 0x7f) w.u8(0x80 | (s.length >> 8));
  w.u8(s.length & 0xff);
  w.bytes(s);
}
