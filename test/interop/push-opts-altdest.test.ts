// Push receiver options, part 3: --compare-dest / --copy-dest / --link-dest (absolute = below the
// root, relative = below the destination; up to 20 dirs): unchanged files skipped / copied /
// hard-linked, changed files sent as deltas against the alt-dest file (fnamecmp_type = index).
import t from 'tap';
import type { Test as Tap } from 'tap';
import { lstat } from 'node:fs/promises';
import { engineTransport, newCase, file, dir, slink, noise, text, stats, statNum, type Transport, type Node, type Case } from './lib/interop.js';
import { compareRun } from './push-opts.helpers.js';

let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const T1 = { sec: 1_600_000_000, nsec: 500 };
const T0 = { sec: 1_400_000_000, nsec: 0 };
const BIG = noise(300_000, 17);
const bigV2 = (): Buffer => {
  const b = Buffer.from(BIG);
  b.write('version two', 150_000);
  return b;
};
const src = (): Node[] => [
  file('same.txt', 'unchanged\n', { mtime: T1 }),
  file('perm.txt', 'same data, other mode\n', { mtime: T1, mode: 0o600 }),
  file('big.bin', bigV2(), { mtime: T1 }),
  file('new.txt', 'only in the source\n'),
  file('d/deep.txt', text(40, 'deep'), { mtime: T1 }),
  slink('link', 'same.txt', { mtime: T1 }),
  dir('emptydir', { mtime: T1 }),
  dir('d', { mtime: T1 }),
];
// The previous snapshot: what a backup run links against.
const prev = (): Node[] => [
  file('same.txt', 'unchanged\n', { mtime: T1 }),
  file('perm.txt', 'same data, other mode\n', { mtime: T1, mode: 0o644 }),
  file('big.bin', BIG, { mtime: T0 }),
  file('d/deep.txt', text(40, 'deep'), { mtime: T1 }),
  slink('link', 'same.txt', { mtime: T1 }),
  dir('emptydir', { mtime: T1 }),
  dir('d', { mtime: T1 }),
];

async function setup(t: Tap, seedDst = false): Promise<Case> {
  const c = await newCase(t, tr, 'push', src());
  await c.seedDst(prev(), 'prev');
  if (seedDst) await c.seedDst([file('same.txt', 'stale\n', { mtime: T0 }), file('big.bin', BIG, { mtime: T0 })]);
  return c;
}

const abs = (c: Case, opt: string) => ({ remoteOnly: [`${opt}=/prev`], localOnly: [`${opt}=${c.localDst('prev')}`] });

for (const opt of ['--compare-dest', '--copy-dest', '--link-dest']) {
  for (const v of [['-i'], ['-ii'], ['-v'], ['-vv'], ['-i', '--protocol=28'], ['-i', '--protocol=30'], ['-iH']]) {
    t.test(`${opt} ${v.join(' ')} into an empty destination`, async (t) => {
      const c = await setup(t);
      await compareRun(t, c, ['-a', ...v], abs(c, opt));
      await c.compare(t, {}, 'prev');
    });
  }
  t.test(`${opt} into an existing destination (exact matches replace stale files)`, async (t) => {
    const c = await setup(t, true);
    await compareRun(t, c, ['-a', '-i'], abs(c, opt));
  });
  t.test(`${opt}: a changed file is sent as a delta against the alt-dest file`, async (t) => {
    const c = await setup(t);
    const r = await compareRun(t, c, ['-a', '-i', '--stats'], abs(c, opt));
    const s = stats(r.remote.stdout);
    t.ok(statNum(s, 'Matched data') > 250_000, 'big.bin matched against prev/big.bin', s);
    t.equal(statNum(s, 'Matched data'), statNum(stats(r.local.stdout), 'Matched data'), 'matched data as the reference');
  });
}

t.test('--link-dest: unchanged files are hard links into the previous snapshot', async (t) => {
  const c = await setup(t);
  await compareRun(t, c, ['-a', '-i'], abs(c, '--link-dest'));
  const a = await lstat(c.remoteDst('dst/same.txt'));
  const b = await lstat(c.remoteDst('prev/same.txt'));
  t.equal(a.ino, b.ino, 'same.txt linked');
  t.not((await lstat(c.remoteDst('dst/perm.txt'))).ino, (await lstat(c.remoteDst('prev/perm.txt'))).ino, 'perm.txt (other mode) copied, not linked');
});

t.test('--link-dest relative to the destination, several dirs (first exact match wins)', async (t) => {
  const c = await newCase(t, tr, 'push', src());
  await c.seedDst([...prev().map((n) => ({ ...n, path: `snap1/${n.path}` })), file('snap2/big.bin', bigV2(), { mtime: T1 })]);
  await compareRun(t, c, ['-a', '-i', '--stats', '--link-dest=snap1', '--link-dest=snap2'], { compare: { ignoreDirMtimes: true } });
  const a = await lstat(c.remoteDst('dst/big.bin'));
  const b = await lstat(c.remoteDst('dst/snap2/big.bin'));
  t.equal(a.ino, b.ino, 'big.bin linked from the second dir');
});

t.test('--compare-dest with 3 dirs, one missing (warning as the reference)', async (t) => {
  const c = await setup(t);
  await compareRun(t, c, ['-a', '-i'], {
    remoteOnly: ['--compare-dest=/nope', '--compare-dest=/prev', '--compare-dest=/prev/d'],
    localOnly: [`--compare-dest=${c.localDst('nope')}`, `--compare-dest=${c.localDst('prev')}`, `--compare-dest=${c.localDst('prev/d')}`],
    noOutput: true,
  });
});

t.test('mixing --link-dest and --copy-dest is refused', async (t) => {
  const c = await setup(t);
  const r = await c.runRemote(['-a', '--link-dest=/prev', '--copy-dest=/prev']);
  t.not(r.code, 0, 'refused (the client refuses it already)');
});

t.test('--link-dest outside the root is refused', async (t) => {
  const c = await setup(t);
  const r = await c.runRemote(['-a', '--link-dest=../../x']);
  t.not(r.code, 0, 'refused');
  t.match(r.stderr, /outside the allowed directory/);
});
