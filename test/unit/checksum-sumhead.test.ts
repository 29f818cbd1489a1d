import t from 'tap';
import { PassThrough } from 'node:stream';
import { ProtocolError } from '../../src/protocol/errors.js';
import { ProtocolReader } from '../../src/protocol/input.js';
import { ProtocolWriter } from '../../src/protocol/output.js';
import {
  chooseSumHead,
  readBlockSums,
  readSumHead,
  validateSumHead,
  writeBlockSumBatch,
  writeSumHead,
  type BlockSums,
  type SumHead,
} from '../../src/protocol/sumhead.js';

function collector(protocol: number): { w: ProtocolWriter; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const w = new ProtocolWriter({
    write(b: Buffer) {
      chunks.push(Buffer.from(b));
      return true;
    },
    once() {
      return undefined;
    },
  });
  w.protocol = protocol;
  return {
    w,
    bytes: () => {
      w.flush();
      return Buffer.concat(chunks);
    },
  };
}

function readerOf(bytes: Buffer, protocol: number, end = true): ProtocolReader {
  const s = new PassThrough();
  const r = new ProtocolReader(s);
  r.protocol = protocol;
  // Feed in small pieces to exercise piecewise reads.
  for (let p = 0; p < bytes.length; p += 1000) s.write(bytes.subarray(p, p + 1000));
  if (end) s.end();
  return r;
}

t.test('chooseSumHead matches rsync 3.5.0 (--debug=deltasum2)', async (t) => {
  const h = (len: number, proto: number, d = 16, o = {}) => chooseSumHead(len, proto, d, o);
  t.same(h(0, 32), { count: 0, blength: 700, s2length: 2, remainder: 0 });
  t.same(h(5000, 32), { count: 8, blength: 700, s2length: 2, remainder: 100 }, 'delta32push head');
  t.same(h(700 * 700, 32), { count: 700, blength: 700, s2length: 2, remainder: 0 });
  t.same(h(700 * 700 + 1, 29), { count: 701, blength: 700, s2length: 2, remainder: 1 });
  t.same(h(3_000_000, 32), { count: 1737, blength: 1728, s2length: 2, remainder: 192 });
  t.same(h(2 ** 30, 32), { count: 32768, blength: 32768, s2length: 3, remainder: 0 });
  t.same(h(2 ** 30, 29), { count: 32768, blength: 32768, s2length: 3, remainder: 0 });
  t.same(h(100e9, 32), { count: 762940, blength: 131072, s2length: 5, remainder: 59392 }, 'proto 30 max');
  t.same(h(100e9, 29), { count: 316232, blength: 316224, s2length: 5, remainder: 168256 }, 'proto 29 max');
  t.same(h(100e9, 29, 16, { blockSize: 4000 }), { count: 25_000_000, blength: 4000, s2length: 5, remainder: 0 });
  // Redo pass: full digest, but never more than the digest has (docs/protocol.md §11 trap 13).
  t.equal(h(5000, 32, 16, { redo: true }).s2length, 16);
  t.equal(h(5000, 32, 8, { redo: true }).s2length, 8);
  t.equal(h(2 ** 40, 32, 20, { redo: true }).s2length, 16);
  // Normal pass is also capped by the digest length.
  t.same(h(2 ** 52, 29, 16), { count: 2 ** 26, blength: 2 ** 26, s2length: 8, remainder: 0 });
  t.equal(h(2 ** 52, 29, 6).s2length, 6);
  t.equal(h(2 ** 47, 32, 16).s2length, 7);
  t.throws(() => h(-1, 32));
  t.throws(() => h(2 ** 40, 32, 16, { blockSize: 1 }), /too many blocks/);
});

t.test('validateSumHead refuses hostile heads', async (t) => {
  const ok = (head: SumHead, proto = 32, d = 16) => t.doesNotThrow(() => validateSumHead(head, proto, d));
  const bad = (head: SumHead, re: RegExp, proto = 32, d = 16) =>
    t.throws(() => validateSumHead(head, proto, d), re, JSON.stringify(head));
  ok({ count: 0, blength: 0, s2length: 0, remainder: 0 });
  ok({ count: 0, blength: 32768, s2length: 2, remainder: 0 }, 27, 16); // openrsync's empty head
  ok({ count: 8, blength: 700, s2length: 2, remainder: 100 });
  ok({ count: 1, blength: 131072, s2length: 16, remainder: 131072 });
  ok({ count: 3, blength: 700, s2length: 16, remainder: 0 }, 32, 8); // 3.4 redo with xxh64: tolerated
  ok({ count: 1, blength: 1 << 29, s2length: 2, remainder: 0 }, 29);
  bad({ count: 3, blength: 700, s2length: 17, remainder: 0 }, /checksum length/);
  bad({ count: 3, blength: 700, s2length: 64, remainder: 0 }, /checksum length/);
  bad({ count: 3, blength: 700, s2length: -1, remainder: 0 }, /checksum length/);
  bad({ count: 5, blength: 0, s2length: 2, remainder: 0 }, /zero block length/);
  bad({ count: 1, blength: 131073, s2length: 2, remainder: 0 }, /block length/);
  bad({ count: 1, blength: (1 << 29) + 1, s2length: 2, remainder: 0 }, /block length/, 29);
  bad({ count: 1, blength: -700, s2length: 2, remainder: 0 }, /block length/);
  bad({ count: -1, blength: 700, s2length: 2, remainder: 0 }, /count/);
  bad({ count: 0x7fffffff, blength: 700, s2length: 2, remainder: 0 }, /count/);
  bad({ count: 0x7fffffff, blength: 1 << 29, s2length: 16, remainder: 0 }, /overflow|count/, 29);
  bad({ count: 2, blength: 700, s2length: 2, remainder: 701 }, /remainder/);
  bad({ count: 2, blength: 700, s2length: 2, remainder: -1 }, /remainder/);
  t.throws(() => validateSumHead({ count: 5, blength: 0, s2length: 2, remainder: 0 }, 32, 16), ProtocolError);
});

t.test('sum head and block sums round-trip (protocol 27+ layout)', async (t) => {
  const head: SumHead = { count: 5000, blength: 700, s2length: 3, remainder: 100 };
  const sum1 = new Uint32Array(head.count).map((_, i) => (Math.imul(i + 1, 0x9e3779b1) >>> 0) ^ 0x80000000);
  const sum2 = Buffer.from(Array.from({ length: head.count * 3 }, (_, i) => (i * 13) & 0xff));
  const sums: BlockSums = { head, sum1, sum2 };
  const { w, bytes } = collector(30);
  writeSumHead(w, head);
  writeBlockSumBatch(w, sums.sum1, sums.sum2, head.s2length);
  const wire = bytes();
  t.equal(wire.length, 16 + head.count * 7);
  t.same(wire.subarray(0, 16), Buffer.from('88130000bc020000030000006400000000', 'hex').subarray(0, 16));
  t.equal(wire.readUInt32LE(16), sum1[0]);
  const r = readerOf(wire, 30);
  const back = await readSumHead(r);
  t.same(back, head);
  const got = await readBlockSums(r, back);
  t.same(Array.from(got.sum1.subarray(0, head.count)), Array.from(sum1));
  t.same(got.sum2.subarray(0, head.count * 3), sum2);
});

t.test('the captured delta32push sum head reads back', async (t) => {
  const wire = Buffer.from(
    '08000000bc0200000200000064000000' +
      'a5f903a5827e d6020c048f79 a300b76fffbb a6fd419bde83 befd049a8524 9efebd7b797b 7c00a748c636 aafca15052d6'.replace(
        / /g,
        '',
      ),
    'hex',
  );
  const r = readerOf(wire, 32);
  const head = await readSumHead(r);
  t.same(head, { count: 8, blength: 700, s2length: 2, remainder: 100 });
  const sums = await readBlockSums(r, head);
  t.equal(sums.sum1[0], 0xa503f9a5);
  t.equal(sums.sum1[4], 0x9a04fdbe);
  t.same(sums.sum2.subarray(8, 10), Buffer.from('8524', 'hex'));
  const { w, bytes } = collector(32);
  writeSumHead(w, head);
  writeBlockSumBatch(w, sums.sum1, sums.sum2, head.s2length);
  t.same(bytes(), wire);
});

t.test('hostile heads from the wire', async (t) => {
  const head = (c: number, b: number, s: number, r: number) => {
    const x = Buffer.alloc(16);
    x.writeInt32LE(c, 0);
    x.writeInt32LE(b, 4);
    x.writeInt32LE(s, 8);
    x.writeInt32LE(r, 12);
    return x;
  };
  await t.rejects(readSumHead(readerOf(head(3, 700, 64, 0), 32)), ProtocolError);
  await t.rejects(readSumHead(readerOf(head(5, 0, 2, 0), 32)), ProtocolError);
  await t.rejects(readSumHead(readerOf(head(1, 131073, 2, 0), 31)), ProtocolError);
  await t.rejects(readSumHead(readerOf(head(0x7fffffff, 700, 2, 0), 32)), ProtocolError);
  // A large (legal) count with the data missing: memory grows only with what arrives.
  const r = readerOf(Buffer.concat([head(1_000_000, 700, 16, 0), Buffer.alloc(20 * 10)]), 32);
  const h = await readSumHead(r);
  const before = process.memoryUsage().arrayBuffers;
  await t.rejects(readBlockSums(r, h), /closed|EOF/i);
  t.ok(process.memoryUsage().arrayBuffers - before < 8 * 1024 * 1024, 'bounded allocation');
});

t.test('protocol < 27 has no s2length on the wire', async (t) => {
  const { w, bytes } = collector(26);
  writeSumHead(w, { count: 1, blength: 700, s2length: 2, remainder: 5 });
  const wire = bytes();
  t.equal(wire.length, 12);
  t.same(await readSumHead(readerOf(wire, 26)), { count: 1, blength: 700, s2length: 2, remainder: 5 });
});
