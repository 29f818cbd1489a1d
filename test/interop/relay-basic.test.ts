// rrsyncd relay between two stock `rsync --server`s (the remote shell runs them locally): a new
// tree at every pair of protocols the relay has to bridge, the CLI verb, and bad command lines.
import t from 'tap';
import { buildTree, dir, file, slink, standardTree } from './lib/interop.js';
import { relay, relayCase, sameAsLocal, STOCK } from './lib/relay.js';
import { runCli } from '../helpers/server.js';

const PAIRS: Array<[number, number]> = [
  [32, 32],
  [31, 32],
  [32, 30],
  [32, 29],
  [29, 32],
  [28, 29],
  [27, 32],
];

const rsyncAt = (p: number): string => (p === 32 ? 'rsync' : `rsync --protocol=${p}`);

for (const [ps, pd] of PAIRS) {
  t.test(`new tree, source at protocol ${ps}, destination at ${pd}`, async (t) => {
    const c = await relayCase(t);
    await buildTree(c.src, standardTree());
    const r = await relay(['-a', ...STOCK, `--src-rsync-path=${rsyncAt(ps)}`, `--dst-rsync-path=${rsyncAt(pd)}`, `x:${c.src}/`, `y:${c.dst}/`]);
    t.equal(r.code, 0, r.stderr);
    // A direct rsync between them would run at the lower protocol (no nanoseconds below 31).
    await sameAsLocal(t, c, ['-a', `--protocol=${Math.min(ps, pd)}`]);
  });
}

t.test('-av through the CLI verb: names on stdout, the summary, exit 0', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.src, [file('a.txt', 'hello\n'), dir('sub'), file('sub/b.txt', 'b'), slink('l', 'a.txt')]);
  const r = await runCli(['relay', '-av', ...STOCK, `x:${c.src}/`, `y:${c.dst}/`], { timeoutMs: 120_000 });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^a\.txt$/m);
  t.match(r.stdout, /^sub\/b\.txt$/m);
  t.match(r.stdout, /^l -> a\.txt$/m);
  t.match(r.stdout, /^total size is /m);
  await sameAsLocal(t, c, ['-a']);
});

t.test('a second run changes nothing and transfers no file', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.src, standardTree());
  const args = ['-a', ...STOCK, `x:${c.src}/`, `y:${c.dst}/`];
  t.equal((await relay(args)).code, 0);
  const r = await relay(['--stats', ...args]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /Number of regular files transferred: 0/);
  await sameAsLocal(t, c, ['-a']);
});

t.test('-n shows what would be sent and writes nothing', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.src, [file('a.txt', 'hello\n'), file('b.txt', 'b')]);
  await buildTree(c.dst, [file('b.txt', 'old')]);
  const r = await relay(['-ain', ...STOCK, `x:${c.src}/`, `y:${c.dst}/`]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^<f\+\+\+\+\+\+\+\+\+ a\.txt$/m);
  t.match(r.stdout, /^<f.s?t?.* b\.txt$/m);
  t.same((await import('node:fs')).readdirSync(c.dst), ['b.txt']);
});

t.test('refused options and local paths get one clear line and exit 1', async (t) => {
  for (const args of [['-a', '--remove-source-files', 'x:/a/', 'y:/b/'], ['-aX', 'x:/a/', 'y:/b/'], ['-a', '/local/', 'y:/b/'], ['-a', 'x::mod/', 'y:/b/'], ['-a', 'x:/a/']]) {
    const r = await relay(args);
    t.equal(r.code, 1, args.join(' '));
    t.match(r.stderr, /^rrsyncd relay: .+\n$/, r.stderr);
  }
});
