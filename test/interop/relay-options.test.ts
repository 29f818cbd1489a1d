// Relay options between two stock servers: --delete (and variants, with filters), -H, -z, -c,
// filter rules, --inplace, --partial, -P; each destination compared with a direct local rsync.
import t from 'tap';
import { buildTree, dir, file, hlink, slink } from './lib/interop.js';
import { relay, relayCase, sameAsLocal, STOCK, type RelayCase } from './lib/relay.js';
import { run } from '../helpers/server.js';

async function seedBoth(c: RelayCase, nodes: Parameters<typeof buildTree>[1]): Promise<void> {
  await buildTree(c.dst, nodes);
  const cp = await run('cp', ['-a', c.dst, c.ref]);
  if (cp.code !== 0) throw new Error(cp.stderr);
}

const SRC = [file('keep.txt', 'keep'), dir('d'), file('d/new.txt', 'new'), file('x.o', 'object'), slink('ln', 'keep.txt')];
const OLD = [file('keep.txt', 'keep'), file('gone.txt', 'bye'), dir('olddir'), file('olddir/f', 'f'), file('old.o', 'o'), file('d/stale', 's')];

for (const variant of ['--delete', '--delete-before', '--delete-during', '--delete-after', '--delete-delay']) {
  for (const protocol of [32, 29]) {
    t.test(`${variant} at protocol ${protocol}, excluded files protected`, async (t) => {
      const c = await relayCase(t);
      await buildTree(c.src, SRC);
      await seedBoth(c, OLD);
      const args = ['-av', variant, '--exclude=*.o'];
      const r = await relay([...args, ...STOCK, `--dst-rsync-path=rsync --protocol=${protocol}`, `x:${c.src}/`, `y:${c.dst}/`]);
      t.equal(r.code, 0, r.stderr);
      t.match(r.stdout, /^deleting gone\.txt$/m);
      t.match(r.stdout, /^deleting olddir\/$/m);
      await sameAsLocal(t, c, [...args, `--protocol=${protocol}`]);
    });
  }
}

t.test('--delete-excluded removes excluded files too; -i shows *deleting', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.src, SRC);
  await seedBoth(c, OLD);
  const args = ['-a', '--delete-excluded', '--exclude=*.o', '-i'];
  const r = await relay([...args, '--stats', ...STOCK, `x:${c.src}/`, `y:${c.dst}/`]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^\*deleting +old\.o$/m);
  t.match(r.stdout, /^Number of deleted files: 5 \(reg: 4, dir: 1\)$/m);
  await sameAsLocal(t, c, args);
});

t.test('--filter rules: protect (P) on the destination, hide (H) on the source', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.src, [...SRC, file('secret.key', 'k')]);
  await seedBoth(c, OLD);
  const args = ['-a', '--delete', '--filter=P gone.txt', '--filter=H secret.key', '-f', '- *.o'];
  const r = await relay([...args, ...STOCK, `x:${c.src}/`, `y:${c.dst}/`]);
  t.equal(r.code, 0, r.stderr);
  await sameAsLocal(t, c, args);
});

for (const protocol of [32, 29]) {
  t.test(`-H keeps hard links at protocol ${protocol}`, async (t) => {
    const c = await relayCase(t);
    await buildTree(c.src, [file('a', 'linked data'), hlink('b', 'a'), dir('d'), hlink('d/c', 'a'), file('solo', 'x'), file('p', 'pair'), hlink('q', 'p')]);
    const r = await relay(['-aH', ...STOCK, `--src-rsync-path=rsync --protocol=${protocol}`, `x:${c.src}/`, `y:${c.dst}/`]);
    t.equal(r.code, 0, r.stderr);
    await sameAsLocal(t, c, ['-aH', `--protocol=${protocol}`]);
  });
}

t.test('-z new tree and -c with same-size same-time changed content', async (t) => {
  const c = await relayCase(t);
  const m = { sec: 1_500_000_000 };
  await buildTree(c.src, [file('text.txt', 'lorem ipsum '.repeat(5000)), file('same.txt', 'AAAA', { mtime: m })]);
  await seedBoth(c, [file('same.txt', 'BBBB', { mtime: m })]);
  const r = await relay(['-azc', ...STOCK, `x:${c.src}/`, `y:${c.dst}/`]);
  t.equal(r.code, 0, r.stderr);
  await sameAsLocal(t, c, ['-azc']);
  t.equal((await import('node:fs')).readFileSync(`${c.dst}/same.txt`, 'utf8'), 'AAAA', '-c found the changed content');
});

for (const opt of ['--inplace', '--partial']) {
  t.test(`${opt} update of an existing file`, async (t) => {
    const c = await relayCase(t);
    await buildTree(c.src, [file('f.bin', Buffer.alloc(200_000, 7)), file('g.txt', 'g')]);
    await seedBoth(c, [file('f.bin', Buffer.alloc(150_000, 7), { mtime: { sec: 1_000_000_000 } })]);
    const r = await relay(['-a', opt, ...STOCK, `x:${c.src}/`, `y:${c.dst}/`]);
    t.equal(r.code, 0, r.stderr);
    await sameAsLocal(t, c, ['-a', opt]);
  });
}

t.test('-P prints a progress line per file', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.src, [file('one.bin', Buffer.alloc(100_000, 1)), file('two.bin', Buffer.alloc(50_000, 2))]);
  const r = await relay(['-aP', ...STOCK, `x:${c.src}/`, `y:${c.dst}/`]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /100,000 100% .*\(xfr#1\)\n/);
  t.match(r.stdout, /50,000 100% .*\(xfr#2\)\n/);
  await sameAsLocal(t, c, ['-a']);
});
