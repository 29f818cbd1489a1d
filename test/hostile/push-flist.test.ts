/**
 * Hostile pushes (we are the receiver), file-list stage: unsafe names, a non-directory root
 * entry (CVE-2026-70459), hard-link flags/references (CVE-2026-70458), inc-recursion sub-list
 * abuse (CVE-2024-12087, CVE-2026-43620), symlink-then-child sequences, -R implied parents
 * (CVE-2026-53785, CVE-2026-53789).
 */
import t from 'tap';
import { lstatSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dirEntry, EXIT, fileEntry, ITEM, linkEntry, NDX_DONE, NDX_FLIST_EOF, type HostileClient } from './client.js';
import { PUSH, PUSH_INC, runCase } from './harness.js';
import { XMIT } from '../../src/protocol/flist/xmit.js';

const UNSAFE = /ABORTING due to unsafe pathname from sender/;

/** A hand-written varint-dialect entry (protocol >= 30 with CF_VARINT_FLIST_FLAGS, -logDt). */
function rawEntry(c: HostileClient, o: { flags?: number; name: string; hlinkNdx?: number; size?: number; mode?: number }): void {
  const w = c.w;
  let flags = (o.flags ?? 0) | XMIT.SAME_UID | XMIT.SAME_GID;
  const name = Buffer.from(o.name, 'latin1');
  if (name.length > 255) flags |= XMIT.LONG_NAME;
  w.varint(flags);
  if (flags & XMIT.LONG_NAME) w.varint(name.length);
  else w.u8(name.length);
  w.bytes(name);
  // first_hlink_ndx; an in-list reference would end the entry here, but every one sent by the
  // tests is refused before that matters
  if (o.hlinkNdx !== undefined) w.varint(o.hlinkNdx);
  w.varlong(o.size ?? 0, 3);
  if (!(flags & XMIT.SAME_TIME)) w.varlong(1_700_000_000, 4);
  if (!(flags & XMIT.SAME_MODE)) w.i32(o.mode ?? 0o100644);
}

t.test('unsafe file-list names are refused before anything is written', async (t) => {
  const names: Array<[string, string]> = [
    ['..', 'dot-dot'],
    ['a/../../x', 'climbing path'],
    ['/etc/passwd', 'absolute name without -R'],
    ['x'.repeat(5000), '5000-byte name'],
    ['', 'empty name'],
    ['a\0b', 'name with a NUL byte'],
    ['sub/\0', 'NUL component'],
    ['a/.', 'trailing dot component'],
  ];
  for (const [name, label] of names) {
    await t.test(label, (t) =>
      runCase(t, { args: PUSH }, (c) => c.sendWholeList([dirEntry('.'), fileEntry('ok', 3), fileEntry(name, 3)]), {
        code: EXIT.UNSUPPORTED,
        error: UNSAFE,
        absent: ['dst/ok', 'dst/x', 'x'],
      }),
    );
  }
  await t.test('name longer than the 4096-byte limit is refused from its length alone', (t) =>
    runCase(t, { args: PUSH }, (c) => rawEntry(c, { name: 'y'.repeat(4100) }), { code: EXIT.UNSUPPORTED, error: UNSAFE }),
  );
});

t.test('a 300-byte component is a per-file error, not a crash', (t) =>
  runCase(
    t,
    { args: PUSH },
    async (c) => {
      c.sendWholeList([dirEntry('.'), fileEntry('ok', 3), fileEntry('n'.repeat(300), 3)]);
      await c.serveRequests();
    },
    { code: EXIT.PARTIAL, error: /longer than 255|name too long|unsafe path/i, present: ['dst/ok'] },
  ),
);

t.test('a first list whose "." is not a directory (CVE-2026-70459)', async (t) => {
  for (const [label, args] of [['plain', PUSH], ['inc-recurse', PUSH_INC]] as const) {
    await t.test(`regular file "." (${label})`, (t) =>
      runCase(t, { args }, (c) => c.sendWholeList([fileEntry('.', 10), fileEntry('a', 1)]), {
        code: EXIT.PROTOCOL,
        error: /non-directory transfer-root entry/,
      }),
    );
  }
  await t.test('symlink "."', (t) =>
    runCase(t, { args: PUSH }, (c) => c.sendWholeList([linkEntry('.', '/')]), { code: EXIT.PROTOCOL, error: /non-directory transfer-root/ }),
  );
});

t.test('XMIT_HLINKED without -H (CVE-2026-70458)', async (t) => {
  for (const [label, args] of [['proto 32', PUSH], ['inc-recurse', PUSH_INC]] as const) {
    await t.test(label, (t) =>
      runCase(
        t,
        { args },
        (c) =>
          c.sendWholeList([dirEntry('.'), fileEntry('a', 3, { hlinkGroup: 1 }), fileEntry('b', 3, { hlinkGroup: 1 })], { over: { hardLinks: true } }),
        { code: EXIT.PROTOCOL, error: /Invalid flist flag/, absent: ['dst/a', 'dst/b'] },
      ),
    );
  }
  await t.test('proto 29 dev/ino hard link without -H', (t) =>
    runCase(
      t,
      { args: ['--server', '-logDtpr', '.', 'dst/'], handshake: { version: 29 } },
      (c) => c.sendWholeList([dirEntry('.'), fileEntry('a', 3, { dev: 5, ino: 7 }), fileEntry('b', 3, { dev: 5, ino: 7 })], { over: { hardLinks: true } }),
      { code: EXIT.PROTOCOL, error: /Invalid flist flag/ },
    ),
  );
});

t.test('hard-link references that point nowhere (-H)', async (t) => {
  const H = ['--server', '-logDtpHre.LsfxCIvu', '.', 'dst/'];
  const HL = XMIT.HLINKED | XMIT.SAME_TIME;
  const cases: Array<[string, number]> = [
    ['forward reference', 5],
    ['self reference', 2],
    ['far out of range', 0x7fffffff],
    ['negative', -1],
  ];
  for (const [label, ndx] of cases) {
    await t.test(label, (t) =>
      runCase(
        t,
        { args: H },
        (c) => {
          c.sendList([dirEntry('.'), fileEntry('a', 3)], { end: false });
          rawEntry(c, { flags: HL, name: 'z', hlinkNdx: ndx, mode: 0o100644 });
          c.flush();
        },
        { code: EXIT.PROTOCOL, error: /hard-link reference/ },
      ),
    );
  }
  await t.test('reference to an entry that is not a group leader', (t) =>
    runCase(
      t,
      { args: H },
      (c) => {
        c.sendList([dirEntry('.'), fileEntry('a', 3)], { end: false });
        rawEntry(c, { flags: HL, name: 'z', hlinkNdx: 1 });
        c.flush();
      },
      { code: EXIT.PROTOCOL, error: /not a group leader/ },
    ),
  );
  await t.test('a valid group whose follower points at a planted outside symlink leader', (t) =>
    runCase(
      t,
      {
        args: H,
        prepare: (a) => {
          mkdirSync(join(a.root, 'dst'));
          symlinkSync(join(a.outside, 'secret'), join(a.root, 'dst', 'a'));
        },
      },
      async (c) => {
        c.sendWholeList([dirEntry('.'), fileEntry('a', 4, { hlinkGroup: 9 }), fileEntry('b', 4, { hlinkGroup: 9 })]);
        await c.serveRequests(() => Buffer.from('new\n'));
      },
      { code: EXIT.OK, present: ['dst/a', 'dst/b'] },
    ).then(() => undefined),
  );
});

t.test('incremental-recursion sub-list abuse (CVE-2024-12087, CVE-2026-43620)', async (t) => {
  const first = (): ReturnType<typeof dirEntry>[] => [dirEntry('.'), dirEntry('sub'), fileEntry('f', 2)];
  await t.test('duplicate sub-list for the same directory', (t) =>
    runCase(
      t,
      { args: PUSH_INC },
      (c) => {
        c.sendList(first());
        c.sendList([fileEntry('sub/a', 1)], { dirIndex: 1 });
        c.sendList([linkEntry('sub/a', '../../../outside')], { dirIndex: 1 });
        c.flush();
      },
      { code: EXIT.PROTOCOL, error: /duplicate flist/ },
    ),
  );
  for (const [label, d] of [['dir index past the end', 7], ['huge dir index', 0x7ffff000]] as const) {
    await t.test(label, (t) =>
      runCase(
        t,
        { args: PUSH_INC },
        (c) => {
          c.sendList(first());
          c.sendList([fileEntry('sub/a', 1)], { dirIndex: d });
          c.flush();
        },
        { code: EXIT.PROTOCOL, error: /Invalid dir index/ },
      ),
    );
  }
  await t.test('sub-list after NDX_FLIST_EOF', (t) =>
    runCase(
      t,
      { args: PUSH_INC },
      (c) => {
        c.sendList(first());
        c.w.ndx(NDX_FLIST_EOF);
        c.sendList([fileEntry('sub/a', 1)], { dirIndex: 1 });
        c.flush();
      },
      { code: EXIT.PROTOCOL, error: /Invalid dir index/ },
    ),
  );
  for (const name of ['other/x', 'x', 'sub/deeper/x']) {
    await t.test(`sub-list entry "${name}" outside its directory`, (t) =>
      runCase(
        t,
        { args: PUSH_INC },
        (c) => {
          c.sendList(first());
          c.sendList([fileEntry(name, 1)], { dirIndex: 1 });
          c.flush();
        },
        { code: [EXIT.PROTOCOL, EXIT.UNSUPPORTED], error: /invalid path from sender/, absent: ['dst/x', 'dst/other'] },
      ),
    );
  }
  await t.test('ndx 0 (before the first list) with ITEM_TRANSFER', (t) =>
    runCase(
      t,
      { args: PUSH_INC },
      (c) => {
        c.sendWholeList(first());
        c.w.ndx(0);
        c.w.u16(ITEM.TRANSFER);
        c.w.i32(0);
        c.w.i32(0);
        c.w.i32(0);
        c.w.i32(0);
        c.flush();
      },
      { code: EXIT.PROTOCOL, error: /not requested|Invalid file index/ },
    ),
  );
});

t.test('symlink, then a child through it: nothing is written outside', async (t) => {
  const targets = (outside: string): Array<[string, string]> => [
    ['relative ../../outside', '../../outside'],
    ['absolute outside dir', outside],
    ['the file-system root', '/'],
  ];
  for (const [label, idx] of [['relative', 0], ['absolute', 1], ['/', 2]] as const) {
    await t.test(`same list, d -> ${label}`, (t) =>
      runCase(
        t,
        { args: PUSH },
        async (c, a) => {
          const [, target] = targets(a.outside)[idx];
          // `d` sorts before `d/...`; with "/" as target, `d/<outside path>/x` aims at the real dir
          const child = idx === 2 ? `d${a.outside}/x` : 'd/x';
          c.sendWholeList([dirEntry('.'), linkEntry('d', target), fileEntry(child, 5), fileEntry('d/secret', 5)]);
          await c.serveRequests(() => Buffer.from('PWNED'));
        },
        { code: EXIT.PARTIAL, error: /symlink|not a directory/ },
      ),
    );
  }
  await t.test('inc-recurse: d is a symlink in the first list, a later list turns it into a dir', (t) =>
    runCase(
      t,
      { args: PUSH_INC },
      async (c, a) => {
        c.sendList([dirEntry('.'), linkEntry('d', a.outside), fileEntry('f', 1)]);
        // a sub-list for "." (dir #0) re-sends d as a directory, then d's own list
        c.sendList([dirEntry('d')], { dirIndex: 0 });
        c.sendList([fileEntry('d/x', 5), fileEntry('d/secret', 5)], { dirIndex: 1 });
        c.w.ndx(NDX_FLIST_EOF);
        c.flush();
        await c.serveRequests(() => Buffer.from('PWNED'));
      },
      { code: [EXIT.OK, EXIT.PARTIAL] },
    ),
  );
  await t.test('a planted symlink in the destination is replaced, never followed', (t) =>
    runCase(
      t,
      {
        args: PUSH_INC,
        prepare: (a) => {
          mkdirSync(join(a.root, 'dst'));
          symlinkSync('../../outside', join(a.root, 'dst', 'd'));
        },
      },
      async (c) => {
        c.sendList([dirEntry('.'), dirEntry('d')]);
        c.sendList([fileEntry('d/x', 5), fileEntry('d/secret', 5)], { dirIndex: 1 });
        c.w.ndx(NDX_FLIST_EOF);
        c.flush();
        await c.serveRequests(() => Buffer.from('PWNED'));
      },
      { code: EXIT.OK, present: ['dst/d/x', 'dst/d/secret'] },
    ).then(() => undefined),
  );
  const plantLink = (a: { root: string; outside: string }): void => {
    mkdirSync(join(a.root, 'dst'));
    symlinkSync(a.outside, join(a.root, 'dst', 'd'));
  };
  await t.test('a later push into d/ after d became a symlink to an outside dir', (t) =>
    runCase(
      t,
      { args: ['--server', '-logDtpre.LsfxCIvu', '.', 'dst/d/'], prepare: plantLink },
      async (c) => {
        c.sendWholeList([dirEntry('.'), fileEntry('x', 5), fileEntry('secret', 5)]);
        await c.serveRequests(() => Buffer.from('PWNED'));
      },
      { code: [EXIT.FILESELECT, EXIT.PARTIAL], error: /must be a directory|symlink/ },
    ),
  );
  await t.test('a later push into d/sub/ (mkdir through the symlink)', (t) =>
    runCase(
      t,
      { args: ['--server', '-logDtpre.LsfxCIvu', '.', 'dst/d/sub/'], prepare: plantLink },
      async (c) => {
        c.sendWholeList([dirEntry('.'), fileEntry('x', 5)]);
        await c.serveRequests(() => Buffer.from('PWNED'));
      },
      { code: [EXIT.FILESELECT, EXIT.PARTIAL], error: /symlink|failed/ },
    ),
  );
  await t.test('a single file pushed onto the symlink name replaces the link', async (t) => {
    await runCase(
      t,
      { args: ['--server', '-logDtpre.LsfxCIvu', '.', 'dst/d'], prepare: plantLink },
      async (c) => {
        c.sendWholeList([fileEntry('x', 5)]);
        await c.serveRequests(() => Buffer.from('FILE\n'));
      },
      { code: EXIT.OK },
    );
  });
});

t.test('--relative: names stay under the destination', async (t) => {
  const R = ['--server', '-logDtpRre.LsfxCIvu', '.', 'dst/'];
  await t.test('an absolute name is re-rooted under dst', (t) =>
    runCase(
      t,
      { args: R },
      async (c, a) => {
        const parts = a.outside.split('/').filter(Boolean);
        const entries = [];
        for (let i = 1; i <= parts.length; i++) entries.push(dirEntry(`/${parts.slice(0, i).join('/')}`, { xflags: XMIT.TOP_DIR | XMIT.NO_CONTENT_DIR }));
        entries.push(fileEntry(`${a.outside}/secret`, 6));
        c.sendWholeList(entries);
        await c.serveRequests(() => Buffer.from('PWNED\n'));
      },
      { code: EXIT.OK },
    ).then((o) => void o),
  );
  await t.test('implied parent through a planted symlink (CVE-2026-53785)', (t) =>
    runCase(
      t,
      {
        args: R,
        prepare: (a) => {
          mkdirSync(join(a.root, 'dst'));
          symlinkSync('../../outside', join(a.root, 'dst', 'a'));
        },
      },
      async (c) => {
        c.sendWholeList([dirEntry('a', { xflags: XMIT.TOP_DIR | XMIT.NO_CONTENT_DIR }), fileEntry('a/secret', 6), fileEntry('a/x', 6)]);
        await c.serveRequests(() => Buffer.from('PWNED\n'));
      },
      { code: EXIT.OK, present: ['dst/a/secret'] },
    ).then(() => undefined),
  );
  const prepareDelete = (a: { root: string }): void => {
    mkdirSync(join(a.root, 'dst', 'a', 'b'), { recursive: true });
    writeFileSync(join(a.root, 'dst', 'a', 'sibling'), 'keep?\n');
    writeFileSync(join(a.root, 'dst', 'a', 'b', 'old'), 'old\n');
    writeFileSync(join(a.root, 'dst', 'other'), 'keep\n');
    mkdirSync(join(a.root, 'neighbour'));
    writeFileSync(join(a.root, 'neighbour', 'keep'), 'keep\n');
  };
  const RD = ['--server', '-logDtpRre.LsfxCIvu', '--delete', '.', 'dst/'];
  await t.test('implied parents with XMIT_NO_CONTENT_DIR: nothing outside a/b/c is deleted', (t) =>
    runCase(
      t,
      { args: RD, prepare: prepareDelete },
      async (c) => {
        c.sendFilters();
        const implied = { xflags: XMIT.TOP_DIR | XMIT.NO_CONTENT_DIR };
        c.sendWholeList([dirEntry('a', implied), dirEntry('a/b', implied), fileEntry('a/b/c', 2)]);
        await c.serveRequests(() => Buffer.from('c\n'));
      },
      { code: EXIT.OK, present: ['dst/a/sibling', 'dst/a/b/old', 'dst/other', 'neighbour/keep', 'dst/a/b/c'] },
    ).then(() => undefined),
  );
  await t.test('implied parents WITHOUT XMIT_NO_CONTENT_DIR (CVE-2026-53789): deletion never leaves dst', (t) =>
    runCase(
      t,
      { args: RD, prepare: prepareDelete },
      async (c) => {
        c.sendFilters();
        c.sendWholeList([dirEntry('a', { xflags: XMIT.TOP_DIR }), dirEntry('a/b', { xflags: XMIT.TOP_DIR }), fileEntry('a/b/c', 2)]);
        await c.serveRequests(() => Buffer.from('c\n'));
      },
      { code: EXIT.OK, present: ['dst/other', 'neighbour/keep', 'dst/a/b/c'] },
    ).then(() => undefined),
  );
});

t.test('the NDX_DONE choreography cannot be faked ahead of time', (t) =>
  runCase(
    t,
    { args: PUSH },
    (c) => {
      c.sendWholeList([dirEntry('.'), fileEntry('a', 1)]);
      for (let i = 0; i < 6; i++) c.w.ndx(NDX_DONE);
      c.flush();
    },
    { code: [EXIT.PROTOCOL, EXIT.STREAMIO], error: /unexpected NDX_DONE|goodbye|unexpectedly/ },
  ),
);


t.test('client-named helper dirs (--temp-dir, --backup-dir, --partial-dir, --*-dest) planted as outside symlinks', async (t) => {
  const plant = (where: string) => (a: { root: string; outside: string }): void => {
    mkdirSync(join(a.root, 'dst'), { recursive: true });
    writeFileSync(join(a.root, 'dst', 'secret'), 'old secret\n');
    utimesSync(join(a.root, 'dst', 'secret'), 1000, 1000);
    // relative helper dirs resolve against the destination, absolute ones against the root: plant both
    symlinkSync(a.outside, join(a.root, where));
    if (!where.startsWith('dst/')) symlinkSync(a.outside, join(a.root, 'dst', where));
  };
  const plantParent = plant;
  const secretStat = (a: { outside: string }): { size: number; mtime: number } => {
    const st = lstatSync(join(a.outside, 'secret'));
    return { size: st.size, mtime: Math.floor(st.mtimeMs / 1000) };
  };
  const cases: Array<[string, string[], (a: { root: string; outside: string }) => void]> = [
    ['--temp-dir=tmp', ['--temp-dir=tmp'], plant('tmp')],
    ['--temp-dir through a symlinked parent', ['--temp-dir=lnk/sub'], plantParent('lnk')],
    ['--backup-dir=bk', ['-b', '--backup-dir=bk'], plant('bk')],
    ['--backup-dir through a symlinked parent', ['-b', '--backup-dir=lnk/sub/bk'], plantParent('lnk')],
    ['--backup-dir=/bk (root-anchored)', ['-b', '--backup-dir=/bk'], plant('bk')],
    ['--link-dest=ld', ['--link-dest=ld'], plant('ld')],
    ['--link-dest=/ld', ['--link-dest=/ld'], plant('ld')],
    ['--compare-dest=cd', ['--compare-dest=cd'], plant('cd')],
    ['--copy-dest=cp', ['--copy-dest=cp'], plant('cp')],
    ['--link-dest through a symlinked parent', ['--link-dest=/lnk/sub'], plantParent('lnk')],
    ['--partial-dir=.p in dst', ['--partial-dir=.p'], plant('dst/.p')],
  ];
  for (const [label, extra, prepare] of cases) {
    await t.test(label, (t) =>
      runCase(
        t,
        { args: ['--server', '-logDtpre.LsfxCIvu', ...extra, '.', 'dst/'], prepare },
        async (c, a) => {
          // "secret" matches the outside file's size and mtime: a followed --*-dest would pick it
          const st = secretStat(a);
          c.sendWholeList([dirEntry('.'), fileEntry('secret', st.size, { mtime: st.mtime }), fileEntry('x', 4)]);
          await c.serveRequests((name) => Buffer.from(name === 'secret' ? 'PWNED-SECRET-PUSH!!!!!!!\n'.slice(0, st.size) : 'new\n'));
        },
        { code: [EXIT.OK, EXIT.SYNTAX, EXIT.FILESELECT, 11, EXIT.PARTIAL] },
      ).then((o) => {
        void o;
      }),
    );
  }
  await t.test('--partial-dir=.p planted as an outside symlink, transfer cut mid-file', (t) =>
    runCase(
      t,
      { args: ['--server', '-logDtpre.LsfxCIvu', '--partial-dir=.p', '.', 'dst/'], prepare: plant('dst/.p'), finish: { closeNow: true } },
      async (c) => {
        c.sendWholeList([dirEntry('.'), fileEntry('secret', 100000)]);
        for (;;) {
          const r = await c.nextRequest();
          if (r.kind !== 'transfer') continue;
          c.replyHeader(r);
          c.w.i32(50000);
          c.w.bytes(Buffer.alloc(50000, 'P'));
          c.flush();
          break;
        }
      },
      { code: EXIT.STREAMIO },
    ).then(() => undefined),
  );
});

t.test('symlink targets and device entries a stock client would not send', async (t) => {
  const cases: Array<[string, ReturnType<typeof linkEntry>, number[]]> = [
    ['empty symlink target', linkEntry('l', ''), [EXIT.PARTIAL, EXIT.OK]],
    ['symlink target with a NUL', linkEntry('l', 'a\0/../../etc'), [EXIT.PARTIAL]],
    ['symlink target of 4095 bytes', linkEntry('l', 'x/'.repeat(2047) + 'y'), [EXIT.PARTIAL, EXIT.OK]],
  ];
  for (const [label, entry, codes] of cases) {
    await t.test(label, (t) =>
      runCase(
        t,
        { args: PUSH },
        async (c) => {
          c.sendWholeList([dirEntry('.'), entry, fileEntry('f', 2)]);
          await c.serveRequests();
        },
        { code: codes, present: ['dst/f'] },
      ).then(() => undefined),
    );
  }
  await t.test('a symlink target over 4096 bytes is a protocol error', (t) =>
    runCase(t, { args: PUSH }, (c) => c.sendWholeList([dirEntry('.'), linkEntry('l', 'z'.repeat(5000))]), { code: EXIT.PROTOCOL, error: /linkname_len/ }).then(
      () => undefined,
    ),
  );
  await t.test('device entries without a devices grant are not created', (t) =>
    runCase(
      t,
      { args: PUSH },
      async (c) => {
        const dev = { ...fileEntry('null', 0), mode: 0o020666, rdevMajor: 1, rdevMinor: 3 };
        const blk = { ...fileEntry('sda', 0), mode: 0o060660, rdevMajor: 8, rdevMinor: 0 };
        const fifo = { ...fileEntry('fifo', 0), mode: 0o010644 };
        c.sendWholeList([dirEntry('.'), dev, blk, fifo, fileEntry('f', 2)]);
        await c.serveRequests();
      },
      { code: EXIT.OK, absent: ['dst/null', 'dst/sda', 'dst/fifo'], present: ['dst/f'] },
    ).then(() => undefined),
  );
  await t.test('device entries without -D on the command line', (t) =>
    runCase(
      t,
      { args: ['--server', '-logtpre.LsfxCIvu', '.', 'dst/'] },
      async (c) => {
        const dev = { ...fileEntry('null', 0), mode: 0o020666 };
        c.sendWholeList([dirEntry('.'), dev, fileEntry('f', 2)]);
        await c.serveRequests();
      },
      { code: EXIT.OK, absent: ['dst/null'], present: ['dst/f'] },
    ).then(() => undefined),
  );
});

t.test('--link-dest / --copy-dest whose entries are symlinks to outside files', async (t) => {
  for (const opt of ['--link-dest=ld', '--copy-dest=ld', '--compare-dest=ld']) {
    await t.test(opt, (t) =>
      runCase(
        t,
        {
          args: ['--server', '-logDtpre.LsfxCIvu', opt, '.', 'dst/'],
          prepare: (a) => {
            mkdirSync(join(a.root, 'dst', 'ld', 'sub'), { recursive: true });
            symlinkSync(join(a.outside, 'secret'), join(a.root, 'dst', 'ld', 'secret'));
            symlinkSync(join(a.outside, 'sub'), join(a.root, 'dst', 'ld', 'sub', 'in'));
          },
        },
        async (c, a) => {
          const st = lstatSync(join(a.outside, 'secret'));
          const sub = lstatSync(join(a.outside, 'sub', 'f'));
          const mtime = Math.floor(st.mtimeMs / 1000);
          c.sendWholeList([
            dirEntry('.'),
            fileEntry('secret', st.size, { mtime }),
            dirEntry('sub'),
            dirEntry('sub/in'),
            fileEntry('sub/in/f', sub.size, { mtime: Math.floor(sub.mtimeMs / 1000) }),
          ]);
          await c.serveRequests((name) => Buffer.alloc(name === 'secret' ? st.size : sub.size, 'Q'));
        },
        {
          code: EXIT.OK,
          verify: (t, a) => {
            // the symlinks in ld were not taken as a basis: both files arrived with our data
            t.same(readFileSync(join(a.root, 'dst', 'secret')), Buffer.alloc(lstatSync(join(a.outside, 'secret')).size, 'Q'));
            t.equal(lstatSync(join(a.root, 'dst', 'secret')).nlink, 1, 'not a hard link');
            t.notOk(lstatSync(join(a.root, 'dst', 'sub', 'in')).isSymbolicLink(), 'sub/in is a real directory');
          },
        },
      ).then(() => undefined),
    );
  }
});

t.test('older dialects refuse the same names (byte flags, plain ints)', async (t) => {
  const dialects: Array<[string, string[], number]> = [
    ['protocol 27', ['--server', '-logDtpr', '.', 'dst/'], 27],
    ['protocol 29', ['--server', '-logDtpr', '.', 'dst/'], 29],
    ['protocol 30 without varint flags (3.0.x)', ['--server', '-logDtpre.iLsf', '.', 'dst/'], 30],
    ['protocol 31', ['--server', '-logDtpre.LsfxCIvu', '.', 'dst/'], 31],
  ];
  for (const [label, args, version] of dialects) {
    await t.test(label, async (t) => {
      for (const name of ['../x', '/etc/passwd', 'a/../../x', '', 'a\0b']) {
        await runCase(t, { args, handshake: { version } }, (c) => c.sendWholeList([dirEntry('.'), fileEntry(name, 3)]), { code: EXIT.UNSUPPORTED, error: UNSAFE });
      }
      await runCase(t, { args, handshake: { version } }, (c) => c.sendWholeList([fileEntry('.', 3)]), { code: EXIT.PROTOCOL, error: /non-directory/ });
      await runCase(
        t,
        { args, handshake: { version } },
        async (c) => {
          c.sendWholeList([dirEntry('.'), linkEntry('d', '../../outside'), fileEntry('d/x', 5), fileEntry('ok', 2)]);
          await c.serveRequests(() => Buffer.from('PWNED'));
        },
        { code: EXIT.PARTIAL, present: ['dst/ok'] },
      );
    });
  }
});
