// Push receiver options, part 2: --backup, --suffix, --backup-dir (relative to the destination,
// or absolute = below the root; missing dirs made one by one with the destination dirs'
// attributes), backups of deleted files, --inplace --backup (the backup is the basis, 0x82).
import t from 'tap';
import { engineTransport, newCase, file, slink, noise, text, stats, statNum, type Transport, type Node } from './lib/interop.js';
import { compareRun as runAndCompare } from './push-opts.helpers.js';

let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const OLD = { sec: 1_500_000_000, nsec: 42_000 };
const BIG = noise(200_000, 3);
const bigOld = (): Buffer => {
  const b = Buffer.from(BIG);
  b.write('old bytes here', 50_000);
  return b;
};
const src = (): Node[] => [
  file('a.txt', 'a new\n'),
  file('same.txt', 'same\n', { mtime: OLD }),
  file('big.bin', BIG),
  file('d/x.txt', text(10, 'new')),
  file('d/e/y.txt', 'y new\n'),
  slink('link', 'a.txt'),
];
const dst = (): Node[] => [
  file('a.txt', 'a old\n', { mtime: OLD }),
  file('same.txt', 'same\n', { mtime: OLD }),
  file('big.bin', bigOld(), { mtime: OLD }),
  file('d/x.txt', 'x old\n', { mtime: OLD, mode: 0o640 }),
  file('d/e/y.txt', 'y old\n', { mtime: OLD }),
  file('d/gone.txt', 'to be deleted\n'),
  file('gone-top.txt', 'deleted too\n'),
  file('d/old~', 'an earlier backup\n'),
  slink('link', 'same.txt'),
];
// Backups land in directories after their times were set ("now" on both sides).
const compare = { ignoreDirMtimes: true };

const CASES: Array<[string, string[], string[]?]> = [
  ['--backup', ['--backup']],
  ['--backup --delete', ['--backup', '--delete']],
  ['-b --suffix=.old --delete-after', ['-b', '--suffix=.old', '--delete-after']],
  ['--backup-dir=bak --delete', ['--backup-dir=bak', '--delete']],
  ['--backup-dir=bak/deeper --suffix=.v1 --delete', ['--backup-dir=bak/deeper', '--suffix=.v1', '--delete']],
  ['-b --protocol=28 --delete', ['-b', '--protocol=28', '--delete']],
  ['-b --protocol=29 --delete', ['-b', '--protocol=29', '--delete']],
  ['--backup --inplace', ['--backup', '--inplace']],
  ['--backup-dir=bak --inplace', ['--backup-dir=bak', '--inplace']],
  ['--backup -W', ['--backup', '-W']],
  ['--backup -vv', ['--backup', '-vv']],
  ['--backup-dir=bak -vv --delete', ['--backup-dir=bak', '-vv', '--delete']],
];
for (const [name, args] of CASES) {
  t.test(name, async (t) => {
    const c = await newCase(t, tr, 'push', src());
    await c.seedDst(dst());
    // (-vv --stats would add the servers' malloc statistics to the output)
    const withStats = !args.includes('-vv');
    const r = await runAndCompare(t, c, ['-a', '-i', ...(withStats ? ['--stats'] : []), ...args], { compare });
    if (withStats) t.equal(statNum(stats(r.remote.stdout), 'Matched data'), statNum(stats(r.local.stdout), 'Matched data'), 'matched data as the reference');
  });
}

t.test('--backup-dir=/abs (below the root) with nested dirs, twice (an old backup is replaced)', async (t) => {
  const c = await newCase(t, tr, 'push', src());
  await c.seedDst(dst());
  const o = { remoteOnly: ['--backup-dir=/bak'], localOnly: [`--backup-dir=${c.localDst('bak')}`], compare };
  await runAndCompare(t, c, ['-a', '-i', '--delete'], o);
  await c.compare(t, compare, 'bak');
  // change the sources again: the second run's backups replace the first run's
  await c.write('a.txt', 'a newer\n');
  await c.write('d/e/y.txt', 'y newer\n');
  await runAndCompare(t, c, ['-a', '-i', '--delete'], o);
  await c.compare(t, compare, 'bak');
});

t.test('--backup-dir copies the destination dirs\' modes into the backup tree', async (t) => {
  const c = await newCase(t, tr, 'push', [file('p/q/r.txt', 'new\n')]);
  await c.seedDst([file('p/q/r.txt', 'old\n', { mtime: OLD }), { path: 'p', type: 'dir', mode: 0o750 }, { path: 'p/q', type: 'dir', mode: 0o700 }]);
  await runAndCompare(t, c, ['-r', '-t', '-i', '--backup-dir=bak'], { compare });
  await c.compare(t, compare, 'dst/bak');
});

t.test('--backup replacing a symlink and a file with a directory (--force)', async (t) => {
  const c = await newCase(t, tr, 'push', [file('was-link', 'now a file\n'), file('was-file/inside', 'i\n')]);
  await c.seedDst([slink('was-link', 'somewhere'), file('was-file', 'plain\n')]);
  await runAndCompare(t, c, ['-a', '-i', '-b', '--force'], { compare });
});

// --info=BACKUP / SKIP (the client forwards them): "backed up X to Y", "X is newer", "X is over
// max-size"; an explicit level overrides what -vv implies.
const NEWER = { sec: 2_000_000_000, nsec: 0 };
for (const args of [
  ['--info=BACKUP,SKIP', '-u'],
  ['--info=BACKUP,SKIP', '-u', '--protocol=29'],
  ['--info=skip', '--max-size=100k', '--protocol=30'],
  ['-vv', '--info=BACKUP0,SKIP0', '-u'],
  ['-v', '--info=backup', '--backup-dir=bak'],
]) {
  t.test(`-b ${args.join(' ')}`, async (t) => {
    const c = await newCase(t, tr, 'push', src());
    await c.seedDst([...dst().filter((n) => n.path !== 'd/x.txt'), file('d/x.txt', 'x newer\n', { mtime: NEWER })]);
    await runAndCompare(t, c, ['-a', '-b', ...args], { compare });
  });
}

// --safe-links: a destination symlink pointing out of the transfer is not backed up when it is
// replaced or deleted ("not backing up unsafe symlink" at --info=SYMSAFE, which -v implies).
for (const args of [['-v'], ['--protocol=29'], ['-v', '--backup-dir=bak', '--delete', '--protocol=31'], ['--info=symsafe0', '-v', '--delete']]) {
  t.test(`--safe-links -b ${args.join(' ')}`, async (t) => {
    const c = await newCase(t, tr, 'push', [file('escape', 'n\n'), file('inside', 'i\n'), file('sub/up', 'u\n')]);
    await c.seedDst([
      slink('escape', '../../sensitive'),
      slink('inside', 'sub/up'),
      slink('sub/up', '../escape'),
      slink('gone-unsafe', '/etc/passwd'),
      slink('gone-safe', 'inside'),
    ]);
    await runAndCompare(t, c, ['-a', '-i', '--safe-links', '-b', ...args], { compare });
  });
}
