// Push receiver options, part 4: --append / --append-verify on every protocol family: the sum
// head describes the existing length (no sums), the sender sends only the tail; with
// --append-verify (and plain --append before protocol 30) the whole-file checksum covers the
// existing prefix, so a prefix that differs is caught and the file is sent again in full.
import t from 'tap';
import { engineTransport, newCase, file, noise, text, stats, statNum, type Transport, type Node } from './lib/interop.js';
import { compareRun } from './push-opts.helpers.js';

let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const T = { sec: 1_600_000_000, nsec: 0 };
const OLD = { sec: 1_500_000_000, nsec: 0 };
const GROW = noise(400_000, 9);
const LOG = text(3000, 'log');
const src = (): Node[] => [
  file('grow.bin', GROW, { mtime: T }),
  file('app.log', LOG, { mtime: T }),
  file('shrunk.txt', 'short now\n', { mtime: T }),
  file('equal.txt', 'same length!\n', { mtime: T }),
  file('prefix-differs.bin', GROW.subarray(0, 100_000), { mtime: T }),
  file('new.txt', 'new file\n', { mtime: T }),
];
const dst = (): Node[] => {
  const bad = Buffer.from(GROW.subarray(0, 60_000));
  bad.write('not the same prefix', 10);
  return [
    file('grow.bin', GROW.subarray(0, 250_000), { mtime: OLD }),
    file('app.log', LOG.slice(0, 100_000), { mtime: OLD }),
    file('shrunk.txt', 'this file was much longer before\n', { mtime: OLD }),
    file('equal.txt', 'SAME LENGTH!\n', { mtime: OLD }),
    file('prefix-differs.bin', bad, { mtime: OLD }),
  ];
};

for (const mode of ['--append', '--append-verify']) {
  for (const p of [27, 29, 30, 32]) {
    t.test(`${mode} --protocol=${p}`, async (t) => {
      const c = await newCase(t, tr, 'push', src());
      await c.seedDst(dst());
      const r = await compareRun(t, c, ['-a', '-i', '--stats', mode, `--protocol=${p}`]);
      const s = stats(r.remote.stdout);
      const ls = stats(r.local.stdout);
      t.equal(statNum(s, 'Literal data'), statNum(ls, 'Literal data'), 'literal data as the reference', { s, ls });
      t.equal(statNum(s, 'Matched data'), statNum(ls, 'Matched data'), 'matched data as the reference');
      t.ok(statNum(s, 'Literal data') < 400_000, 'only tails (and the redone file) were sent');
    });
  }
}

t.test('--append -z (compressed tail)', async (t) => {
  const c = await newCase(t, tr, 'push', src());
  await c.seedDst(dst());
  await compareRun(t, c, ['-a', '-i', '-z', '--append']);
});

t.test('--append with -W is refused as by the reference (client-side)', async (t) => {
  const c = await newCase(t, tr, 'push', src());
  const r = await c.run(['-a', '--append', '-W']);
  t.equal(r.remote.code, r.local.code, 'same exit code');
});
