/**
 * Byte-level mutations in the style of libFuzzer's MutationDispatcher: erase, insert, change
 * bytes/bits, interesting integers (int32 LE lengths, varints, ndx escapes), ASCII numbers,
 * copies within the input, splices with another corpus entry, dictionary words.
 */

/** Deterministic PRNG (sfc32, seeded from the command line). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = seed >>> 0;
    for (let i = 0; i < 16; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** 0 <= result < n */
  below(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }

  chance(oneIn: number): boolean {
    return this.below(oneIn) === 0;
  }
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xfe, 0xff, 0x20, 0x40, 16, 32, 64, 100];
const INTERESTING_32 = [
  0, 1, 2, 3, 4, 7, 8, 15, 16, 32, 64, 127, 128, 255, 256, 512, 700, 1000, 1024, 4095, 4096, 8192, 16383, 16384, 32767, 32768, 65535,
  65536, 131072, 0x7ffe, 0xffffff, 0x1000000, 0x7ffffffe, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
];

/** Varint/varlong lead bytes with their byte counts (rsync's "leading one bits" encoding). */
const VARINT_FORMS: number[][] = [[0x80, 0xff], [0xc0, 0xff, 0xff], [0xe0, 0xff, 0xff, 0xff], [0xf0, 0xff, 0xff, 0xff, 0xff], [0xf8], [0xfc], [0xff]];

function int32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
}

type Mutator = (rng: Rng, d: Buffer, maxLen: number, ctx: MutationContext) => Buffer;

export interface MutationContext {
  /** Another corpus entry for splicing. */
  other: () => Buffer;
  dict: Buffer[];
}

function insertAt(d: Buffer, at: number, piece: Uint8Array, maxLen: number): Buffer {
  const out = Buffer.concat([d.subarray(0, at), piece, d.subarray(at)]);
  return out.length > maxLen ? out.subarray(0, maxLen) : out;
}

function overwriteAt(d: Buffer, at: number, piece: Uint8Array): Buffer {
  const out = Buffer.from(d);
  for (let i = 0; i < piece.length && at + i < out.length; i++) out[at + i] = piece[i];
  return out;
}

const eraseBytes: Mutator = (rng, d) => {
  if (d.length <= 1) return d;
  const n = 1 + rng.below(Math.min(d.length - 1, rng.chance(4) ? 64 : 4));
  const at = rng.below(d.length - n + 1);
  return Buffer.concat([d.subarray(0, at), d.subarray(at + n)]);
};

const insertByte: Mutator = (rng, d, maxLen) => insertAt(d, rng.below(d.length + 1), Buffer.of(rng.below(256)), maxLen);

const insertRepeated: Mutator = (rng, d, maxLen) => {
  const n = 1 + rng.below(rng.chance(8) ? 512 : 16);
  return insertAt(d, rng.below(d.length + 1), Buffer.alloc(n, rng.chance(2) ? rng.below(256) : 0), maxLen);
};

const changeByte: Mutator = (rng, d) => {
  if (d.length === 0) return Buffer.of(rng.below(256));
  const out = Buffer.from(d);
  out[rng.below(out.length)] = rng.chance(2) ? rng.below(256) : INTERESTING_8[rng.below(INTERESTING_8.length)];
  return out;
};

const changeBit: Mutator = (rng, d) => {
  if (d.length === 0) return d;
  const out = Buffer.from(d);
  out[rng.below(out.length)] ^= 1 << rng.below(8);
  return out;
};

const shuffleBytes: Mutator = (rng, d) => {
  if (d.length < 2) return d;
  const n = 2 + rng.below(Math.min(8, d.length - 1));
  const at = rng.below(d.length - n + 1);
  const out = Buffer.from(d);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = out[at + i];
    out[at + i] = out[at + j];
    out[at + j] = t;
  }
  return out;
};

const changeBinaryInteger: Mutator = (rng, d) => {
  if (d.length < 4) return changeByte(rng, d, 0, { other: () => d, dict: [] });
  const at = rng.below(d.length - 3);
  const out = Buffer.from(d);
  const v = out.readUInt32LE(at);
  const delta = rng.below(33) - 16;
  const next = rng.chance(3) ? INTERESTING_32[rng.below(INTERESTING_32.length)] : v + delta;
  if (rng.chance(4)) out.writeUInt32BE(next >>> 0, at);
  else out.writeUInt32LE(next >>> 0, at);
  return out;
};

const insertInteresting: Mutator = (rng, d, maxLen) => {
  let piece: Uint8Array;
  const pick = rng.below(3);
  if (pick === 0) piece = int32le(INTERESTING_32[rng.below(INTERESTING_32.length)]);
  else if (pick === 1) piece = Buffer.from(VARINT_FORMS[rng.below(VARINT_FORMS.length)]);
  else piece = Buffer.of(0xfe, rng.below(256), rng.below(256)); // ndx escape
  const at = rng.below(d.length + 1);
  return rng.chance(2) ? insertAt(d, at, piece, maxLen) : overwriteAt(d, at, piece);
};

const changeAsciiInteger: Mutator = (rng, d) => {
  const s = d.toString('latin1');
  const m = [...s.matchAll(/[0-9]+/g)];
  if (m.length === 0) return changeByte(rng, d, 0, { other: () => d, dict: [] });
  const hit = m[rng.below(m.length)];
  const choices = ['0', '1', '-1', '4294967296', '99999999999999999999', '2147483648', String(Number(hit[0]) * 2 + 1), ''];
  const repl = choices[rng.below(choices.length)];
  return Buffer.from(s.slice(0, hit.index) + repl + s.slice(hit.index! + hit[0].length), 'latin1');
};

const copyPart: Mutator = (rng, d, maxLen) => {
  if (d.length < 2) return d;
  const n = 1 + rng.below(Math.min(d.length, 128));
  const from = rng.below(d.length - n + 1);
  const piece = Buffer.from(d.subarray(from, from + n));
  const at = rng.below(d.length + 1);
  return rng.chance(2) ? insertAt(d, at, piece, maxLen) : overwriteAt(d, at, piece);
};

const crossOver: Mutator = (rng, d, maxLen, ctx) => {
  const o = ctx.other();
  if (o.length === 0) return d;
  const from = rng.below(o.length);
  const n = 1 + rng.below(o.length - from);
  const piece = o.subarray(from, from + n);
  if (rng.chance(3)) {
    // splice: our head + its tail
    const cut = rng.below(d.length + 1);
    const out = Buffer.concat([d.subarray(0, cut), o.subarray(from)]);
    return out.length > maxLen ? out.subarray(0, maxLen) : out;
  }
  return insertAt(d, rng.below(d.length + 1), piece, maxLen);
};

const dictionary: Mutator = (rng, d, maxLen, ctx) => {
  if (ctx.dict.length === 0) return insertInteresting(rng, d, maxLen, ctx);
  const word = ctx.dict[rng.below(ctx.dict.length)];
  const at = rng.below(d.length + 1);
  return rng.chance(3) ? overwriteAt(d, at, word) : insertAt(d, at, word, maxLen);
};

const truncate: Mutator = (rng, d) => (d.length ? d.subarray(0, rng.below(d.length)) : d);

const MUTATORS: Mutator[] = [
  eraseBytes,
  insertByte,
  insertRepeated,
  changeByte,
  changeByte,
  changeBit,
  changeBit,
  shuffleBytes,
  changeBinaryInteger,
  changeBinaryInteger,
  insertInteresting,
  changeAsciiInteger,
  copyPart,
  crossOver,
  crossOver,
  dictionary,
  dictionary,
  truncate,
];

/** Applies 1..6 stacked mutations; mostly one, so a single right byte is not undone by the next. */
export function mutate(rng: Rng, input: Buffer, maxLen: number, ctx: MutationContext): Buffer {
  let d = input.length > maxLen ? input.subarray(0, maxLen) : input;
  const depth = 1 + (rng.chance(4) ? rng.below(6) : 0);
  for (let i = 0; i < depth; i++) d = MUTATORS[rng.below(MUTATORS.length)](rng, d, maxLen, ctx);
  return d.length > maxLen ? d.subarray(0, maxLen) : d;
}
