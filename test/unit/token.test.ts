/** Token streams: wire format details, round trips for every codec, hostile input. */
import t, { type Test } from 'tap';
import { setNativeZlibForTesting } from '../../src/protocol/compress/zlib.js';
import { lz4CompressBlock, lz4CompressBound, lz4DecompressBlock } from '../../src/protocol/compress/lz4.js';
import {
  canonicalCompressName,
  createTokenDecoder,
  createTokenEncoder,
  defaultCompressLevel,
  SUPPORTED_COMPRESSIONS,
  type CompressName,
} from '../../src/protocol/token.js';
import { collectingWriter, decodeFile, decodeSession, encodeSession, prng, readerOf, text, type Op } from './token-helpers.js';

const CODECS: CompressName[] = ['none', 'zlib', 'zlibx', 'zstd', 'lz4'];

function fileData(ops: Op[], blocks: Buffer[]): Buffer {
  return Buffer.concat(ops.map((o) => ('lit' in o ? o.lit : blocks[o.match])));
}

async function roundTrip(t: Test, name: CompressName, protocol: number, files: Op[][], blocks: Buffer[], level?: number): Promise<Buffer> {
  const stream = encodeSession(name, protocol, files, blocks, level);
  const got = await decodeSession(name, protocol, stream, files.length, blocks);
  for (let i = 0; i < files.length; i++) {
    const want = fileData(files[i], blocks);
    if (!got[i].data.equals(want)) t.fail(`${name} p${protocol} file ${i}: content differs`);
    const wantTokens = files[i].filter((o): o is { match: number } => 'match' in o).map((o) => o.match);
    const gotTokens = got[i].items.filter((x): x is number => typeof x === 'number');
    t.same(gotTokens, wantTokens, `${name} p${protocol} file ${i}: tokens`);
  }
  return stream;
}

t.test('names and levels', async (t) => {
  t.same(SUPPORTED_COMPRESSIONS, ['zstd', 'lz4', 'zlibx', 'zlib', 'none']);
  t.equal(canonicalCompressName('zlibx'), 'zlibx');
  t.equal(canonicalCompressName('ZLIB'), undefined);
  t.equal(canonicalCompressName('gzip'), undefined);
  t.equal(defaultCompressLevel('zlib'), 6);
  t.equal(defaultCompressLevel('zstd'), 3);
  t.equal(defaultCompressLevel('lz4'), 0);
});

t.test('compressed token wire format: lazy runs, TOKEN_REL/TOKENRUN_REL/TOKEN_LONG/TOKENRUN_LONG', async (t) => {
  const blocks = Array.from({ length: 400 }, (_, i) => Buffer.alloc(4, i));
  const ops: Op[] = [0, 1, 2, 5, 100, 3, 200, 201, 202].map((m) => ({ match: m }));
  const stream = encodeSession('lz4', 32, [ops], blocks);
  t.equal(
    stream.toString('hex'),
    ['c00200', '83', '2064000000', '2003000000', '21c8000000', '0200', '00'].join(''),
  );
  // literal data ends a run: token 0, literal, token 1 (rel to last_run_end 0 => 0x81)
  const s2 = encodeSession('lz4', 32, [[{ match: 0 }, { lit: Buffer.from('abc') }, { match: 1 }]], blocks);
  t.equal(s2[0], 0x80);
  t.equal(s2[s2.length - 2], 0x81);
  t.equal(s2[s2.length - 1], 0x00);
  // plain: -(i+1), literal chunks <= 32 KiB, 0
  const p = encodeSession('none', 32, [[{ match: 0 }, { lit: Buffer.alloc(40000, 1) }, { match: 2 }]], blocks);
  t.equal(p.readInt32LE(0), -1);
  t.equal(p.readInt32LE(4), 32768);
  t.equal(p.readInt32LE(8 + 32768), 40000 - 32768);
  t.equal(p.readInt32LE(p.length - 8), -3);
  t.equal(p.readInt32LE(p.length - 4), 0);
});

t.test('round trips for every codec', async (t) => {
  const blocks = Array.from({ length: 64 }, (_, i) => text(1024, i + 1));
  const big = text(300000, 99);
  const files: Op[][] = [
    [], // empty file
    [{ lit: big }], // literal only
    blocks.slice(0, 20).map((_, i) => ({ match: i })), // match only (one run)
    [{ match: 3 }, { lit: Buffer.from('hello') }, { match: 4 }, { match: 5 }, { match: 9 }, { lit: prng(70000, 5) }, { match: 1 }, { match: 63 }, { match: 0 }],
    [{ lit: text(50, 3) }, { lit: text(70000, 4) }, { lit: Buffer.alloc(0) }, { lit: text(33000, 5) }, { match: 7 }], // several literal() calls
    [{ lit: blocks[5] }, { match: 5 }, { lit: blocks[5] }], // literal equal to matched data (history)
  ];
  for (const name of CODECS) {
    for (const protocol of [29, 30, 31, 32]) await roundTrip(t, name, protocol, files, blocks);
  }
});

t.test('runs longer than 65536 tokens are cut', async (t) => {
  const blocks = Array.from({ length: 140000 }, (_, i) => Buffer.from([i & 0xff]));
  const ops: Op[] = blocks.map((_, i) => ({ match: i }));
  for (const name of ['zlib', 'zstd', 'lz4', 'none'] as CompressName[]) {
    const stream = await roundTrip(t, name, 32, [ops], blocks);
    if (name === 'lz4') {
      // 0..65535 (REL run of 65535 extra), 65536..131071 (rel 1 from last_run_end 65535), rest
      t.equal(stream.subarray(0, 3).toString('hex'), 'c0ffff');
      t.equal(stream.subarray(3, 6).toString('hex'), 'c1ffff');
    }
  }
});

t.test('zlib: blocks > 64 KiB, protocol 30 (first-64K re-feed bug) vs 31', async (t) => {
  const base = Buffer.from(prng(150000, 11).toString('hex'), 'latin1'); // 300000 bytes
  const blocks = [base.subarray(0, 100000), base.subarray(100000, 200000), base.subarray(200000, 300000)];
  // literal data that repeats parts of the matched blocks (the compressor refers to its history)
  const ops: Op[] = [
    { match: 0 },
    { lit: Buffer.concat([base.subarray(10000, 14000), base.subarray(80000, 84000), base.subarray(50000, 52000)]) },
    { match: 1 },
    { lit: Buffer.concat([base.subarray(170000, 180000), base.subarray(110000, 112000)]) },
    { match: 2 },
  ];
  const s30 = await roundTrip(t, 'zlib', 30, [ops], blocks);
  const s31 = await roundTrip(t, 'zlib', 31, [ops], blocks);
  t.not(s30.toString('hex'), s31.toString('hex'), 'the protocol changes the stream');
  // decoding with the wrong protocol must not silently reproduce the file
  for (const [stream, proto] of [
    [s30, 31],
    [s31, 30],
  ] as const) {
    let ok = false;
    try {
      const got = await decodeSession('zlib', proto, stream, 1, blocks);
      ok = got[0].data.equals(fileData(ops, blocks));
    } catch {
      ok = false;
    }
    t.notOk(ok, `stream encoded for the other protocol does not decode under ${proto}`);
  }
  await roundTrip(t, 'zlibx', 30, [ops], blocks);
});

t.test('zstd: one context for many files; frame magic once', async (t) => {
  const blocks = Array.from({ length: 8 }, (_, i) => text(700, i));
  const files: Op[][] = Array.from({ length: 60 }, (_, i) => (i % 7 === 3 ? [] : [{ lit: text(3000 + i * 37, 1000 + i) }, { match: i % 8 }, { lit: text(100, i) }]));
  const stream = await roundTrip(t, 'zstd', 32, files, blocks);
  const magic = Buffer.from('28b52ffd', 'hex');
  t.equal(stream.indexOf(magic), 2 + 0, 'first DEFLATED_DATA starts the frame');
  t.equal(stream.indexOf(magic, 3), -1, 'the frame is never restarted');
});

t.test('per-file level override (zlib store level)', async (t) => {
  const data = text(100000, 3);
  const { w, bytes } = collectingWriter();
  const enc = createTokenEncoder(w, 'zlib', 6, 32);
  enc.beginFile({ level: 0 });
  enc.literal(data);
  enc.endFile();
  enc.beginFile();
  enc.literal(data);
  enc.endFile();
  const stream = bytes();
  const dec = createTokenDecoder(readerOf(stream), 'zlib', 32);
  const a = await decodeFile(dec, 0, () => Buffer.alloc(0));
  const endOfFirst = stream.length; // not needed: decode both
  const b = await decodeFile(dec, 0, () => Buffer.alloc(0));
  t.ok(a.data.equals(data) && b.data.equals(data));
  t.ok(endOfFirst > data.length, 'stored file is not compressed');
});

t.test('fallback zlib paths (no internal handle) stay wire compatible', async (t) => {
  const blocks = Array.from({ length: 16 }, (_, i) => text(2048, i + 50));
  const files: Op[][] = [[{ match: 1 }, { lit: text(90000, 7) }, { match: 2 }, { match: 3 }, { lit: blocks[2] }], [{ lit: text(10, 1) }]];
  const native = encodeSession('zlib', 32, files, blocks);
  setNativeZlibForTesting(false);
  try {
    const fallbackStream = await roundTrip(t, 'zlib', 32, files, blocks);
    // native encoder -> fallback decoder, and fallback encoder -> (still fallback) decoder
    const got = await decodeSession('zlib', 32, native, files.length, blocks);
    t.ok(got[0].data.equals(fileData(files[0], blocks)), 'fallback inflater decodes the native stream');
    t.ok(fallbackStream.length > 0);
  } finally {
    setNativeZlibForTesting(undefined);
  }
  const got = await decodeSession('zlib', 32, encodeSessionFallback(files, blocks), files.length, blocks);
  t.ok(got[0].data.equals(fileData(files[0], blocks)), 'native inflater decodes the fallback stream');
});

function encodeSessionFallback(files: Op[][], blocks: Buffer[]): Buffer {
  setNativeZlibForTesting(false);
  try {
    return encodeSession('zlib', 32, files, blocks);
  } finally {
    setNativeZlibForTesting(undefined);
  }
}

t.test('lz4 block codec: edge cases', async (t) => {
  for (const src of [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(12, 7), Buffer.alloc(13, 7), prng(16383, 2), Buffer.alloc(16383), text(16383, 4)]) {
    const dst = Buffer.alloc(lz4CompressBound(src.length));
    const n = lz4CompressBlock(src, dst);
    const out = Buffer.alloc(40000);
    const m = lz4DecompressBlock(dst.subarray(0, n), out);
    t.ok(out.subarray(0, m).equals(src), `len ${src.length} -> ${n}`);
  }
});

/* ---------------------------------------------------------------------------------------- */
/* Hostile input                                                                              */

async function expectReject(t: Test, name: CompressName, stream: Buffer, maxBlocks: number, what: string): Promise<void> {
  const dec = createTokenDecoder(readerOf(stream), name, 32);
  await t.rejects(decodeFile(dec, maxBlocks, () => Buffer.alloc(4)), { name: 'ProtocolError' }, what);
}

function i32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  return b;
}

t.test('plain decoder rejects bad tokens and bounds literal pieces', async (t) => {
  await expectReject(t, 'none', Buffer.concat([i32(-11), i32(0)]), 10, 'block 10 of 10');
  await expectReject(t, 'none', Buffer.concat([i32(-0x80000000), i32(0)]), 10, 'INT32_MIN');
  // a 2 GiB literal claim: pieces are bounded, and the short stream ends in an EOF error
  const dec = createTokenDecoder(readerOf(Buffer.concat([i32(0x7fffffff), Buffer.alloc(600000, 1)])), 'none', 32);
  dec.beginFile(0);
  let total = 0;
  let max = 0;
  await t.rejects(
    (async () => {
      for (;;) {
        const tok = await dec.next();
        if (tok.kind !== 'literal') break;
        total += tok.data.length;
        max = Math.max(max, tok.data.length);
      }
    })(),
  );
  t.equal(total, 600000);
  t.ok(max <= 256 * 1024);
});

t.test('compressed decoders reject bad token numbers and flags', async (t) => {
  for (const name of ['zlib', 'zlibx', 'zstd', 'lz4'] as CompressName[]) {
    await expectReject(t, name, Buffer.from([0x20, ...i32(-5), 0x00]), 10, `${name}: negative TOKEN_LONG`);
    await expectReject(t, name, Buffer.from([0x20, ...i32(10), 0x00]), 10, `${name}: TOKEN_LONG past the end`);
    await expectReject(t, name, Buffer.from([0xc0, 0x00, 0x00, 0x00]), 10, `${name}: run of 0`);
    await expectReject(t, name, Buffer.from([0xc1, 0x09, 0x00, 0x00]), 10, `${name}: run past the end`);
    await expectReject(t, name, Buffer.from([0x21, ...i32(0x7ffffff0), 0xff, 0xff, 0x00]), 0x7fffffff, `${name}: run overflowing int32`);
    await expectReject(t, name, Buffer.from([0x20, ...i32(0x7ffffffe), 0xbf, 0x00]), 0x7fffffff, `${name}: REL overflow`);
    await expectReject(t, name, Buffer.from([0x05, 0x00]), 10, `${name}: unknown flag`);
  }
  await expectReject(t, 'lz4', Buffer.from([0x40, 0x03, 0x10, 0x61, 0x05, 0x00]), 0, 'lz4: offset before the start');
  await expectReject(t, 'lz4', Buffer.from([0x40, 0x02, 0xf0, 0xff, 0x00]), 0, 'lz4: truncated length');
  await expectReject(t, 'zstd', Buffer.from([0x40, 0x04, 0x01, 0x02, 0x03, 0x04, 0x00]), 0, 'zstd: garbage');
  await expectReject(t, 'zlib', Buffer.from([0x40, 0x04, 0xff, 0xff, 0xff, 0xff, 0x00]), 0, 'zlib: garbage');
});

t.test('decompression bombs are streamed in bounded pieces', async (t) => {
  for (const name of ['zlib', 'zstd', 'lz4'] as CompressName[]) {
    const size = 64 * 1024 * 1024;
    const { w, bytes } = collectingWriter();
    const enc = createTokenEncoder(w, name, undefined, 32);
    enc.beginFile();
    const zeros = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < size / zeros.length; i++) enc.literal(zeros);
    enc.endFile();
    const stream = bytes();
    const dec = createTokenDecoder(readerOf(stream), name, 32);
    dec.beginFile(0);
    let total = 0;
    let max = 0;
    for (;;) {
      const tok = await dec.next();
      if (tok.kind === 'end') break;
      if (tok.kind === 'literal') {
        total += tok.data.length;
        max = Math.max(max, tok.data.length);
      }
    }
    t.equal(total, size, `${name}: ${stream.length} wire bytes -> ${size}`);
    t.ok(max <= 256 * 1024, `${name}: largest piece ${max}`);
  }
});
