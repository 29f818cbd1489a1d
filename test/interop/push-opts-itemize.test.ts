// Push receiver output parity: what the client prints with -i, -ii, -v, -vv (and -n) against
// rrsyncd equals what it prints against a stock rsync server, for every protocol: new/changed
// files, directories (cd+++++++++, .d..t......), symlinks, hard links, devices-less specials,
// deletions (*deleting / "deleting x" before protocol 29), "created directory", "is uptodate",
// and the MSG_INFO name lines a protocol < 29 server sends. Lines are compared sorted (the
// reference's message/data interleaving is an artifact of its output buffering).
import t from 'tap';
import { engineTransport, newCase, file, dir, slink, hlink, noise, type Transport, type Node } from './lib/interop.js';
import { compareRun } from './push-opts.helpers.js';

let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const T = { sec: 1_600_000_000, nsec: 123_456_789 };
const OLD = { sec: 1_500_000_000, nsec: 0 };
const src = (): Node[] => [
  file('same.txt', 'same\n', { mtime: T }),
  file('changed.txt', 'changed content\n', { mtime: T }),
  file('mode.txt', 'mode\n', { mode: 0o600, mtime: T }),
  file('time.txt', 'time\n', { mtime: T }),
  file('new.txt', 'new\n'),
  file('big.bin', noise(80_000, 3), { mtime: T }),
  dir('newdir'),
  file('newdir/inner.txt', 'inner\n'),
  dir('olddir', { mtime: T }),
  file('olddir/kept.txt', 'kept\n', { mtime: T }),
  slink('link-same', 'same.txt', { mtime: T }),
  slink('link-changed', 'new.txt'),
  slink('link-new', 'changed.txt'),
  file('h/one', 'hard\n', { mtime: T }),
  hlink('h/two', 'h/one'),
  file('type-change', 'was a dir\n'),
  dir('empty'),
];
const dst = (): Node[] => [
  file('same.txt', 'same\n', { mtime: T }),
  file('changed.txt', 'old\n', { mtime: OLD }),
  file('mode.txt', 'mode\n', { mode: 0o644, mtime: T }),
  file('time.txt', 'time\n', { mtime: OLD }),
  file('big.bin', noise(80_000, 4), { mtime: OLD }),
  dir('olddir', { mtime: OLD }),
  file('olddir/kept.txt', 'kept\n', { mtime: T }),
  file('olddir/extra.txt', 'extra\n'),
  slink('link-same', 'same.txt', { mtime: T }),
  slink('link-changed', 'same.txt'),
  file('gone.txt', 'gone\n'),
  file('gonedir/x', 'x\n'),
  dir('type-change'),
];

const VARIANTS = [['-i'], ['-ii'], ['-v'], ['-vv'], ['-iv'], ['-i', '--delete'], ['-v', '--delete'], ['-vv', '--delete'], ['-ii', '--delete', '-H'], ['-i', '-n', '--delete']];
for (const p of [27, 28, 29, 30, 31, 32]) {
  for (const v of VARIANTS) {
    t.test(`${v.join(' ')} --protocol=${p} against an existing destination`, async (t) => {
      const c = await newCase(t, tr, 'push', src());
      await c.seedDst(dst());
      await compareRun(t, c, ['-rlpt', ...v, `--protocol=${p}`]);
    });
  }
  for (const v of [['-i'], ['-v'], ['-vv', '-H']]) {
    t.test(`${v.join(' ')} --protocol=${p} into a new destination ("created directory")`, async (t) => {
      const c = await newCase(t, tr, 'push', src());
      await compareRun(t, c, ['-rlpt', ...v, `--protocol=${p}`]);
    });
  }
}

t.test('-i with --out-format=%n%L and --log-format-less -v', async (t) => {
  const c = await newCase(t, tr, 'push', src());
  await c.seedDst(dst());
  await compareRun(t, c, ['-a', '--out-format=%i %n%L', '--delete']);
  await compareRun(t, c, ['-a', '--out-format=%n', '--delete', '--protocol=28']);
});
