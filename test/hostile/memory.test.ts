/**
 * Memory bombs, each against a real child process (test/pipe/server.ts) whose peak RSS (VmHWM)
 * is sampled from /proc: sum-head counts, huge literal claims, zlib/zstd decompression bombs,
 * filter-rule floods, id-list floods. Every case must end with a clean error (or a clean
 * per-file failure) and stay under the bound.
 */
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dirEntry, EXIT, fileEntry, HostileClient, type TransferRequest } from './client.js';
import { PULL, PUSH, runCase } from './harness.js';

const MAX_MIB = 300;
/** The long floods (10-40 s of CPU together) run only with HOSTILE_SLOW=1. */
const SLOW = process.env.HOSTILE_SLOW === '1' ? {} : { skip: 'set HOSTILE_SLOW=1 to run' };
const SMALL_FILE_LIMIT = { limits: { allowDevices: false, allowChown: true, maxFileSize: 4 << 20 } };

async function firstTransfer(c: HostileClient): Promise<TransferRequest> {
  for (;;) {
    const r = await c.nextRequest();
    if (r.kind === 'transfer') return r;
    if (r.kind === 'done') throw new Error('no transfer request');
  }
}

t.test('pull: a sum head claiming 2^31-1 blocks', (t) =>
  runCase(
    t,
    {
      args: PULL,
      mode: 'spawn',
      prepare: (a) => {
        mkdirSync(join(a.root, 'src'));
        writeFileSync(join(a.root, 'src', 'f'), 'x'.repeat(5000));
      },
    },
    async (c) => {
      c.sendFilters();
      c.flush();
      const list = await c.readFileList();
      const f = list.find((e) => e.name === 'f')!;
      c.request(f.ndx, { count: 0x7fffffff, blength: 700, s2length: 16, remainder: 0 });
      c.flush();
    },
    { code: EXIT.PROTOCOL, error: /Invalid checksum count/, maxMiB: MAX_MIB },
  ).then(() => undefined),
);

t.test('pull: the largest accepted block count, with the sums never arriving', SLOW, (t) =>
  runCase(
    t,
    {
      args: PULL,
      mode: 'spawn',
      finish: { closeAfterMs: 1500 },
      prepare: (a) => {
        mkdirSync(join(a.root, 'src'));
        writeFileSync(join(a.root, 'src', 'f'), 'x'.repeat(5000));
      },
    },
    async (c) => {
      c.sendFilters();
      c.flush();
      const list = await c.readFileList();
      const f = list.find((e) => e.name === 'f')!;
      c.request(f.ndx, { count: 38_000_000, blength: 700, s2length: 2, remainder: 0 }, Buffer.alloc(6 * 100_000));
      c.flush();
    },
    { code: EXIT.STREAMIO, maxMiB: MAX_MIB },
  ).then(() => undefined),
);

t.test('push: a 2 GiB literal claim streams without buffering', SLOW, (t) =>
  runCase(
    t,
    { args: PUSH, mode: 'spawn', grant: SMALL_FILE_LIMIT, finish: { closeAfterMs: 1000, deadlineMs: 20000 } },
    async (c) => {
      c.sendWholeList([dirEntry('.'), fileEntry('a', 10)]);
      const req = await firstTransfer(c);
      c.replyHeader(req);
      c.w.i32(0x7fffffff);
      const chunk = Buffer.alloc(1 << 20, 'L');
      for (let i = 0; i < 16; i++) {
        c.w.bytes(chunk);
        await c.pace();
        if (c.stopped) break;
      }
    },
    { code: EXIT.STREAMIO, absent: ['dst/a'], maxMiB: MAX_MIB },
  ).then(() => undefined),
);

for (const comp of ['zlib', 'zstd'] as const) {
  t.test(`push: a ${comp} decompression bomb (96 MiB of zeros)`, comp === 'zlib' ? SLOW : {}, (t) =>
    runCase(
      t,
      { args: ['--server', '-logDtprze.LsfxCIvu', `--compress-choice=${comp}`, '.', 'dst/'], mode: 'spawn', grant: SMALL_FILE_LIMIT, finish: { deadlineMs: 30000 } },
      async (c) => {
        c.sendWholeList([dirEntry('.'), fileEntry('a', 10), fileEntry('b', 3)]);
        await c.serveRequests(() => Buffer.from('abc'), {
          reply: (req) => {
            if (c.byNdx.get(req.ndx)?.name !== 'a') return false;
            c.replyHeader(req);
            const enc = c.tokenEncoder();
            enc.beginFile();
            const zeros = Buffer.alloc(1 << 20);
            for (let i = 0; i < 96; i++) enc.literal(zeros);
            enc.endFile();
            c.w.bytes(Buffer.alloc(c.digestLen));
            return true;
          },
        });
      },
      { code: EXIT.PARTIAL, error: /maximum file size|failed verification/, absent: ['dst/a'], present: ['dst/b'], maxMiB: MAX_MIB },
    ).then(() => undefined),
  );
}

t.test('push: a flood of 4000-byte filter rules (100k of them: 400 MB)', (t) =>
  runCase(
    t,
    { args: ['--server', '-logDtpre.LsfxCIvu', '--delete', '.', 'dst/'], mode: 'spawn', finish: { deadlineMs: 30000 } },
    async (c) => {
      const rule = Buffer.alloc(4 + 4000, 0x61);
      rule.writeInt32LE(4000, 0);
      rule[4] = 0x2d; // "- aaaa..."
      rule[5] = 0x20;
      const batch = Buffer.concat(Array.from({ length: 250 }, () => rule)); // 1 MB
      void c.drainOutput();
      for (let i = 0; i < 420 && !c.stopped; i++) {
        c.w.bytes(batch);
        await c.pace();
      }
    },
    { code: EXIT.PROTOCOL, error: /filter rules/, maxMiB: MAX_MIB },
  ).then(() => undefined),
);

t.test('push: an id list flood (uid names)', (t) =>
  runCase(
    t,
    { args: PUSH, mode: 'spawn', finish: { deadlineMs: 30000 } },
    async (c) => {
      c.sendList([dirEntry('.'), fileEntry('a', 1)]);
      // uid list: varint id, byte len, name ... (then a gid list); never terminated
      const name = Buffer.alloc(255, 0x75);
      void c.drainOutput();
      for (let batch = 0; batch < 300 && !c.stopped; batch++) {
        for (let i = 1; i <= 4000; i++) {
          c.w.varint(batch * 4000 + i);
          c.w.u8(255);
          c.w.bytes(name);
        }
        await c.pace();
      }
    },
    { code: [EXIT.PROTOCOL, EXIT.STREAMIO], maxMiB: MAX_MIB },
  ).then(() => undefined),
);

t.test('push: an id list flood with 1-byte names (entry count bound)', SLOW, (t) =>
  runCase(
    t,
    { args: PUSH, mode: 'spawn', finish: { deadlineMs: 30000 } },
    async (c) => {
      c.sendList([dirEntry('.'), fileEntry('a', 1)]);
      void c.drainOutput();
      for (let batch = 0; batch < 120 && !c.stopped; batch++) {
        for (let i = 1; i <= 10000; i++) {
          c.w.varint(batch * 10000 + i);
          c.w.u8(1);
          c.w.u8(0x75);
        }
        await c.pace();
      }
    },
    { code: [EXIT.PROTOCOL, EXIT.STREAMIO], maxMiB: MAX_MIB },
  ).then(() => undefined),
);

t.test('push: 100k short filter rules (the count bound)', SLOW, (t) =>
  runCase(
    t,
    { args: ['--server', '-logDtpre.LsfxCIvu', '--delete', '.', 'dst/'], mode: 'spawn', finish: { deadlineMs: 30000 } },
    async (c) => {
      void c.drainOutput();
      for (let batch = 0; batch < 11 && !c.stopped; batch++) {
        for (let i = 0; i < 10000; i++) {
          const text = Buffer.from(`- *.x${batch}_${i}/**/y[a-z]`, 'latin1');
          c.w.i32(text.length);
          c.w.bytes(text);
        }
        await c.pace();
      }
    },
    { code: EXIT.PROTOCOL, error: /too many filter rules/, maxMiB: MAX_MIB },
  ).then(() => undefined),
);

t.test('push: a file list of 600k entries', SLOW, (t) =>
  runCase(
    t,
    { args: PUSH, mode: 'spawn', finish: { deadlineMs: 40000, closeAfterMs: 500 } },
    async (c) => {
      const { FlistWriter } = await import('../../src/protocol/flist/flist-writer.js');
      const fw = new FlistWriter(c.flistOptions());
      void c.drainOutput();
      fw.writeEntry(c.w, dirEntry('.'));
      for (let i = 1; i <= 600_000 && !c.stopped; i++) {
        fw.writeEntry(c.w, fileEntry(`file-${String(i).padStart(8, '0')}`, 1, { arrival: i }));
        if (i % 20000 === 0) await c.pace();
      }
      await c.pace();
    },
    { code: [EXIT.STREAMIO], maxMiB: MAX_MIB },
  ).then(() => undefined),
);

t.test('pull: a --files-from flood of millions of names', SLOW, (t) =>
  runCase(
    t,
    {
      args: ['--server', '--sender', '-logDtpre.LsfxCIvu', '--files-from=-', '.', 'src/'],
      mode: 'spawn',
      finish: { deadlineMs: 30000 },
      prepare: (a) => {
        mkdirSync(join(a.root, 'src'));
        writeFileSync(join(a.root, 'src', 'f'), 'x');
      },
    },
    async (c) => {
      c.sendFilters();
      void c.drainOutput();
      const chunk = Buffer.from('ab\n'.repeat(1 << 20), 'latin1'); // 1M names per chunk
      for (let i = 0; i < 4 && !c.stopped; i++) {
        c.w.bytes(chunk);
        await c.pace();
      }
      c.w.bytes(Buffer.from([0]));
    },
    { code: EXIT.PROTOCOL, error: /too many --files-from names/, maxMiB: MAX_MIB, maxMs: 20000 },
  ).then(() => undefined),
);
