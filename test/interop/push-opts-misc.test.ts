// Push receiver options, part 5: -m, -E, -U, -S, --preallocate, --fsync, -O/-J, --fuzzy/-yy, --force,
// -x, the quick-check variants (--existing, --ignore-existing, -u, --size-only, -I,
// --modify-window, --max/--min-size, with their -vv "skip" messages), --mkpath,
// --remove-source-files. Every case is compared with a stock rsync server.
import t from 'tap';
import { lstat, mkdir, utimes } from 'node:fs/promises';
import { engineTransport, newCase, file, dir, slink, noise, text, stats, statNum, type Transport, type Node, type Case } from './lib/interop.js';
import { run } from '../helpers/server.js';
import { compareRun, exists } from './push-opts.helpers.js';

let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const T = { sec: 1_600_000_000, nsec: 250_000 };
const OLD = { sec: 1_500_000_000, nsec: 0 };
const NEWER = { sec: 1_700_000_000, nsec: 0 };

// ---- -m / --prune-empty-dirs ----

const pruneTree = (): Node[] => [
  dir('empty'),
  dir('empty-chain/a/b'),
  file('only-o/x.o', 'object\n'),
  file('keep/k.c', 'int k;\n'),
  file('deep/er/f.c', 'f\n'),
  file('top.c', 't\n'),
];
for (const args of [['-m'], ['-m', '--delete'], ['-m', '--include=*/', '--include=*.c', '--exclude=*'], ['-m', '--exclude=*.o'], ['-m', '--protocol=29']]) {
  t.test(`-m ${args.slice(1).join(' ')}`, async (t) => {
    const c = await newCase(t, tr, 'push', pruneTree());
    await c.seedDst([dir('empty'), file('stale/x', 'x\n')]);
    await compareRun(t, c, ['-a', '-i', ...args]);
    if (args.length === 1) t.notOk(await exists(c.remoteDst('dst/empty-chain')), 'a chain of empty dirs is not created');
  });
}

// ---- -E, --chmod (client side), -p off ----

const execTree = (): Node[] => [
  file('run.sh', '#!/bin/sh\n', { mode: 0o755, mtime: T }),
  file('plain.txt', 'data\n', { mode: 0o644, mtime: T }),
  file('new.sh', 'new\n', { mode: 0o750 }),
  file('changed.sh', 'changed now\n', { mode: 0o711 }),
];
const execDst = (): Node[] => [
  file('run.sh', '#!/bin/sh\n', { mode: 0o644, mtime: T }),
  file('plain.txt', 'data\n', { mode: 0o755, mtime: T }),
  file('changed.sh', 'old\n', { mode: 0o600, mtime: OLD }),
];
for (const args of [['-rltE'], ['-rltE', '-v'], ['-rltE', '--protocol=29'], ['-rlt'], ['-rltE', '--chmod=g+w'], ['-rltE', '-vv']]) {
  t.test(`${args.join(' ')} (executability without -p)`, async (t) => {
    const c = await newCase(t, tr, 'push', execTree());
    await c.seedDst(execDst());
    await compareRun(t, c, [...args, '-i']);
  });
}

// ---- -S, --preallocate, --fsync ----

const sparse = Buffer.concat([Buffer.from('head'), Buffer.alloc(400_000), Buffer.from('middle'), Buffer.alloc(300_000)]);
for (const args of [['-S'], ['-S', '--inplace'], ['--preallocate'], ['--fsync'], ['-S', '--preallocate']]) {
  t.test(`${args.join(' ')}`, async (t) => {
    const c = await newCase(t, tr, 'push', [file('sparse.bin', sparse), file('small', 'x\n'), file('rand.bin', noise(50_000, 1))]);
    await compareRun(t, c, ['-a', '-i', ...args]);
    if (args.includes('-S') && !args.includes('--inplace')) {
      const ours = await lstat(c.remoteDst('dst/sparse.bin'));
      const ref = await lstat(c.localDst('dst/sparse.bin'));
      t.ok(ours.blocks * 512 < 100_000, `holes written: ${ours.blocks} blocks for ${ours.size} bytes (reference: ${ref.blocks})`);
    }
  });
}

// -S in place over a fully allocated file: the zero runs are punched out (rsync's do_punch_hole()).
// (Not with --append: stock rsync 3.5.0 fails there with "write failed", exit 11.)
for (const args of [['-S', '--inplace'], ['-S', '--inplace', '-W'], ['-S', '--inplace', '--protocol=29']]) {
  t.test(`${args.join(' ')} over allocated data`, async (t) => {
    const c = await newCase(t, tr, 'push', [file('sparse.bin', sparse), file('grow.bin', Buffer.concat([sparse, sparse]))]);
    const old = noise(sparse.length, 2);
    await c.seedDst([file('sparse.bin', old), file('grow.bin', old)]);
    await compareRun(t, c, ['-a', '-i', ...args]);
    for (const f of ['sparse.bin', 'grow.bin']) {
      const ours = await lstat(c.remoteDst(`dst/${f}`));
      const ref = await lstat(c.localDst(`dst/${f}`));
      t.ok(ours.blocks * 512 < 200_000, `${f}: ${ours.blocks} blocks for ${ours.size} bytes (reference: ${ref.blocks})`);
    }
  });
}

// ---- -U / --atimes ----

// An atime later than the file's mtime and ctime (an hour ahead): relatime leaves it alone when a
// run reads the file, so the reference run sees the same atime as ours.
for (const args of [['-rtU'], ['-rtU', '--protocol=30'], ['-rtUv', '--protocol=31'], ['-rtUU']]) {
  t.test(`${args.join(' ')}: the sender's atimes, itemized as "u" when only they differ`, async (t) => {
    const c = await newCase(t, tr, 'push', [file('a', 'a\n', { mtime: T }), file('sub/b', 'bb\n', { mtime: T }), slink('l', 'a')]);
    const atime = Math.floor(Date.now() / 1000) + 3600;
    for (const f of ['a', 'sub/b']) await utimes(`${c.src}/${f}`, atime, T.sec);
    const atimes = async (rel: string): Promise<number[]> =>
      Promise.all(['a', 'sub/b'].map(async (f) => Math.floor((await lstat(`${rel}/${f}`)).atimeMs / 1000)));
    await compareRun(t, c, [...args, '-i']);
    t.same(await atimes(c.remoteDst('dst')), [atime, atime], 'atimes from the sender');
    t.same(await atimes(c.localDst('dst')), [atime, atime], 'the reference agrees');
    for (const d of [c.remoteDst('dst'), c.localDst('dst')]) await utimes(`${d}/a`, OLD.sec, T.sec);
    await compareRun(t, c, [...args, '-i']);
    t.same(await atimes(c.remoteDst('dst')), [atime, atime], 'an atime that differs alone is set again');
  });
}

// ---- -O / -J ----

t.test('-O -J: directory and symlink times are left alone', async (t) => {
  const c = await newCase(t, tr, 'push', [file('d/f', 'f\n'), slink('d/l', 'f'), dir('e')]);
  await c.seedDst([dir('e', { mtime: OLD })]);
  await compareRun(t, c, ['-a', '-i', '-O', '-J'], { compare: { ignoreDirMtimes: true, ignoreSymlinkMtimes: true } });
  t.equal(Math.floor((await lstat(c.remoteDst('dst/e'))).mtimeMs / 1000), OLD.sec, 'existing dir time untouched');
});

// ---- --fuzzy ----

const REPORT = noise(120_000, 4);
const fuzzySrc = (): Node[] => [
  file('d/report-v2.txt', REPORT, { mtime: T }),
  file('d/renamed.dat', noise(20_000, 8), { mtime: T }),
  file('d/unrelated.bin', noise(30_000, 2), { mtime: T }),
];
const fuzzyDst = (): Node[] => [
  file('d/report-v1.txt', Buffer.concat([REPORT.subarray(0, 100_000), noise(2000, 6)]), { mtime: OLD }),
  file('d/old-name.dat', noise(20_000, 8), { mtime: T }),
  file('d/zzz.bin', noise(10_000, 3), { mtime: OLD }),
];
for (const args of [['-y'], ['-yy'], ['-y', '--protocol=29'], ['-y', '--delete-after'], ['-y', '-vv']]) {
  t.test(`--fuzzy ${args.join(' ')}`, async (t) => {
    const c = await newCase(t, tr, 'push', fuzzySrc());
    await c.seedDst(fuzzyDst());
    const withStats = !args.includes('-vv');
    const r = await compareRun(t, c, ['-a', '-i', ...(withStats ? ['--stats'] : []), ...args]);
    if (withStats) {
      const s = stats(r.remote.stdout);
      t.ok(statNum(s, 'Matched data') > 100_000, 'fuzzy bases used', s);
      t.equal(statNum(s, 'Matched data'), statNum(stats(r.local.stdout), 'Matched data'), 'matched data as the reference');
    }
  });
}

t.test('-yy with --compare-dest: a fuzzy basis in the alt-dest dir', async (t) => {
  const c = await newCase(t, tr, 'push', fuzzySrc());
  await c.seedDst(fuzzyDst(), 'prev');
  const r = await compareRun(t, c, ['-a', '-i', '--stats', '-yy'], { remoteOnly: ['--compare-dest=/prev'], localOnly: [`--compare-dest=${c.localDst('prev')}`] });
  t.equal(statNum(stats(r.remote.stdout), 'Matched data'), statNum(stats(r.local.stdout), 'Matched data'), 'matched data as the reference');
});

// ---- --force and type changes ----

const forceSrc = (): Node[] => [file('was-dir', 'now a file\n'), file('was-empty-dir', 'file\n'), slink('was-dir-link', 'x'), file('was-file/inner', 'i\n')];
const forceDst = (): Node[] => [file('was-dir/sub/deep', 'd\n'), dir('was-empty-dir'), file('was-dir-link/y', 'y\n'), file('was-file', 'plain\n')];
for (const args of [[], ['--force'], ['--delete'], ['--force', '--protocol=28'], ['--force', '-v']]) {
  t.test(`a non-empty dir in the way ${args.join(' ') || '(no --force)'}`, async (t) => {
    const c = await newCase(t, tr, 'push', forceSrc());
    await c.seedDst(forceDst());
    await compareRun(t, c, ['-a', '-i', ...args]);
  });
}

// ---- quick-check variants and their -vv messages ----

const qSrc = (): Node[] => [
  file('same.txt', 'same\n', { mtime: T }),
  file('changed.txt', 'changed\n', { mtime: T }),
  file('dst-newer.txt', 'src\n', { mtime: OLD }),
  file('same-size.txt', 'AAAA\n', { mtime: T }),
  file('close-time.txt', 'close\n', { mtime: { sec: T.sec + 1, nsec: 0 } }),
  file('new.txt', 'new\n'),
  file('newdir/n.txt', 'n\n'),
  file('big.bin', noise(5000, 1)),
];
const qDst = (): Node[] => [
  file('same.txt', 'same\n', { mtime: T }),
  file('changed.txt', 'old\n', { mtime: OLD }),
  file('dst-newer.txt', 'dst, newer\n', { mtime: NEWER }),
  file('same-size.txt', 'BBBB\n', { mtime: T }),
  file('close-time.txt', 'close\n', { mtime: T }),
];
const Q: string[][] = [
  ['--existing'],
  ['--ignore-existing'],
  ['--update'],
  ['--size-only'],
  ['-I'],
  ['--modify-window=1'],
  ['--modify-window=-1'],
  ['--max-size=100'],
  ['--min-size=6'],
  ['--existing', '-vv'],
  ['--ignore-existing', '-vv'],
  ['--update', '--max-size=1K', '-vv'],
  ['--min-size=6', '-vv', '--protocol=28'],
];
for (const args of Q) {
  t.test(`${args.join(' ')}`, async (t) => {
    const c = await newCase(t, tr, 'push', qSrc());
    await c.seedDst(qDst());
    await compareRun(t, c, ['-a', '-i', ...args]);
  });
}

// ---- --mkpath, --remove-source-files ----

t.test('--mkpath creates the missing destination path', async (t) => {
  const c = await newCase(t, tr, 'push', qSrc());
  await compareRun(t, c, ['-a', '-i', '--mkpath'], { dst: 'a/b/c/' });
  await compareRun(t, c, ['-a', '-i', '--mkpath'], { dst: 'a/b/c2' });
  await compareRun(t, c, ['-a', '-i', '--mkpath'], { dst: 'a/q/r/one.txt', srcs: ['src/same.txt'] });
  await compareRun(t, c, ['-a', '-v', '--mkpath', '-n'], { dst: 'n/o/' });
  const r = await c.run(['-a', '-i'], { dst: 'x/y/z/' });
  t.equal(r.remote.code, r.local.code, 'without --mkpath: the same failure as the reference');
});

for (const args of [['--remove-source-files'], ['--remove-source-files', '--delay-updates'], ['--remove-source-files', '--protocol=29'], ['--remove-source-files', '--existing']]) {
  t.test(`${args.join(' ')}: the client deletes what was transferred (and what was up to date)`, async (t) => {
    const c = await newCase(t, tr, 'push', qSrc());
    await c.seedDst(qDst());
    await compareRun(t, c, ['-a', '-i', ...args]);
    await c.compareSources(t, { ignoreDirMtimes: true });
    if (!args.includes('--existing')) t.notOk(await exists(`${c.src}/new.txt`), 'sent file removed from the source');
    t.notOk(await exists(`${c.src}/same.txt`), 'up-to-date file removed from the source');
    t.notOk(await exists(`${c.src}/changed.txt`), 'updated file removed from the source');
  });
}

// ---- -x: deletion does not cross mount points ----

t.test('-x --delete: a mount point in the destination is not deleted', async (t) => {
  const c = await newCase(t, tr, 'push', [file('a.txt', 'a\n')]);
  await c.seedDst([file('stale.txt', 's\n'), dir('mnt')]);
  const mounted: string[] = [];
  for (const d of [c.remoteDst('dst/mnt'), c.localDst('dst/mnt')]) {
    const m = await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'rrsyncd-test', d]);
    if (m.code !== 0) break;
    mounted.push(d);
  }
  t.teardown(async () => {
    for (const d of mounted) await run('umount', [d]);
  });
  if (mounted.length < 2) {
    t.comment('skipped: cannot mount a tmpfs here (needs root)');
    return;
  }
  for (const d of mounted) {
    await mkdir(`${d}/inner`);
    await run('sh', ['-c', `echo keep > '${d}/inner/file'`]);
  }
  await compareRun(t, c, ['-a', '-i', '-x', '--delete'], { compare: { ignoreDirMtimes: true, exclude: (p) => p.startsWith('mnt') } });
  t.ok(await exists(c.remoteDst('dst/mnt/inner/file')), 'nothing deleted on the other file system');
  t.notOk(await exists(c.remoteDst('dst/stale.txt')), 'deletion happened on this file system');
});

void text;
void ({} as Case);
