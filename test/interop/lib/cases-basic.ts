/**
 * The basic interop matrix, shared by push-basic and pull-basic: every protocol, hard links, delta,
 * compressors, checksums, --inplace/--partial, -s, -R, single files, missing sources, empty trees,
 * dry run, type changes, and a few runs over real ssh.
 */
import type { Test } from 'tap';
import {
  PROTOCOLS,
  sshTransport,
  newCase,
  runAndCompare,
  standardTree,
  oddNamesTree,
  file,
  dir,
  hlink,
  slink,
  noise,
  text,
  stats,
  statNum,
  pickStats,
  REF_DELTA,
  type Direction,
  type Transport,
  type Node,
} from './interop.js';

export const hardLinkTree = (): Node[] => [
  file('a.txt', 'a\n'),
  dir('emptydir'),
  file('h/one', 'linked content\n'),
  hlink('h/two', 'h/one'),
  hlink('h/sub/three', 'h/one'),
  file('h/pair-a', 'another group\n'),
  hlink('other/pair-b', 'h/pair-a'),
  file('h/single', 'not linked\n'),
];

export const inDir = (d: string, nodes: Node[]): Node[] => nodes.map((n) => ({ ...n, path: Buffer.concat([Buffer.from(`${d}/`), Buffer.from(n.path)]) }));

const oddTimesTree = (): Node[] => [
  file('future-2100', 'f\n', { mtime: { sec: 4102444800, nsec: 123456789 } }),
  file('pre-1970', 'p\n', { mtime: { sec: -86400 * 365, nsec: 987654321 } }),
  file('epoch', 'e\n', { mtime: { sec: 0 } }),
  file('y2038', 'y\n', { mtime: { sec: 2 ** 31 + 5, nsec: 1000 } }),
  file('exact-ns', 'n\n', { mtime: { sec: 1_700_000_000, nsec: 999_999_999 } }),
  dir('old-dir', { mtime: { sec: -1, nsec: 500_000_000 } }),
];

export function basicCases(t: Test, D: Direction, getTransport: () => Transport): void {
  for (const p of PROTOCOLS) {
    t.test(`-a --protocol=${p}: standard tree, odd names, odd mtimes; then an unchanged re-run`, async (t) => {
      const c = await newCase(t, getTransport(), D, [...standardTree(), ...inDir('odd', oddNamesTree()), ...inDir('times', oddTimesTree())]);
      await runAndCompare(t, c, ['-a', '-i', `--protocol=${p}`]);
      const r = await runAndCompare(t, c, ['-a', '-i', '--stats', `--protocol=${p}`]);
      const s = stats(r.remote.stdout);
      t.equal(s['Literal data'], '0 bytes', 'unchanged re-run: Literal data: 0 bytes', s);
      t.equal(statNum(s, 'Number of regular files transferred'), 0, 'unchanged re-run: no files transferred');
      t.same(pickStats(s), pickStats(stats(r.local.stdout)), 'stats match the reference');
    });
    t.test(`-aH hard links --protocol=${p}`, async (t) => {
      const c = await newCase(t, getTransport(), D, hardLinkTree());
      await runAndCompare(t, c, ['-aH', '-i', `--protocol=${p}`]);
    });
  }

  for (const p of [29, 32]) {
    t.test(`delta: 1.5 MiB file with scattered edits moves mostly as matched data --protocol=${p}`, async (t) => {
      const size = 1_572_864 + 123;
      const base = noise(size, 42);
      const c = await newCase(t, getTransport(), D, [file('big.bin', base), file('small.txt', 'x\n')]);
      await runAndCompare(t, c, ['-a', `--protocol=${p}`]);
      const edited = Buffer.from(base);
      for (let i = 0; i < 12; i++) edited.write(`EDIT${i}`, Math.floor((size / 12) * i) + 777, 'latin1');
      await c.write('big.bin', Buffer.concat([edited.subarray(0, 500_000), Buffer.from('inserted!'), edited.subarray(500_000)]));
      // the local reference must not use whole-file mode either (local copies default to -W)
      const r = await runAndCompare(t, c, ['-a', '-i', '--stats', `--protocol=${p}`], { localOnly: REF_DELTA });
      const s = stats(r.remote.stdout);
      const lit = statNum(s, 'Literal data');
      const mat = statNum(s, 'Matched data');
      t.ok(lit < size / 20, `literal ${lit} is a small part of ${size}`, s);
      t.ok(mat > size * 0.9, `matched ${mat} is most of ${size}`, s);
      const ls = stats(r.local.stdout);
      t.equal(lit, statNum(ls, 'Literal data'), 'literal data equals a local --no-W run (same block size choice)', { remote: s, local: ls });
      t.equal(mat, statNum(ls, 'Matched data'), 'matched data equals a local --no-W run');
    });
  }

  const COMPRESSORS: Array<[string, string[]]> = [
    ['zstd', ['-z', '--compress-choice=zstd']],
    ['lz4', ['-z', '--compress-choice=lz4']],
    ['zlibx', ['-z', '--compress-choice=zlibx']],
    ['zlib', ['-z', '--compress-choice=zlib']],
    ['zlib level 9', ['-z', '--compress-choice=zlib', '--compress-level=9']],
    ['-z negotiated', ['-z']],
    ['-z protocol 29 (zlib)', ['-z', '--protocol=29']],
    ['-z protocol 30 (zlib)', ['-z', '--protocol=30']],
  ];
  const M_BASE = { sec: 1_500_000_000, nsec: 1000 };
  for (const [name, args] of COMPRESSORS) {
    t.test(`-a ${name}: new files and deltas with compressed literal data`, async (t) => {
      const base = Buffer.concat([Buffer.from(text(4000)), noise(200_000, 3)]);
      const edited = Buffer.from(base);
      edited.write('changed-in-the-middle', 100_000, 'latin1');
      edited.write('changed-later', 300_000, 'latin1');
      const c = await newCase(t, getTransport(), D, [...standardTree(), file('mixed.bin', edited), file('text.txt', text(3000, 'row') + text(100, 'appended'))]);
      // the destination has the old versions: one run moves new files whole and the others as deltas
      await c.seedDst([file('mixed.bin', base, { mtime: M_BASE }), file('text.txt', text(3000, 'row'), { mtime: M_BASE })]);
      const r = await runAndCompare(t, c, ['-a', '-i', '--stats', ...args], { localOnly: REF_DELTA });
      const s = stats(r.remote.stdout);
      t.ok(statNum(s, 'Matched data') > 200_000, 'delta used matched blocks', s);
      if (!REF_DELTA.length) t.equal(s['Literal data'], stats(r.local.stdout)['Literal data'], 'Literal data matches the reference');
    });
  }

  const CHECKSUMS = ['xxh128', 'xxh3', 'xxh64', 'md5', 'md4', 'sha1'];
  for (const cc of CHECKSUMS) {
    t.test(`--checksum --cc=${cc}`, async (t) => {
      const same = { sec: 1_600_000_000, nsec: 42_000 };
      const big = noise(300_000, 9);
      const bigEdited = Buffer.from(big);
      bigEdited.write('delta', 150_000);
      const c = await newCase(t, getTransport(), D, [...standardTree(), file('same-size', 'BBBB\n', { mtime: same }), file('big.bin', bigEdited), file('untouched', 'u\n', { mtime: same })]);
      // same size and mtime, different content: only --checksum notices; big.bin moves as a delta
      await c.seedDst([file('same-size', 'AAAA\n', { mtime: same }), file('big.bin', big, { mtime: M_BASE }), file('untouched', 'u\n', { mtime: same })]);
      const r = await runAndCompare(t, c, ['-a', '-i', '--checksum', `--cc=${cc}`, '--stats'], { localOnly: REF_DELTA });
      t.match(r.remote.stdout, /^[<>]fc[^\n]* same-size$/m, 'same-size file was sent because of its checksum');
      t.notMatch(r.remote.stdout, / untouched$/m, 'the identical file was not');
    });
  }

  t.test('--inplace: delta into the existing file keeps its inode', async (t) => {
    const base = noise(400_000, 5);
    const c = await newCase(t, getTransport(), D, [file('f.bin', base), file('g.txt', text(100))]);
    await runAndCompare(t, c, ['-a']);
    const before = (await c.snapshot()).entries.get('f.bin')!.ino;
    const ed = Buffer.from(base);
    ed.write('inplace-edit', 200_000);
    await c.write('f.bin', ed);
    const r = await runAndCompare(t, c, ['-a', '-i', '--inplace', '--stats'], { localOnly: REF_DELTA });
    const after = (await c.snapshot()).entries.get('f.bin')!.ino;
    t.equal(after, before, 'same inode after --inplace update');
    t.ok(statNum(stats(r.remote.stdout), 'Matched data') > 300_000, 'delta used');
  });

  t.test('--partial and --partial-dir', async (t) => {
    const c = await newCase(t, getTransport(), D);
    await runAndCompare(t, c, ['-a', '-i', '--partial']);
    await c.write('a.txt', 'changed\n');
    await runAndCompare(t, c, ['-a', '-i', '--partial-dir=.rsync-partial']);
  });

  t.test('-s (secluded args) with spaces and odd names in the args', async (t) => {
    const c = await newCase(t, getTransport(), D, [...standardTree(), file('my dir/file one', '1\n'), file('my dir/*glob?', '2\n')]);
    await runAndCompare(t, c, ['-a', '-i', '-s'], { dst: 'dest with space/' });
    await runAndCompare(t, c, ['-a', '-i', '-s'], { srcs: ['src/my dir/file one', "src/my dir/*glob?"], dst: "dst 'two'/" });
  });

  t.test('args with spaces without -s (3.5 client escapes them)', async (t) => {
    const c = await newCase(t, getTransport(), D);
    await runAndCompare(t, c, ['-a', '-i'], { dst: 'dest with space/' });
  });

  t.test('-R relative, incl. a/./b forms', async (t) => {
    const c = await newCase(t, getTransport(), D, [...standardTree(), file('x/y/z/f.txt', 'f\n'), file('x/y/g.txt', 'g\n'), file('x/h.txt', 'h\n')]);
    await runAndCompare(t, c, ['-a', '-i', '-R'], { srcs: ['src/x/y/z/f.txt', 'src/d1'] });
    await runAndCompare(t, c, ['-a', '-i', '-R'], { srcs: ['src/./x/y', 'src/x/./h.txt'], dst: 'dst2/' });
    // the implied dirs x, x/y are not in the list: created with "now" times (itemize shows whether
    // they were wrongly treated as listed dirs)
    await runAndCompare(t, c, ['-a', '-i', '-R', '--no-implied-dirs'], { srcs: ['src/./x/y/z'], dst: 'dst3/', compare: { ignoreDirMtimes: true } });
  });

  t.test('single file to a new name, and into an existing dir', async (t) => {
    const c = await newCase(t, getTransport(), D);
    await runAndCompare(t, c, ['-a', '-i'], { srcs: ['src/a.txt'], dst: 'newname' });
    await c.seedDst([dir('.')], 'existing');
    await runAndCompare(t, c, ['-a', '-i'], { srcs: ['src/d1/b.txt'], dst: 'existing' });
  });

  t.test('src without trailing slash creates dst/src', async (t) => {
    const c = await newCase(t, getTransport(), D);
    await runAndCompare(t, c, ['-a', '-i'], { srcs: ['src'], dst: 'dst' });
  });

  t.test('missing source: exit 23 and the rest transferred', async (t) => {
    const c = await newCase(t, getTransport(), D);
    await runAndCompare(t, c, ['-a', '-i'], { srcs: ['src/a.txt', 'src/nope', 'src/d1'], expectCode: 23 });
  });

  t.test('empty files, empty dirs, only dirs', async (t) => {
    const c = await newCase(t, getTransport(), D, [file('e1'), file('d/e2'), dir('x/y/z'), dir('w', { mode: 0o711 })]);
    await runAndCompare(t, c, ['-a', '-i']);
  });

  t.test('empty source dir', async (t) => {
    const c = await newCase(t, getTransport(), D, [dir('.')]);
    await runAndCompare(t, c, ['-a', '-i']);
  });

  t.test('-n dry run writes nothing', async (t) => {
    const c = await newCase(t, getTransport(), D);
    const r = await runAndCompare(t, c, ['-a', '-i', '-n']);
    t.ok(r.remote.stdout.includes('a.txt'), 'dry run lists the files');
    await c.seedDst([file('a.txt', 'old\n')]);
    await runAndCompare(t, c, ['-a', '-i', '-n', '--delete']);
  });

  t.test('type changes: file<->dir<->symlink replaced', async (t) => {
    const c = await newCase(t, getTransport(), D, [file('was-dir', 'now a file\n'), dir('was-file'), slink('was-file2', 'a'), file('was-link', 'x\n'), file('a', 'a\n')]);
    await c.seedDst([file('was-dir/inner', 'i\n'), file('was-file', 'f\n'), file('was-file2', 'f\n'), slink('was-link', 'a'), file('a', 'a\n')]);
    await runAndCompare(t, c, ['-a', '-i', '--force']);
  });

  t.test('-aH --protocol=29 and 32: new links into existing groups, removed members', async (t) => {
    for (const p of [29, 32]) {
      const c = await newCase(t, getTransport(), D, hardLinkTree());
      await runAndCompare(t, c, ['-aH', `--protocol=${p}`]);
      await c.write('h/new', 'n\n');
      await c.link('h/one', 'h/new-link');
      await c.remove('h/single');
      await runAndCompare(t, c, ['-aH', '-i', `--protocol=${p}`]);
    }
  });

  t.test('over ssh: -a, -aH, -z, re-run', async (t) => {
    const ssh = await sshTransport(t);
    const c = await newCase(t, ssh, D, [...hardLinkTree(), ...oddTimesTree()]);
    await runAndCompare(t, c, ['-aH', '-i']);
    await c.write('a.txt', 'changed over ssh\n');
    const r = await runAndCompare(t, c, ['-aH', '-i', '-z', '--stats']);
    t.equal(statNum(stats(r.remote.stdout), 'Number of regular files transferred'), 1);
    for (const p of [27, 30]) {
      const c2 = await newCase(t, ssh, D);
      await runAndCompare(t, c2, ['-a', '-i', `--protocol=${p}`]);
    }
  });
}
