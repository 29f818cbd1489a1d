/** Helpers for the token-stream tests: in-memory reader/writer and capture parsing. */
import { PassThrough } from 'node:stream';
import { ProtocolReader } from '../../src/protocol/input.js';
import {
  createTokenDecoder,
  createTokenEncoder,
  type CompressName,
  type Token,
  type TokenDecoder,
} from '../../src/protocol/token.js';

import { collectingWriter } from './flist-support.js';

export { collectingWriter };

export function readerOf(data: Buffer): ProtocolReader {
  const pt = new PassThrough();
  const r = new ProtocolReader(pt);
  pt.end(data);
  return r;
}

/** A decoded file: literal bytes merged, tokens as numbers, literal boundaries kept for checks. */
export interface DecodedFile {
  items: Array<number | Buffer>; // block index or merged literal run
  data: Buffer; // reconstructed file (needs the basis)
}

/** Decodes one file's tokens; `basis(i)` gives block i's bytes (fed back with matched()). */
export async function decodeFile(dec: TokenDecoder, maxBlocks: number, basis: (i: number) => Buffer): Promise<DecodedFile> {
  dec.beginFile(maxBlocks);
  const items: Array<number | Buffer> = [];
  const out: Buffer[] = [];
  let lit: Buffer[] = [];
  for (;;) {
    const t: Token = await dec.next();
    if (t.kind === 'literal') {
      lit.push(Buffer.from(t.data));
      out.push(Buffer.from(t.data));
      continue;
    }
    if (lit.length) items.push(Buffer.concat(lit));
    lit = [];
    if (t.kind === 'end') break;
    items.push(t.index);
    const b = basis(t.index);
    dec.matched(b);
    out.push(b);
  }
  return { items, data: Buffer.concat(out) };
}

export type Op = { lit: Buffer } | { match: number };

/** Encodes files (each a list of ops over `blocks`) into one session stream. */
export function encodeSession(name: CompressName, protocol: number, files: Op[][], blocks: Buffer[], level?: number): Buffer {
  const { w, bytes } = collectingWriter();
  const enc = createTokenEncoder(w, name, level, protocol);
  for (const ops of files) {
    enc.beginFile();
    for (const op of ops) {
      if ('lit' in op) enc.literal(op.lit);
      else enc.match(op.match, blocks[op.match]);
    }
    enc.endFile();
    if (w.pendingBytes > 1 << 20) w.flush();
  }
  return bytes();
}

export async function decodeSession(name: CompressName, protocol: number, stream: Buffer, nfiles: number, blocks: Buffer[]): Promise<DecodedFile[]> {
  const dec = createTokenDecoder(readerOf(stream), name, protocol);
  const files: DecodedFile[] = [];
  for (let i = 0; i < nfiles; i++) files.push(await decodeFile(dec, blocks.length, (k) => blocks[k]));
  return files;
}

/** Concatenated MSG_DATA payloads of one direction of a decoded capture (test/fixtures/captures). */
export function captureData(text: string, dir: 'c2s' | 's2c'): Buffer {
  const start = text.indexOf(dir === 'c2s' ? '## client -> server (c2s)' : '## server -> client (s2c)');
  const end = dir === 'c2s' ? text.indexOf('## server -> client (s2c)') : text.length;
  const lines = text.slice(start, end).split('\n');
  const out: Buffer[] = [];
  let inData = false;
  for (const line of lines) {
    if (line.startsWith('  frame hdr')) {
      inData = line.includes('MSG_DATA');
      continue;
    }
    if (inData && /^ {7}[0-9a-f]{2}( [0-9a-f]{2})*\s*$/.test(line)) out.push(Buffer.from(line.trim().replace(/ /g, ''), 'hex'));
  }
  return Buffer.concat(out);
}

/** Deterministic pseudo-random bytes. */
export function prng(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Compressible text-like bytes. */
export function text(n: number, seed: number): Buffer {
  const words = ['rsync', 'token', 'stream', 'deflate', 'block', 'literal', 'match', 'the', 'of', 'and', 'server', 'client', '\n'];
  const parts: string[] = [];
  let len = 0;
  let x = seed >>> 0 || 7;
  while (len < n) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const w = words[(x >>> 16) % words.length] + ((x >>> 8) % 5 === 0 ? String(x % 1000) : '') + ' ';
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('').slice(0, n), 'latin1');
}

/** The files behind test/fixtures/token-captures (regenerated deterministically; see README there). */
export function captureFiles(): Record<'small' | 'big' | 'fresh', { basis?: Buffer; neu: Buffer; block?: number }> {
  const basis = text(120000, 1);
  const mod = Buffer.from(basis.subarray(20000, 60000));
  for (let i = 0; i < mod.length; i += 5000) mod[i] ^= 0x20;
  const neu = Buffer.concat([
    basis.subarray(0, 20000),
    Buffer.from('INSERTED BYTES HERE'),
    mod,
    basis.subarray(90000, 120000),
    basis.subarray(0, 4096),
    text(30000, 2),
    basis.subarray(60000, 90000),
  ]);
  const big = Buffer.from(prng(200000, 3).toString('hex'), 'latin1');
  const bigNew = Buffer.concat([
    big.subarray(0, 100000),
    big.subarray(10000, 14000),
    big.subarray(80000, 84000),
    Buffer.from('xyz'),
    big.subarray(100000, 200000),
    big.subarray(190000, 195000),
    big.subarray(40000, 41000),
    big.subarray(200000, 400000),
  ]);
  return {
    small: { basis, neu, block: 2048 },
    big: { basis: big, neu: bigNew, block: 100000 },
    fresh: { neu: text(200000, 5) },
  };
}

/** Blocks of a basis file for a given block length. */
export function splitBlocks(basis: Buffer | undefined, blength: number | undefined): Buffer[] {
  const out: Buffer[] = [];
  if (!basis || !blength) return out;
  for (let off = 0; off < basis.length; off += blength) out.push(basis.subarray(off, off + blength));
  return out;
}

/**
 * The bytes the client sent after its handshake, demultiplexed when `multiplexed` (protocol >= 30
 * client senders multiplex their output; older ones don't). `vstrings` negotiation strings follow
 * the version int.
 */
export function clientStream(raw: Buffer, vstrings: number, multiplexed: boolean): Buffer {
  let p = 4;
  for (let i = 0; i < vstrings; i++) p += 1 + raw[p];
  if (!multiplexed) return raw.subarray(p);
  const out: Buffer[] = [];
  while (p + 4 <= raw.length) {
    const hdr = raw.readUInt32LE(p);
    const len = hdr & 0xffffff;
    if (hdr >>> 24 === 7) out.push(raw.subarray(p + 4, p + 4 + len));
    p += 4 + len;
  }
  return Buffer.concat(out);
}

/** Offsets just past every plausible sum-head echo (count, blength, s2length, remainder). */
export function headCandidates(data: Buffer, count: number, blength: number, remainder: number): number[] {
  const out: number[] = [];
  for (let i = 0; i + 16 <= data.length; i++) {
    if (data.readInt32LE(i) !== count || data.readInt32LE(i + 4) !== blength) continue;
    const s2 = data.readInt32LE(i + 8);
    if (s2 < 0 || s2 > 16 || data.readInt32LE(i + 12) !== remainder) continue;
    out.push(i + 16);
  }
  return out;
}
