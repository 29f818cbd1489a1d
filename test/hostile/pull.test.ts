/**
 * Hostile pulls (we are the sender; the client is a malicious receiver): sum heads
 * (CVE-2024-12084/12085, CVE-2026-53792), a chain of equal weak sums (CVE-2026-70453), bad file
 * indexes, transfer requests for non-files, --files-from names and filter rules that reach
 * outside the root (merge-file disclosure), a file swapped for a symlink after listing
 * (CVE-2024-12747), MSG_SUCCESS abuse.
 */
import t, { type Test } from 'tap';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT, ITEM, MsgTag, NDX_DONE, NDX_FLIST_EOF, type HostileClient } from './client.js';
import { PULL, runCase, type CaseSpec } from './harness.js';
import type { FileEntry } from '../../src/protocol/flist/entry.js';
import type { Arena } from './client.js';

const SRC_NAMES = ['.', 'f', 'zeros', 'd', 'd/g', 'lnk', 'slink', 'rlnk', 'inroot'];
const LEAK = /TOP-SECRET|outside passwd|outside sub f|outside x/;

function prepareSrc(a: Arena): void {
  const src = join(a.root, 'src');
  mkdirSync(join(src, 'd'), { recursive: true });
  writeFileSync(join(src, 'f'), 'hello world\n');
  writeFileSync(join(src, 'zeros'), Buffer.alloc(1 << 20));
  writeFileSync(join(src, 'd', 'g'), 'g\n');
  symlinkSync(a.outside, join(src, 'lnk'));
  symlinkSync(join(a.outside, 'secret'), join(src, 'slink'));
  symlinkSync('../../outside', join(src, 'rlnk')); // relative, climbs out of the root
  symlinkSync('d', join(src, 'inroot')); // stays inside
}

function pullSpec(over: Partial<CaseSpec> = {}): CaseSpec {
  return { args: PULL, prepare: prepareSrc, ...over };
}

/** Filter list (empty), file list; checks that no listed name comes from outside the root. */
async function listOf(t: Test, c: HostileClient, rules: string[] = []): Promise<Map<string, FileEntry>> {
  c.sendFilters(rules);
  c.flush();
  const list = await c.readFileList();
  const names = list.filter((e) => !e.inactive).map((e) => e.name);
  const strange = names.filter((n) => !SRC_NAMES.includes(n));
  if (strange.length) t.fail('the file list names only files of the transfer', { strange });
  return new Map(list.map((e) => [e.name, e]));
}


t.test('sum heads a hostile receiver can send (CVE-2024-12084, CVE-2026-53792)', async (t) => {
  const heads: Array<[string, [number, number, number, number], RegExp, number?]> = [
    ['s2length 17', [1, 700, 17, 0], /Invalid checksum length 17/],
    ['s2length 64', [1, 700, 64, 0], /Invalid checksum length 64/],
    ['s2length -1', [1, 700, -1, 0], /Invalid checksum length/],
    ['blength 0 with count 5', [5, 0, 2, 0], /Invalid zero block length/],
    ['blength 128 KiB + 1 at protocol 32', [1, 131073, 2, 0], /Invalid block length/],
    ['blength negative', [1, -700, 2, 0], /Invalid block length/],
    ['count 2^31-1', [0x7fffffff, 700, 2, 0], /Invalid checksum count/],
    ['count negative', [-1, 700, 2, 0], /Invalid checksum count/],
    ['remainder > blength', [2, 700, 2, 701], /Invalid remainder/],
    ['remainder negative', [2, 700, 2, -1], /Invalid remainder/],
  ];
  for (const [label, [count, blength, s2length, remainder], re] of heads) {
    await t.test(label, (t) =>
      runCase(
        t,
        pullSpec(),
        async (c) => {
          const list = await listOf(t, c);
          c.request(list.get('f')!.ndx, { count, blength, s2length, remainder });
          c.flush();
        },
        { code: EXIT.PROTOCOL, error: re, noLeak: LEAK },
      ).then(() => undefined),
    );
  }
  await t.test('blength 128 KiB + 1 at protocol 30', (t) =>
    runCase(
      t,
      pullSpec({ handshake: { version: 30 } }),
      async (c) => {
        const list = await listOf(t, c);
        c.request(list.get('f')!.ndx, { count: 1, blength: 131073, s2length: 2, remainder: 0 });
        c.flush();
      },
      { code: EXIT.PROTOCOL, error: /Invalid block length/ },
    ).then(() => undefined),
  );
  await t.test('blength 512 MiB + 1 at protocol 29', (t) =>
    runCase(
      t,
      pullSpec({ args: ['--server', '--sender', '-logDtpr', '.', 'src/'], handshake: { version: 29 } }),
      async (c) => {
        const list = await listOf(t, c);
        c.request(list.get('f')!.ndx, { count: 1, blength: (1 << 29) + 1, s2length: 2, remainder: 0 });
        c.flush();
      },
      { code: EXIT.PROTOCOL, error: /Invalid block length/ },
    ).then(() => undefined),
  );
  await t.test('blength 512 MiB at protocol 29 is legal, and costs no 512 MiB window', (t) =>
    runCase(
      t,
      pullSpec({ args: ['--server', '--sender', '-logDtpr', '.', 'src/'], handshake: { version: 29 } }),
      async (c) => {
        const list = await listOf(t, c);
        const sums = Buffer.alloc(4 + 2);
        c.request(list.get('zeros')!.ndx, { count: 1, blength: 1 << 29, s2length: 2, remainder: 0 }, sums);
        c.flush();
        const reply = await c.readFileReply();
        t.equal(reply.literal.length, 1 << 20, 'all literal');
        await c.finishPull();
      },
      { code: EXIT.OK },
    ).then(() => undefined),
  );
  await t.test('s2length 16 with an 8-byte digest compares only real digest bytes (CVE-2024-12085)', (t) =>
    runCase(
      t,
      pullSpec({ handshake: { checksums: 'xxh64' } }),
      async (c) => {
        t.equal(c.digestLen, 8, 'xxh64 negotiated');
        const list = await listOf(t, c);
        // one block of f, with a correct-looking sum1 but a strong sum whose bytes 8..15 are junk
        const sums = Buffer.alloc(4 + 16, 0xab);
        c.request(list.get('f')!.ndx, { count: 1, blength: 700, s2length: 16, remainder: 12 }, sums);
        c.flush();
        const reply = await c.readFileReply();
        t.same(reply.matches, [], 'no block matched');
        await c.finishPull();
      },
      { code: EXIT.OK },
    ).then(() => undefined),
  );
  await t.test('a sum count larger than the data that follows, then EOF', (t) =>
    runCase(
      t,
      pullSpec({ finish: { closeAfterMs: 200 } }),
      async (c) => {
        const list = await listOf(t, c);
        c.request(list.get('f')!.ndx, { count: 1000, blength: 700, s2length: 2, remainder: 0 }, Buffer.alloc(60));
        c.flush();
      },
      { code: EXIT.STREAMIO, error: /unexpectedly closed/ },
    ).then(() => undefined),
  );
});

t.test('10^6 equal weak sums cost bounded CPU (CVE-2026-70453)', (t) =>
  runCase(
    t,
    pullSpec({ finish: { deadlineMs: 20000 } }),
    async (c) => {
      const list = await listOf(t, c);
      const count = 1_000_000;
      // sum1 of a block of zeros is 0: every offset of `zeros` hits the whole chain; strong sums never match
      const sums = Buffer.alloc(count * 6);
      for (let i = 0; i < count; i++) sums.writeUInt16LE(0xbeef, i * 6 + 4);
      c.request(list.get('zeros')!.ndx, { count, blength: 700, s2length: 2, remainder: 0 }, sums);
      c.flush();
      const reply = await c.readFileReply();
      t.equal(reply.literal.length + reply.matches.length * 700, 1 << 20, 'the whole file arrived');
      await c.finishPull();
    },
    { code: EXIT.OK, maxMs: 10000 },
  ).then(() => undefined),
);

t.test('requests for indexes the server never listed', async (t) => {
  const cases: Array<[string, (list: Map<string, FileEntry>) => number, RegExp]> = [
    ['past the end', (l) => l.size + 5, /Invalid file index/],
    ['far past the end', () => 1_000_000_000, /Invalid file index/],
    ['negative', () => -7, /Invalid file index/],
    ['NDX_FLIST_EOF', () => NDX_FLIST_EOF, /Invalid file index/],
    ['NDX_FLIST_OFFSET - 3', () => -104, /Invalid file index/],
  ];
  for (const [label, pick, re] of cases) {
    await t.test(label, (t) =>
      runCase(
        t,
        pullSpec(),
        async (c) => {
          const list = await listOf(t, c);
          c.request(pick(list), { count: 0, blength: 0, s2length: 0, remainder: 0 });
          c.flush();
        },
        { code: EXIT.PROTOCOL, error: re, noLeak: LEAK },
      ).then(() => undefined),
    );
  }
  for (const name of ['d', '.', 'lnk', 'slink']) {
    await t.test(`ITEM_TRANSFER for the non-file "${name}"`, (t) =>
      runCase(
        t,
        pullSpec(),
        async (c) => {
          const list = await listOf(t, c);
          c.request(list.get(name)!.ndx, { count: 0, blength: 0, s2length: 0, remainder: 0 });
          c.flush();
        },
        { code: EXIT.PROTOCOL, error: /non-regular/, noLeak: LEAK },
      ).then(() => undefined),
    );
  }
  await t.test('a transfer request in phase 2', (t) =>
    runCase(
      t,
      pullSpec(),
      async (c) => {
        const list = await listOf(t, c);
        for (let i = 0; i < 2; i++) {
          c.w.ndx(NDX_DONE);
          c.flush();
          await c.r.readNdx();
        }
        c.request(list.get('f')!.ndx, { count: 0, blength: 0, s2length: 0, remainder: 0 });
        c.flush();
      },
      { code: EXIT.PROTOCOL, error: /phase 2/ },
    ).then(() => undefined),
  );
  await t.test('a non-transfer item is only echoed', (t) =>
    runCase(
      t,
      pullSpec(),
      async (c) => {
        const list = await listOf(t, c);
        c.w.ndx(list.get('slink')!.ndx);
        c.w.u16(ITEM.LOCAL_CHANGE | ITEM.XNAME_FOLLOWS);
        c.w.vstring(Buffer.from('../../outside/secret'));
        c.flush();
        t.equal(await c.r.readNdx(), list.get('slink')!.ndx, 'echo');
        await c.r.readU16();
        await c.r.readVstring(4095);
        await c.finishPull();
      },
      { code: EXIT.OK, noLeak: LEAK },
    ).then(() => undefined),
  );
});

t.test('MSG_SUCCESS from a receiver', async (t) => {
  const RSF = ['--server', '--sender', '-logDtpre.LsfxCIvu', '--remove-source-files', '.', 'src/'];
  await t.test('without --remove-source-files it deletes nothing', (t) =>
    runCase(
      t,
      pullSpec(),
      async (c) => {
        const list = await listOf(t, c);
        c.frame(MsgTag.SUCCESS, i32buf(list.get('f')!.ndx));
        await c.finishPull();
      },
      { code: EXIT.OK, present: ['src/f'] },
    ).then(() => undefined),
  );
  await t.test('out-of-range index', (t) =>
    runCase(
      t,
      pullSpec({ args: RSF }),
      async (c) => {
        await listOf(t, c);
        c.frame(MsgTag.SUCCESS, i32buf(9999));
        c.flush();
      },
      { code: EXIT.PROTOCOL, error: /Invalid file index/ },
    ).then(() => undefined),
  );
  await t.test('for a symlink to an outside file: the link goes, its target stays', (t) =>
    runCase(
      t,
      pullSpec({ args: RSF }),
      async (c) => {
        const list = await listOf(t, c);
        c.frame(MsgTag.SUCCESS, i32buf(list.get('slink')!.ndx));
        c.frame(MsgTag.SUCCESS, i32buf(list.get('lnk')!.ndx));
        await c.finishPull();
      },
      { code: EXIT.OK, noLeak: LEAK },
    ).then(() => undefined),
  );
  await t.test('refused outright under a no-delete grant', (t) =>
    runCase(t, pullSpec({ args: RSF, grant: { noDelete: true }, handshake: false }), () => undefined, {
      code: EXIT.SYNTAX,
      error: /not allowed/,
    }).then(() => undefined),
  );
});

t.test('a source file swapped for a symlink after listing (CVE-2024-12747)', async (t) => {
  for (const [label, swap] of [
    ['symlink to an outside file', (a: Arena) => symlinkSync(join(a.outside, 'secret'), join(a.root, 'src', 'f'))],
    ['a different file', (a: Arena) => writeFileSync(join(a.root, 'src', 'f'), 'TOP-SECRET replacement\n')],
  ] as const) {
    await t.test(label, (t) =>
      runCase(
        t,
        pullSpec(),
        async (c, a) => {
          const list = await listOf(t, c);
          renameSync(join(a.root, 'src', 'f'), join(a.root, 'src', 'f.old'));
          swap(a);
          c.request(list.get('f')!.ndx, { count: 0, blength: 0, s2length: 0, remainder: 0 });
          c.request(list.get('d/g')!.ndx, { count: 0, blength: 0, s2length: 0, remainder: 0 });
          c.flush();
          const reply = await c.readFileReply();
          t.equal(reply.ndx, list.get('d/g')!.ndx, 'only d/g was sent');
          await c.finishPull();
        },
        { code: [EXIT.PARTIAL, 24], noLeak: LEAK },
      ).then(() => undefined),
    );
  }
});

t.test('an absolute source path is re-rooted, never the real /etc', (t) =>
  runCase(
    t,
    pullSpec({ args: ['--server', '--sender', '-logDtpre.LsfxCIvu', '.', '/etc/'] }),
    async (c) => {
      c.sendFilters();
      c.flush();
      const list = await c.readFileList();
      t.same(list.map((e) => e.name), [], 'nothing listed');
    },
    { code: EXIT.PARTIAL, error: /etc/, noLeak: /root:x:0:0:root/ },
  ).then(() => undefined),
);

t.test('source args through symlinks (followed only while they stay inside the root)', async (t) => {
  const cases: Array<[string, string[], number[]]> = [
    ['src/lnk/ (absolute link out)', ['src/lnk/'], [EXIT.PARTIAL]],
    ['src/rlnk/ (relative link climbing out)', ['src/rlnk/'], [EXIT.PARTIAL]],
    ['src/rlnk/secret', ['src/rlnk/secret'], [EXIT.PARTIAL]],
    ['src/slink (a symlink arg is sent as a link)', ['src/slink'], [EXIT.OK]],
    ['-R src/rlnk/sub/f', ['-R', 'src/rlnk/sub/f'], [EXIT.PARTIAL]],
  ];
  for (const [label, extra, codes] of cases) {
    const opts = extra.filter((x) => x.startsWith('-'));
    const paths = extra.filter((x) => !x.startsWith('-'));
    await t.test(label, (t) =>
      runCase(
        t,
        pullSpec({ args: ['--server', '--sender', '-logDtpre.LsfxCIvu', ...opts, '.', ...paths] }),
        async (c) => {
          c.sendFilters();
          c.flush();
          const list = await c.readFileList();
          for (const e of list) {
            t.notOk(['secret', 'x', 'passwd', 'sub', 'sub/f'].some((n) => e.name === n || e.name.endsWith(`/${n}`)), `listed ${e.name} is not an outside file`);
          }
          if (list.some((e) => (e.mode & 0o170000) === 0o100000)) {
            const f = list.find((e) => (e.mode & 0o170000) === 0o100000)!;
            c.request(f.ndx, { count: 0, blength: 0, s2length: 0, remainder: 0 });
            c.flush();
            const reply = await c.readFileReply();
            t.notMatch(reply.literal.toString('latin1'), LEAK);
          }
          if (list.length > 0) await c.finishPull();
        },
        { code: codes, noLeak: LEAK },
      ).then(() => undefined),
    );
  }
  await t.test('src/inroot/ (a link to a dir inside the root) is followed', (t) =>
    runCase(
      t,
      pullSpec({ args: ['--server', '--sender', '-logDtpre.LsfxCIvu', '.', 'src/inroot/'] }),
      async (c) => {
        c.sendFilters();
        c.flush();
        const list = await c.readFileList();
        t.same(list.map((e) => e.name).sort(), ['.', 'g']);
        await c.finishPull();
      },
      { code: EXIT.OK },
    ).then(() => undefined),
  );
});

t.test('--files-from=- names that leave the root', async (t) => {
  const FF = ['--server', '--sender', '-logDtpre.LsfxCIvu', '--files-from=-', '.', 'src/'];
  const bad = ['../outside/secret', '/etc/passwd', 'd/../../outside/secret', 'lnk/secret', '..', '../../', 'lnk/../slink', 'rlnk/secret', 'rlnk/sub/f', 'rlnk'];
  for (const name of bad) {
    await t.test(JSON.stringify(name), (t) =>
      runCase(
        t,
        pullSpec({ args: FF }),
        async (c) => {
          c.sendFilters();
          c.w.bytes(Buffer.from(`f\n${name}\n\0`, 'latin1'));
          c.flush();
          const list = await c.readFileList();
          const names = list.filter((e) => !e.inactive).map((e) => e.name);
          // ".." and "../../" are cleaned to the transfer dir itself (its contents are listed)
          const strange = names.filter((n) => !SRC_NAMES.includes(n));
          t.same(strange, [], 'only names inside the transfer are listed');
          for (const e of list) if (e.linkTarget !== undefined) t.notMatch(e.linkTarget, /TOP-SECRET/);
          if (list.length > 0) await c.finishPull();
        },
        { code: [EXIT.PARTIAL, EXIT.OK], noLeak: LEAK },
      ).then(() => undefined),
    );
  }
});

t.test('per-file errors are capped (no unbounded output from 10200 missing --files-from names)', (t) =>
  runCase(
    t,
    pullSpec({ args: ['--server', '--sender', '-logDtpre.LsfxCIvu', '--files-from=-', '.', 'src/'] }),
    async (c) => {
      c.sendFilters();
      const names = Array.from({ length: 10_200 }, (_, i) => `missing-${i}`).join('\n');
      c.w.bytes(Buffer.from(`${names}\nf\n\0`, 'latin1'));
      c.flush();
      const list = await c.readFileList();
      t.same(list.map((e) => e.name), ['f']);
      await c.finishPull();
      const errors = c.messages.filter((m) => m.tag === MsgTag.ERROR_XFER);
      t.ok(errors.length <= 10_001, `${errors.length} error messages reached the client`);
      t.match(errors[errors.length - 1]?.text ?? '', /further ones are not shown/);
    },
    { code: EXIT.PARTIAL },
  ).then(() => undefined),
);

t.test('filter rules that name files outside the root (merge-file disclosure)', async (t) => {
  const refused: Array<[string, string]> = [
    ['. /etc/shadow', '. /etc/shadow'],
    ['merge ../outside/secret', 'merge ../outside/secret'],
    [': /etc/passwd', ': /etc/passwd'],
    ['dir-merge ../../outside/passwd', 'dir-merge ../../outside/passwd'],
    ['.- /etc/passwd (exclude-only merge)', '.- /etc/passwd'],
  ];
  for (const [label, rule] of refused) {
    await t.test(label, (t) =>
      runCase(t, pullSpec(), (c) => c.sendFilters([rule]), { code: EXIT.SYNTAX, error: /outside the transfer/, noLeak: LEAK }).then(() => undefined),
    );
  }
  await t.test('a merge file that is a symlink to an outside file is never opened', (t) =>
    runCase(t, pullSpec(), (c) => c.sendFilters(['. slink']), { code: [EXIT.SYNTAX, 11], error: /merge file|failed to open exclude file/, noLeak: LEAK }).then(() => undefined),
  );
  await t.test('a dir-merge file that is a symlink to an outside file is ignored', (t) =>
    runCase(
      t,
      pullSpec(),
      async (c) => {
        await listOf(t, c, [': slink', ': passwd']);
        await c.finishPull();
      },
      { code: EXIT.OK, noLeak: LEAK },
    ).then(() => undefined),
  );
  await t.test('parse errors in a merge file never echo its content', (t) =>
    runCase(
      t,
      // a client ". FILE" rule names a file relative to the root (the reference: the login directory)
      pullSpec({ prepare: (a) => (prepareSrc(a), writeFileSync(join(a.root, 'rules'), 'Q TOP-SECRET-CONTENT\n')) }),
      (c) => c.sendFilters(['. rules']),
      { code: [EXIT.SYNTAX, EXIT.PROTOCOL], noLeak: LEAK },
    ).then(() => undefined),
  );
  await t.test('exclude rules naming outside paths change nothing', (t) =>
    runCase(
      t,
      pullSpec(),
      async (c) => {
        await listOf(t, c, ['- /etc/passwd', '+ ../outside/**', '- *']);
        await c.finishPull();
      },
      { code: [EXIT.OK], noLeak: LEAK },
    ).then(() => undefined),
  );
});

function i32buf(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
}
