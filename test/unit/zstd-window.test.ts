/**
 * The zstd decoder's window is charged to the session's memory budget before the decoder
 * reserves it: the frame header's window size is read as zstd does (every level's real frames,
 * single-segment frames, a header split into 1-byte DEFLATED_DATA chunks, later frames charging
 * only growth), and a declared window above the budget ends with the budget's error (exit 22).
 */
import t from 'tap';
import { createRequire } from 'node:module';
import { MemoryBudget } from '../../src/engine/budget.js';
import { ExitCode } from '../../src/protocol/errors.js';
import { decoderBytes, readFrameStart } from '../../src/protocol/compress/zstd-frame.js';
import { createTokenDecoder } from '../../src/protocol/token.js';
import type * as ZstdBinding from 'zstd-napi/binding.js';
import { decodeFile, readerOf } from './token-helpers.js';

const zstd = createRequire(import.meta.url)('zstd-napi/binding') as typeof ZstdBinding;

/** A zstd stream as rsync's compressor makes it (no pledged size, flushed, never ended unless `end`). */
function compress(data: Buffer, params: { level?: number; windowLog?: number }, end = false): Buffer {
  const c = new zstd.CCtx();
  if (params.level !== undefined) c.setParameter(zstd.CParameter.compressionLevel, params.level);
  if (params.windowLog !== undefined) c.setParameter(zstd.CParameter.windowLog, params.windowLog);
  const out = Buffer.alloc(data.length + 4096);
  const [, n] = c.compressStream2(out, data, zstd.EndDirective.flush);
  const [, m] = end ? c.compressStream2(out.subarray(n), Buffer.alloc(0), zstd.EndDirective.end) : [0, 0];
  return Buffer.from(out.subarray(0, n + m));
}

/** DEFLATED_DATA chunks of at most `piece` bytes, then END_FLAG. */
function tokens(compressed: Buffer, piece = 16383): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < compressed.length; i += piece) {
    const c = compressed.subarray(i, i + piece);
    parts.push(Buffer.of(0x40 | (c.length >> 8), c.length & 0xff), c);
  }
  return Buffer.concat([...parts, Buffer.of(0)]);
}

async function decode(stream: Buffer, charges: number[], budget?: MemoryBudget): Promise<Buffer> {
  const dec = createTokenDecoder(readerOf(stream), 'zstd', 32, (n) => {
    budget?.charge(n, 'the zstd decompression window');
    charges.push(n);
  });
  return (await decodeFile(dec, 0, () => Buffer.alloc(0))).data;
}

const DATA = Buffer.from('an rsync literal run '.repeat(200));

t.test('the window of real frames, every level from -5 to 22', async (t) => {
  for (let level = -5; level <= 22; level++) {
    const frame = compress(DATA, { level });
    const start = readFrameStart(frame);
    if (!('window' in start) || start.window === null) {
      t.fail(`level ${level}: no window read`);
      continue;
    }
    const log = Math.log2(start.window);
    if (!Number.isInteger(log) || log < 10 || log > 27) t.fail(`level ${level}: window ${start.window}`);
    if (level === 22) t.equal(start.window, 2 ** 27, 'level 22 (no pledged size) declares 2^27, the decoder limit');
  }
  for (const windowLog of [10, 17, 21, 27]) {
    t.same(readFrameStart(compress(DATA, { windowLog })), { window: 2 ** windowLog }, `windowLog ${windowLog}`);
  }
});

t.test('headers in pieces, single segment, skippable and foreign frames', async (t) => {
  const frame = compress(DATA, { windowLog: 20 });
  t.same(readFrameStart(frame.subarray(0, 2)), { need: 5 }, 'magic so far: more needed');
  t.same(readFrameStart(frame.subarray(0, 5)), { need: 6 }, 'descriptor byte read: header size known');
  t.same(readFrameStart(Buffer.of(0x28, 0xb5, 0x00)), { window: null }, 'a wrong magic byte is for the decoder to refuse');
  t.same(readFrameStart(Buffer.of(0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0)), { window: null }, 'skippable frame');
  // Single segment: the window is the content size (2-byte field: value + 256).
  t.same(readFrameStart(Buffer.of(0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x10, 0x00)), { window: 0x10 + 256 });
  const sized = Buffer.alloc(DATA.length + 512);
  const n = new zstd.CCtx().compress(sized, DATA, 3);
  t.same(readFrameStart(sized.subarray(0, n)), { window: DATA.length }, 'a one-shot frame of known size is single segment');
  t.equal(decoderBytes(2 ** 27), 2 ** 27 + 2 * 128 * 1024);
});

t.test('the decoder charges the window once, before decoding; growth only for later frames', async (t) => {
  const frame = compress(DATA, { windowLog: 22 });
  let charges: number[] = [];
  t.ok((await decode(tokens(frame), charges)).equals(DATA), 'decoded');
  t.same(charges, [decoderBytes(2 ** 22)], 'charged once');
  charges = [];
  t.ok((await decode(tokens(frame, 1), charges)).equals(DATA), 'decoded from 1-byte chunks');
  t.same(charges, [decoderBytes(2 ** 22)], 'the header split over chunks is charged the same');
  const a = compress(Buffer.from('first'), { windowLog: 20 }, true);
  const b = compress(Buffer.from('second'), { windowLog: 23 }, true);
  const c = compress(Buffer.from('third'), { windowLog: 21 });
  charges = [];
  const skip = Buffer.of(0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9);
  t.equal((await decode(tokens(Buffer.concat([a, skip, b, c]), 7), charges)).toString(), 'firstsecondthird');
  t.same(charges, [decoderBytes(2 ** 20), decoderBytes(2 ** 23) - decoderBytes(2 ** 20)], 'a larger later window charges the difference');
});

t.test('a declared window above the budget ends with the budget error', async (t) => {
  // 13 bytes: magic, descriptor, window descriptor 0x88 (2^27), an empty raw block.
  const header = Buffer.of(0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x88, 0x01, 0x00, 0x00);
  const budget = new MemoryBudget(64 * 1024 * 1024);
  const charges: number[] = [];
  await t.rejects(decode(tokens(header), charges, budget), {
    code: ExitCode.MALLOC,
    message: /session memory budget exceeded: the zstd decompression window needs 128\.3 MiB more/,
  });
  t.same(charges, [], 'nothing charged');
  const roomy = new MemoryBudget(256 * 1024 * 1024);
  const next = compress(DATA, { windowLog: 27 });
  t.ok((await decode(tokens(Buffer.concat([header, next])), charges, roomy)).equals(DATA), 'under the default budget it decodes');
  t.same(charges, [decoderBytes(2 ** 27)], 'the second frame of the same window costs nothing more');
});

t.test('a window above the decoder limit is refused by the decoder, not charged', async (t) => {
  const charges: number[] = [];
  const header = Buffer.of(0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x90, 0x01, 0x00, 0x00); // 2^28
  await t.rejects(decode(tokens(header), charges), { name: 'ProtocolError', message: /zstd decompression failed/ });
  t.same(charges, []);
});
