import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { nativeBinding } from '../../src/native.js';
import { createXXHash128, createXXHash3, createXXHash64, md4 as md4Hex } from 'hash-wasm';
import {
  blockStrongSum,
  canonicalChecksumName,
  createFileListHasher,
  createTransferHasher,
  digestLength,
  initChecksums,
  rollingChecksum,
  sum1Blocks,
  sum1BlocksJs,
  SUPPORTED_CHECKSUMS,
  type ChecksumName,
  type ChecksumSpec,
} from '../../src/protocol/checksum.js';
import { CAPTURES } from '../helpers/captures.js';
import { hashWasmBinaries } from '../../src/patches/hash-wasm.js';


/** The decoded payload bytes of one direction of a capture (hex dump lines only). */
function captureBytes(name: string, dir: 'c2s' | 's2c'): Buffer {
  const out: number[] = [];
  let cur = '';
  for (const line of readFileSync(`${CAPTURES}/${name}.txt`, 'utf8').split('\n')) {
    if (line.startsWith('## client -> server')) cur = 'c2s';
    else if (line.startsWith('## server -> client')) cur = 's2c';
    else if (cur === dir && /^\s+([0-9a-f]{2} )*[0-9a-f]{2}\s*$/.test(line)) {
      for (const h of line.trim().split(' ')) out.push(parseInt(h, 16));
    }
  }
  return Buffer.from(out);
}

function captureSeed(name: string): number {
  const m = /checksum seed int: (-?\d+)/.exec(readFileSync(`${CAPTURES}/${name}.txt`, 'utf8'));
  if (!m) throw new Error(`no seed in ${name}`);
  return Number(m[1]);
}

/**
 * Block 4 (offset 2800..3500) of the 5000-byte f.bin basis used by the delta/push captures: the
 * client sent it inside a 707-byte literal with "INSERT!" spliced in at offset 200
 * (delta32push.txt, docs/protocol.md §13.3).
 */
function basisBlock4(): Buffer {
  const c2s = captureBytes('delta32push', 'c2s');
  const at = c2s.indexOf(Buffer.from('c3020000', 'hex'));
  const lit = c2s.subarray(at + 4, at + 4 + 707);
  const ins = lit.indexOf('INSERT!');
  return Buffer.concat([lit.subarray(0, ins), lit.subarray(ins + 7)]);
}

/** sum1 + 2-byte strong sum of block 4 as the generator sent it (head: 8 blocks of 700, s2length 2). */
function capturedBlock4(name: string): { sum1: number; strong: Buffer } {
  const s2c = captureBytes(name, 's2c');
  const head = s2c.indexOf(Buffer.from('08000000bc0200000200000064000000', 'hex'));
  if (head < 0) throw new Error(`${name}: sum head not found`);
  const rec = head + 16 + 4 * 6;
  return { sum1: s2c.readUInt32LE(rec), strong: s2c.subarray(rec + 4, rec + 6) };
}

function spec(name: ChecksumName, seed: number, extra: Partial<ChecksumSpec> = {}): ChecksumSpec {
  return { name, protocol: 32, seed, seedFix: true, negotiated: true, ...extra };
}

function signedReference(b: Uint8Array): number {
  let s1 = 0;
  let s2 = 0;
  for (const x of b) {
    s1 = (s1 + ((x << 24) >> 24)) | 0;
    s2 = (s2 + s1) | 0;
  }
  return ((s1 & 0xffff) | (s2 << 16)) >>> 0;
}

t.before(async () => {
  await initChecksums(hashWasmBinaries());
});

t.test('names and lengths', async (t) => {
  t.same(SUPPORTED_CHECKSUMS, ['xxh128', 'xxh3', 'xxh64', 'md5', 'md4', 'sha1', 'none']);
  t.equal(canonicalChecksumName('xxhash'), 'xxh64');
  t.equal(canonicalChecksumName('XXH128'), 'xxh128');
  t.equal(canonicalChecksumName('md5'), 'md5');
  t.equal(canonicalChecksumName('blake3'), undefined);
  t.equal(canonicalChecksumName('auto'), undefined);
  const lens = SUPPORTED_CHECKSUMS.map((n) => digestLength(n));
  t.same(lens, [16, 8, 8, 16, 16, 20, 1]);
});

t.test('rolling checksum: captured block, signed bytes', async (t) => {
  const block = basisBlock4();
  t.equal(block.length, 700);
  const expect = capturedBlock4('delta32push').sum1;
  t.equal(expect, 0x9a04fdbe);
  t.equal(rollingChecksum(block, 0, 700), expect);
  t.equal(capturedBlock4('push27').sum1, expect, 'same sum1 at protocol 27');
  // With unsigned bytes the value differs (docs/protocol.md §11 trap 9).
  let s1 = 0;
  let s2 = 0;
  for (const x of block) {
    s1 = (s1 + x) | 0;
    s2 = (s2 + s1) | 0;
  }
  t.not(((s1 & 0xffff) | (s2 << 16)) >>> 0, expect);
  // Sub-ranges, odd lengths, high bytes.
  const buf = Buffer.from(Array.from({ length: 1031 }, (_, i) => (i * 167 + 13) & 0xff));
  for (const [a, b] of [[0, 0], [0, 1], [3, 10], [5, 1031], [0, 1031], [1000, 1031]]) {
    t.equal(rollingChecksum(buf, a, b), signedReference(buf.subarray(a, b)), `range ${a}..${b}`);
  }
  t.equal(rollingChecksum(Buffer.alloc(700, 0x80), 0, 700), signedReference(Buffer.alloc(700, 0x80)));
});

t.test('bulk block sums (native addon when built) equal the reference, any block length', async (t) => {
  t.ok(nativeBinding?.sum1Blocks, 'the native addon is built (npm ci) and has sum1Blocks');
  const buf = randomBytes(300_017);
  buf.fill(0x80, 1000, 9000); // long runs of the most negative signed byte
  buf.fill(0x7f, 9000, 20000);
  for (const [start, end, bl] of [[0, 300_017, 700], [3, 300_000, 16], [5, 300_017, 32768], [0, 131072, 131072], [7, 7, 700], [0, 15, 4], [1, 200_001, 23_168], [0, 300_017, 1]]) {
    const count = Math.ceil((end - start) / bl);
    const got = new Uint32Array(count + 2);
    const js = new Uint32Array(count + 2);
    t.equal(sum1Blocks(buf, start, end, bl, got, 1), count, `${start}..${end}/${bl}: count`);
    t.equal(sum1BlocksJs(buf, start, end, bl, js, 1), count);
    let bad = -1;
    for (let i = 0; i < count && bad < 0; i++) {
      const a = start + i * bl;
      if (got[1 + i] !== signedReference(buf.subarray(a, Math.min(a + bl, end))) || js[1 + i] !== got[1 + i]) bad = i;
    }
    t.equal(bad, -1, `${start}..${end}/${bl}: every block matches the byte-by-byte definition`);
    t.equal(got[0], 0, 'nothing written before index');
    t.equal(got[count + 1], 0, 'nothing written after the last block');
  }
  if (nativeBinding?.sum1Blocks) {
    const out = new Uint32Array(2);
    t.throws(() => nativeBinding!.sum1Blocks!(buf, 0, buf.length, 700, out, 0), /output too small/);
    t.throws(() => nativeBinding!.sum1Blocks!(buf, 0, buf.length + 1, 700, new Uint32Array(1000), 0), /bad range/);
    t.throws(() => nativeBinding!.sum1Blocks!(buf, 0, 10, 0, out, 0), /bad range/);
  }
});

t.test('block strong sums match captured generators', async (t) => {
  const block = basisBlock4();
  const cases: Array<[string, ChecksumSpec]> = [
    ['delta32push', spec('xxh128', captureSeed('delta32push'))],
    ['push30', spec('xxh128', captureSeed('push30'))],
    ['push27', spec('md4', captureSeed('push27'), { protocol: 27, negotiated: false, seedFix: false })],
    ['push29', spec('md4', captureSeed('push29'), { protocol: 29, negotiated: false, seedFix: false })],
    ['push_c309', spec('md5', captureSeed('push_c309'), { protocol: 30, negotiated: false, seedFix: false })],
    ['push_c313', spec('md5', captureSeed('push_c313'), { protocol: 31, negotiated: false, seedFix: true })],
  ];
  for (const [cap, sp] of cases) {
    const want = capturedBlock4(cap).strong;
    const got = blockStrongSum(sp, block);
    t.equal(got.length, digestLength(sp.name));
    t.same(got.subarray(0, 2), want, `${cap} ${sp.name}`);
  }
  // The MD5 seed order matters: without the fix the c313 sum would not match.
  const c313 = spec('md5', captureSeed('push_c313'), { seedFix: false, negotiated: false });
  t.notSame(blockStrongSum(c313, block).subarray(0, 2), capturedBlock4('push_c313').strong);
});

t.test('block strong sums: seeds, byte order, every variant', async (t) => {
  const data = Buffer.from(Array.from({ length: 40000 }, (_, i) => (i * 31 + (i >> 7)) & 0xff));
  const seedBytes = (s: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(s);
    return b;
  };
  for (const seed of [0, 1, 0x6b04bdc1, -5, -0x7fffffff]) {
    const low = seed >>> 0;
    const high = seed < 0 ? 0xffffffff : 0;
    // XXH: wire = canonical digest reversed; the int seed is sign-extended to 64 bits.
    for (const [name, make] of [
      ['xxh128', createXXHash128],
      ['xxh3', createXXHash3],
      ['xxh64', createXXHash64],
    ] as const) {
      const ref = await make(low, high);
      ref.init();
      ref.update(data);
      const canonical = Buffer.from(ref.digest('binary'));
      t.same(blockStrongSum(spec(name, seed), data), Buffer.from(canonical).reverse(), `${name} seed ${seed}`);
    }
    const sb = seed === 0 ? Buffer.alloc(0) : seedBytes(seed);
    const md5 = (...p: Buffer[]) => createHash('md5').update(Buffer.concat(p)).digest();
    t.same(blockStrongSum(spec('md5', seed), data), md5(sb, data), `md5 fixed seed ${seed}`);
    t.same(blockStrongSum(spec('md5', seed, { seedFix: false }), data), md5(data, sb), `md5 old seed ${seed}`);
    const sha1 = createHash('sha1').update(Buffer.concat([sb, data])).digest();
    t.same(blockStrongSum(spec('sha1', seed), data), sha1, `sha1 seed ${seed}`);
    const md4 = Buffer.from(await md4Hex(Buffer.concat([data, sb])), 'hex');
    t.same(blockStrongSum(spec('md4', seed), data), md4, `md4 seed ${seed}`);
    t.same(blockStrongSum(spec('md4', seed, { negotiated: false, protocol: 29 }), data), md4);
  }
  t.same(blockStrongSum(spec('none', 9), data), Buffer.alloc(1));
  t.same(blockStrongSum(spec('xxh128', 3), Buffer.alloc(0)).length, 16, 'empty block');
});

t.test('whole-file checksums match captures', async (t) => {
  const hello = Buffer.from('hello\n');
  const digest = (h: ReturnType<typeof createTransferHasher>, ...parts: Buffer[]) => {
    for (const p of parts) h.update(p);
    return h.digest();
  };
  // push27 (protocol 27): MD4(seed32le ‖ file), even for the empty file.
  const p27 = spec('md4', captureSeed('push27'), { protocol: 27, negotiated: false, seedFix: false });
  const c2s27 = captureBytes('push27', 'c2s');
  for (const [data, hex] of [
    [hello, 'd810bda085059d5dd13f9118e6ad8bef'],
    [Buffer.alloc(0), 'b6a25a4fb7ab82733e8fb046beeb2d59'],
    [Buffer.alloc(300, 'x'), 'f252b3bb3cb2c15d67546d4b7672f840'],
  ] as Array<[Buffer, string]>) {
    t.ok(c2s27.includes(Buffer.from(hex, 'hex')), `${hex} is in push27`);
    t.equal(digest(createTransferHasher(p27), data).toString('hex'), hex);
  }
  t.not(digest(createTransferHasher({ ...p27, seed: 0 }), hello).toString('hex'), await md4Hex(hello), 'seed 0 still prefixed');
  // push_c309 / push_c313: MD5(file), no seed.
  for (const cap of ['push_c309', 'push_c313']) {
    const c2s = captureBytes(cap, 'c2s');
    const sp = spec('md5', captureSeed(cap), { protocol: 30, negotiated: false });
    t.ok(c2s.includes(digest(createTransferHasher(sp), hello)), `${cap} md5(hello)`);
    t.ok(c2s.includes(digest(createTransferHasher(sp), Buffer.alloc(300, 'x'))), `${cap} md5(300 x)`);
  }
  // cks29: --checksum sums in the protocol-29 file list are MD4(file) without the seed.
  const cks29 = captureBytes('cks29', 'c2s');
  const fl29 = spec('md4', captureSeed('cks29'), { protocol: 29, negotiated: false });
  for (const text of ['hello\n', 'world\n']) {
    const sum = digest(createFileListHasher(fl29), Buffer.from(text));
    t.ok(cks29.includes(sum), `cks29 ${JSON.stringify(text)} ${sum.toString('hex')}`);
  }
  // XXH128 byte order (docs/protocol.md §2.5 example), seed 0 whatever the session seed.
  const x = digest(createTransferHasher(spec('xxh128', 12345)), Buffer.from('hel'), Buffer.from('lo\n'));
  t.equal(x.toString('hex'), '9ce4c8f135b4105a6df569e0c786ba6b');
  t.same(digest(createFileListHasher(spec('xxh128', 1)), hello), x);
  t.same(digest(createTransferHasher(spec('none', 1)), hello), Buffer.alloc(1));
});

t.test('whole-file hashers: chunking, interleaving, pooling', async (t) => {
  const data = Buffer.from(Array.from({ length: 100_003 }, (_, i) => (i * 7 + (i >> 9)) & 0xff));
  for (const name of ['xxh128', 'xxh3', 'xxh64', 'md5', 'md4', 'sha1'] as ChecksumName[]) {
    const sp = spec(name, 77);
    const one = createTransferHasher(sp);
    one.update(data);
    const whole = one.digest();
    t.equal(whole.length, digestLength(name));
    // Two interleaved hashers with odd chunk sizes (crossing the 16 KiB WASM buffer).
    const a = createTransferHasher(sp);
    const b = createFileListHasher(sp);
    for (let p = 0, step = 1; p < data.length; p += step, step = (step * 3 + 1) % 40000 || 7) {
      a.update(data.subarray(p, p + step));
      b.update(data.subarray(p, p + step));
    }
    t.same(a.digest(), whole, `${name} chunked`);
    t.same(b.digest(), whole, `${name} file-list`);
    t.throws(() => a.update(data), /finished/, 'finished hasher refuses data');
  }
  // Many hashers alive at once (more than the pool keeps).
  const many = Array.from({ length: 20 }, () => createTransferHasher(spec('xxh64', 0)));
  many.forEach((h, i) => h.update(Buffer.from([i])));
  const sums = many.map((h) => h.digest().toString('hex'));
  t.equal(new Set(sums).size, 20);
  const again = createTransferHasher(spec('xxh64', 0));
  again.update(Buffer.from([3]));
  t.equal(again.digest().toString('hex'), sums[3], 'a pooled instance starts clean');
});
