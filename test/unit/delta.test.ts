import t from 'tap';
import { randomBytes } from 'node:crypto';
import {
  blockStrongSum,
  initChecksums,
  rollingChecksum,
  type ChecksumName,
  type ChecksumSpec,
} from '../../src/protocol/checksum.js';
import { chooseSumHead, type BlockSums, type SumHead } from '../../src/protocol/sumhead.js';
import { BlockSumsBuilder, DeltaMatcher, type DeltaMatcherOptions } from '../../src/engine/delta.js';
import { collectBlockSums } from '../helpers/block-sums.js';
import { CAPTURES } from '../helpers/captures.js';
import { hashWasmBinaries } from '../../src/patches/hash-wasm.js';

type Token = { kind: 'lit'; data: Buffer } | { kind: 'match'; index: number; data: Buffer };

function spec(name: ChecksumName = 'xxh128', seed = 0x1234567): ChecksumSpec {
  return { name, protocol: 32, seed, seedFix: true, negotiated: true };
}

function* pieces(data: Buffer, chunk: number): Generator<Buffer> {
  for (let p = 0; p < data.length; p += chunk) yield data.subarray(p, p + chunk);
}

function buildSums(basis: Buffer, sp: ChecksumSpec, head?: SumHead, chunk = 65536): BlockSums {
  return collectBlockSums(head ?? chooseSumHead(basis.length, sp.protocol, 16), sp, pieces(basis, chunk));
}

/** Runs the matcher, feeding `data` in chunks given by sizes() (copies of what the sink sees). */
function delta(
  sums: BlockSums,
  sp: ChecksumSpec,
  data: Buffer,
  opts: DeltaMatcherOptions = {},
  sizes: () => number = () => 65536,
): Token[] {
  const tokens: Token[] = [];
  const m = new DeltaMatcher(sums, sp, {
    literal: (d) => tokens.push({ kind: 'lit', data: Buffer.from(d) }),
    match: (index, d) => tokens.push({ kind: 'match', index, data: Buffer.from(d) }),
  }, opts);
  for (let p = 0; p < data.length; ) {
    const n = Math.max(1, sizes());
    m.push(data.subarray(p, p + n));
    p += n;
  }
  m.finish();
  return tokens;
}

function blockRange(head: SumHead, i: number): [number, number] {
  const start = i * head.blength;
  const len = i === head.count - 1 && head.remainder ? head.remainder : head.blength;
  return [start, start + len];
}

/** The receiver writing a new file from an untouched basis. */
function applyTokens(basis: Buffer, head: SumHead, tokens: Token[]): Buffer {
  const parts: Buffer[] = [];
  for (const tk of tokens) {
    if (tk.kind === 'lit') parts.push(tk.data);
    else parts.push(basis.subarray(...blockRange(head, tk.index)));
  }
  return Buffer.concat(parts);
}

/** The receiver with --inplace: one buffer, overwritten front to back as tokens arrive. */
function applyInPlace(basis: Buffer, head: SumHead, tokens: Token[]): Buffer {
  let file = Buffer.from(basis);
  let pos = 0;
  const ensure = (n: number) => {
    if (n > file.length) {
      const g = Buffer.alloc(n);
      file.copy(g);
      file = g;
    }
  };
  for (const tk of tokens) {
    if (tk.kind === 'lit') {
      ensure(pos + tk.data.length);
      tk.data.copy(file, pos);
      pos += tk.data.length;
    } else {
      const [s, e] = blockRange(head, tk.index);
      ensure(pos + e - s);
      if (s !== pos) file.copy(file, pos, s, e); // reads the CURRENT content of the file
      pos += e - s;
    }
  }
  return file.subarray(0, pos);
}

function literalBytes(tokens: Token[]): number {
  return tokens.reduce((n, tk) => n + (tk.kind === 'lit' ? tk.data.length : 0), 0);
}

/** The assertions check() needs (a tap Test provides them). */
type Asserts = Pick<typeof t, 'ok' | 'fail'>;

function check(
  t: Asserts,
  label: string,
  basis: Buffer,
  next: Buffer,
  opts: DeltaMatcherOptions & { name?: ChecksumName; head?: SumHead } = {},
): Token[] {
  const sp = spec(opts.name ?? 'xxh128');
  const sums = buildSums(basis, sp, opts.head);
  const tokens = delta(sums, sp, next, opts);
  const out = opts.inplace ? applyInPlace(basis, sums.head, tokens) : applyTokens(basis, sums.head, tokens);
  t.ok(out.equals(next), `${label}: reconstructs the new file`);
  const max = opts.maxLiteral ?? 32768;
  t.ok(tokens.every((tk) => tk.kind === 'match' || (tk.data.length > 0 && tk.data.length <= max)), `${label}: literal pieces in 1..${max}`);
  for (const tk of tokens) {
    if (tk.kind === 'match' && !tk.data.equals(basis.subarray(...blockRange(sums.head, tk.index)))) {
      t.fail(`${label}: match data differs from the basis block`);
      break;
    }
  }
  return tokens;
}

/** Seeded pseudo-random bytes (repeatable failures). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

function bytesFrom(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rand() >>> 24;
  return b;
}

t.before(async () => {
  await initChecksums(hashWasmBinaries());
});

t.test('BlockSumsBuilder: per-block sums, any chunking', async (t) => {
  const basis = randomBytes(5000);
  const sp = spec('xxh128', 99);
  const head = chooseSumHead(basis.length, 32, 16);
  const sums = buildSums(basis, sp, head);
  t.same(sums.head, head);
  for (let i = 0; i < head.count; i++) {
    const blk = basis.subarray(...blockRange(head, i));
    t.equal(sums.sum1[i], rollingChecksum(blk, 0, blk.length), `sum1[${i}]`);
    t.same(sums.sum2.subarray(i * 2, i * 2 + 2), blockStrongSum(sp, blk).subarray(0, 2), `sum2[${i}]`);
  }
  for (const chunk of [1, 7, 699, 700, 701, 4999, 100000]) {
    const again = buildSums(basis, sp, head, chunk);
    t.same(Buffer.from(again.sum1.buffer), Buffer.from(sums.sum1.buffer), `chunk ${chunk}: sum1`);
    t.same(again.sum2, sums.sum2, `chunk ${chunk}: sum2`);
  }
  // A basis that shrank while being read: missing bytes count as zeros.
  const short = collectBlockSums(head, sp, [basis.subarray(0, 4000)]);
  const padded = Buffer.concat([basis.subarray(0, 4000), Buffer.alloc(1000)]);
  t.same(short.sum2, buildSums(padded, sp, head).sum2);
  t.same(short.sum1, buildSums(padded, sp, head).sum1);
  // Extra data beyond the head is ignored.
  const long = collectBlockSums(head, sp, [Buffer.concat([basis, randomBytes(300)])]);
  t.same(long.sum2, sums.sum2);
  // s2length above the digest length: the extra bytes stay zero.
  const h16: SumHead = { ...head, s2length: 16 };
  const x64 = buildSums(basis, spec('xxh64', 5), h16);
  t.same(x64.sum2.subarray(8, 16), Buffer.alloc(8));
  t.same(x64.sum2.subarray(0, 8), blockStrongSum(spec('xxh64', 5), basis.subarray(0, 700)));
  // Empty basis.
  t.equal(buildSums(Buffer.alloc(0), sp).sum1.length, 0);
});

t.test('BlockSumsBuilder hands the sums over in bounded batches, exactly count of them', async (t) => {
  const sp = spec('md5', 7);
  const basis = randomBytes(10_000 * 50 + 37);
  const head = chooseSumHead(basis.length, 32, 16, { blockSize: 50 });
  t.equal(head.count, 10_001);
  const ref = Buffer.alloc(head.count * (4 + head.s2length));
  for (let i = 0; i < head.count; i++) {
    const blk = basis.subarray(...blockRange(head, i));
    ref.writeUInt32LE(rollingChecksum(blk, 0, blk.length), i * (4 + head.s2length));
    blockStrongSum(sp, blk).copy(ref, i * (4 + head.s2length) + 4, 0, head.s2length);
  }
  for (const chunk of [1, 49, 50, 51, 4096 * 50, 4096 * 50 + 1, 1 << 20]) {
    const out: Buffer[] = [];
    let largest = 0;
    const b = new BlockSumsBuilder(head, sp, (s1, s2) => {
      largest = Math.max(largest, s1.length);
      for (let j = 0; j < s1.length; j++) {
        const rec = Buffer.alloc(4 + head.s2length);
        rec.writeUInt32LE(s1[j], 0);
        s2.copy(rec, 4, j * head.s2length, (j + 1) * head.s2length);
        out.push(rec);
      }
    });
    let fed = 0;
    let lag = 0;
    for (const c of pieces(basis, chunk)) {
      b.push(c);
      fed += c.length;
      lag = Math.max(lag, fed - out.length * 50);
    }
    // sums are handed over while the data comes, never more than a batch (and a block) behind it
    t.ok(lag < 4097 * 50, `chunk ${chunk}: streamed as fed (lag ${lag} bytes)`);
    t.equal(b.complete, true);
    b.finish();
    t.ok(largest <= 4096, `chunk ${chunk}: batches of at most 4096 blocks (${largest})`);
    t.ok(Buffer.concat(out).equals(ref), `chunk ${chunk}: every sum, in order`);
  }
  t.equal(BlockSumsBuilder.bytesFor(head), 4096 * (4 + head.s2length) + 50, 'what a builder holds');
  // Fed less than the head promised (the basis shrank) or more (it grew): still count sums.
  for (const [label, data] of [['shrunk', basis.subarray(0, 123_456)], ['grown', Buffer.concat([basis, randomBytes(5000)])]] as const) {
    let n = 0;
    const b = new BlockSumsBuilder(head, sp, (s1) => {
      n += s1.length;
    });
    b.push(data);
    b.finish();
    t.equal(n, head.count, `${label}: exactly count sums`);
  }
});

t.test('BlockSumsBuilder reproduces the captured delta32push sums of block 4', async (t) => {
  // Basis block 4 as reconstructed in checksum.test.ts (the 707-byte literal minus "INSERT!").
  const { readFileSync } = await import('node:fs');
  const text = readFileSync(`${CAPTURES}/delta32push.txt`, 'utf8');
  const hex = text
    .split('\n')
    .filter((l) => /^\s+([0-9a-f]{2} )*[0-9a-f]{2}\s*$/.test(l))
    .join(' ')
    .trim()
    .split(/\s+/);
  const all = Buffer.from(hex.join(''), 'hex');
  const at = all.indexOf(Buffer.from('c3020000', 'hex'));
  const lit = all.subarray(at + 4, at + 4 + 707);
  const ins = lit.indexOf('INSERT!');
  const block4 = Buffer.concat([lit.subarray(0, ins), lit.subarray(ins + 7)]);
  const basis = Buffer.concat([randomBytes(2800), block4, randomBytes(1500)]);
  const sums = buildSums(basis, spec('xxh128', 1795472833));
  t.same(sums.head, { count: 8, blength: 700, s2length: 2, remainder: 100 });
  t.equal(sums.sum1[4], 0x9a04fdbe);
  t.same(sums.sum2.subarray(8, 10), Buffer.from('8524', 'hex'));
});

t.test('identical, empty and short files', async (t) => {
  const basis = randomBytes(100_000);
  const same = check(t, 'identical', basis, basis);
  t.equal(literalBytes(same), 0);
  t.same(
    same.map((tk) => (tk.kind === 'match' ? tk.index : -1)),
    Array.from({ length: same.length }, (_, i) => i),
    'blocks in order',
  );
  t.same(check(t, 'empty new file', basis, Buffer.alloc(0)), []);
  const lit = check(t, 'empty basis', Buffer.alloc(0), basis);
  t.equal(literalBytes(lit), basis.length);
  t.equal(lit.length, Math.ceil(basis.length / 32768));
  t.same(check(t, 'both empty', Buffer.alloc(0), Buffer.alloc(0)), []);
  // Shorter than one block: the short last block matches only at the very end.
  const small = randomBytes(500);
  const s = check(t, 'short identical', small, small);
  t.same(s.map((tk) => tk.kind), ['match']);
  const grown = Buffer.concat([small, randomBytes(10)]);
  t.equal(literalBytes(check(t, 'short + tail', small, grown)), grown.length, 'short block not matched mid-file');
  const prefixed = Buffer.concat([randomBytes(10), small]);
  const p = check(t, 'prefix + short', small, prefixed);
  t.same(p.map((tk) => tk.kind), ['lit', 'match']);
  // Remainder block at the end of a larger file.
  const b2 = randomBytes(7 * 700 + 123);
  const r = check(t, 'remainder', b2, Buffer.concat([randomBytes(50), b2]));
  t.equal(literalBytes(r), 50);
  t.equal(check(t, 'tiny', Buffer.from('a'), Buffer.from('a')).length, 1);
});

t.test('random edits, inserts, deletes: round trip with any chunking', async (t) => {
  const rand = prng(42);
  for (let round = 0; round < 12; round++) {
    const size = 1 + (rand() % 400_000);
    const basis = bytesFrom(rand, size);
    let next = Buffer.from(basis);
    const edits = rand() % 20;
    for (let e = 0; e < edits; e++) {
      const at = next.length ? rand() % next.length : 0;
      const op = rand() % 3;
      const n = 1 + (rand() % 3000);
      if (op === 0) next = Buffer.concat([next.subarray(0, at), bytesFrom(rand, n), next.subarray(at)]);
      else if (op === 1) next = Buffer.concat([next.subarray(0, at), next.subarray(at + n)]);
      else for (let i = at; i < Math.min(next.length, at + n); i++) next[i] ^= 0x5a;
    }
    const sp = spec('xxh128', rand() | 0);
    const sums = buildSums(basis, sp);
    const ref = delta(sums, sp, next);
    t.ok(applyTokens(basis, sums.head, ref).equals(next), `round ${round}: ${size} bytes, ${edits} edits`);
    if (edits < 3 && size > 50_000) t.ok(literalBytes(ref) < next.length / 2, `round ${round}: mostly matched`);
    // Chunking must not change the token stream.
    const tiny = delta(sums, sp, next, {}, () => 1 + (rand() % 97));
    const big = delta(sums, sp, next, {}, () => 1 + (rand() % 900_000));
    const norm = (tk: Token[]) => tk.map((x) => (x.kind === 'lit' ? `L` : `M${x.index}`)).join(',');
    t.equal(norm(tiny).replace(/L(,L)*/g, 'L'), norm(ref).replace(/L(,L)*/g, 'L'), `round ${round}: chunking (small)`);
    t.equal(norm(big).replace(/L(,L)*/g, 'L'), norm(ref).replace(/L(,L)*/g, 'L'), `round ${round}: chunking (large)`);
    t.ok(applyTokens(basis, sums.head, tiny).equals(next));
  }
});

t.test('every digest, and small literal pieces', async (t) => {
  const basis = randomBytes(60_000);
  const next = Buffer.concat([basis.subarray(0, 20_000), randomBytes(3000), basis.subarray(25_000)]);
  for (const name of ['xxh128', 'xxh3', 'xxh64', 'md5', 'md4', 'sha1'] as ChecksumName[]) {
    const tk = check(t, name, basis, next, { name });
    t.ok(literalBytes(tk) < 5000, `${name}: mostly matched`);
  }
  check(t, 'maxLiteral 1000', basis, next, { maxLiteral: 1000 });
  check(t, 'maxLiteral 1', randomBytes(300), randomBytes(200), { maxLiteral: 1 });
  t.equal(literalBytes(check(t, 'none: all literal', basis, next, { name: 'none' })), next.length);
});

t.test('prefers the block after the previous match', async (t) => {
  const zeros = Buffer.alloc(70_000);
  const tk = check(t, 'zeros', zeros, zeros);
  t.same(
    tk.map((x) => (x.kind === 'match' ? x.index : -1)),
    Array.from({ length: 100 }, (_, i) => i),
  );
  // A repeated pattern: after a match on block i, block i+1 is chosen among equal candidates.
  const unit = randomBytes(700);
  const basis = Buffer.concat(Array.from({ length: 10 }, () => unit));
  const next = Buffer.concat([randomBytes(5), basis.subarray(0, 7000)]);
  const idx = check(t, 'pattern', basis, next).flatMap((x) => (x.kind === 'match' ? [x.index] : []));
  t.same(idx, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

t.test('s2length above the digest length compares only the digest', async (t) => {
  const basis = randomBytes(10_000);
  const sp = spec('xxh64', -77);
  const head: SumHead = { ...chooseSumHead(basis.length, 32, 8), s2length: 16 };
  const sums = buildSums(basis, sp, head);
  // Junk in the bytes beyond the 8-byte digest (as a 3.4 redo pass would send) must not matter.
  for (let i = 0; i < head.count; i++) sums.sum2.fill(0xee, i * 16 + 8, i * 16 + 16);
  const tk = delta(sums, sp, basis);
  t.equal(literalBytes(tk), 0);
  t.ok(applyTokens(basis, head, tk).equals(basis));
});

t.test('count 0 and absurd block lengths mean all literal', async (t) => {
  const data = randomBytes(100_000);
  const sp = spec();
  const none: BlockSums = { head: { count: 0, blength: 32768, s2length: 2, remainder: 0 }, sum1: new Uint32Array(0), sum2: Buffer.alloc(0) };
  const tk = delta(none, sp, data, {}, () => 1000);
  t.equal(literalBytes(tk), data.length);
  t.ok(tk.every((x) => x.kind === 'lit' && x.data.length <= 32768));
  t.ok(Buffer.concat(tk.map((x) => x.data)).equals(data));
  const huge: BlockSums = { head: { count: 1, blength: 1 << 29, s2length: 2, remainder: 0 }, sum1: new Uint32Array(1), sum2: Buffer.alloc(2) };
  t.equal(literalBytes(delta(huge, sp, data)), data.length);
});

t.test('--inplace: never uses overwritten basis data', async (t) => {
  const rand = prng(7);
  const basis = bytesFrom(rand, 300_000);
  // Insert at the front: every block moves to a higher offset => unusable in place.
  const inserted = Buffer.concat([bytesFrom(rand, 1234), basis]);
  const plain = check(t, 'insert (normal)', basis, inserted);
  t.ok(literalBytes(plain) < 2000, 'normal mode reuses the shifted blocks');
  t.notOk(applyInPlace(basis, chooseSumHead(basis.length, 32, 16), plain).equals(inserted), 'normal tokens corrupt an in-place receiver');
  const ip = check(t, 'insert (inplace)', basis, inserted, { inplace: true });
  t.ok(literalBytes(ip) > 290_000, 'blocks behind the write offset are not used');
  // Delete at the front: blocks move to lower offsets, which is fine.
  const deleted = basis.subarray(4321);
  const del = check(t, 'delete (inplace)', basis, deleted, { inplace: true });
  t.ok(literalBytes(del) < 2000);
  // A change in the middle: untouched blocks stay at their own offsets.
  const changed = Buffer.from(basis);
  changed[150_000] ^= 1;
  const head = chooseSumHead(basis.length, 32, 16);
  const same = check(t, 'edit (inplace)', basis, changed, { inplace: true });
  let pos = 0;
  let moved = 0;
  for (const tk of same) {
    if (tk.kind === 'match' && tk.index * head.blength !== pos) moved++;
    pos += tk.data.length;
  }
  t.equal(moved, 0, 'all matches at the same offset');
  // Block swaps and repeats, random edits: the simulation must still be exact.
  for (let round = 0; round < 8; round++) {
    const b = head.blength;
    const pieces: Buffer[] = [];
    for (let i = 0; i < 30; i++) {
      const r = rand() % 5;
      const at = (rand() % head.count) * b;
      if (r === 0) pieces.push(bytesFrom(rand, 1 + (rand() % 2000)));
      else pieces.push(basis.subarray(at, at + b * (1 + (rand() % 4))));
    }
    check(t, `shuffle ${round} (inplace)`, basis, Buffer.concat(pieces), { inplace: true });
    check(t, `shuffle ${round}`, basis, Buffer.concat(pieces));
  }
  // Repeated identical blocks in place (zeros): same-offset blocks can be reused later.
  const zeros = Buffer.alloc(50_000);
  const z = check(t, 'zeros (inplace)', zeros, Buffer.concat([zeros, zeros]), { inplace: true });
  t.ok(literalBytes(z) < 50_000 + 1000);
});

t.test('equal weak sums cannot make the search quadratic', async (t) => {
  // 200 000 blocks that all share sum1 = 0 (the sum of a zero window) with strong sums that
  // never match: every offset of a zero file is a weak hit with 200 000 candidates.
  const count = 200_000;
  const head: SumHead = { count, blength: 700, s2length: 16, remainder: 0 };
  const sums: BlockSums = { head, sum1: new Uint32Array(count), sum2: Buffer.alloc(count * 16, 0xab) };
  const data = Buffer.alloc(1 << 20);
  const start = process.cpuUsage();
  const tk = delta(sums, spec(), data);
  const used = process.cpuUsage(start);
  t.equal(literalBytes(tk), data.length);
  t.ok((used.user + used.system) / 1e6 < 20, `bounded work (${((used.user + used.system) / 1e6).toFixed(2)} s CPU)`);
});
