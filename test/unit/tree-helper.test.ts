import t from 'tap';
import { chmod, link, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareTrees, localRsync, snapshotTree, snapshotTreeSync, treeChangeLines, treeChanges } from '../helpers/tree.js';

t.test('snapshotTree/compareTrees see what rsync -aH preserves and what it does not', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'rrsyncd-tree-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const src = join(base, 'src');
  await mkdir(join(src, 'd'), { recursive: true });
  await writeFile(join(src, 'a.txt'), 'hello');
  await writeFile(join(src, Buffer.from('caf\xe9', 'latin1').toString('latin1')), 'latin1 name');
  await link(join(src, 'a.txt'), join(src, 'd', 'hard'));
  await symlink('../a.txt', join(src, 'd', 'link'));
  await chmod(join(src, 'a.txt'), 0o640);

  const copy = join(base, 'copy');
  const r = await localRsync(['-aH', `${src}/`, `${copy}/`]);
  t.equal(r.code, 0, r.stderr);
  const a = await snapshotTree(src);
  const b = await snapshotTree(copy);
  // rsync -aH leaves symlink mtimes alone and hard-linking touches dir mtimes afterwards
  t.same(compareTrees(a, b, { ignoreDirMtimes: true, ignoreSymlinkMtimes: true }), [], 'an rsync -aH copy is identical');
  t.same(a.hardLinkGroups, [['a.txt', 'd/hard']]);
  t.equal(a.entries.get('d/link')!.target, '../a.txt');

  const plain = join(base, 'plain');
  await localRsync(['-rl', `${src}/`, `${plain}/`]);
  const diffs = compareTrees(a, await snapshotTree(plain));
  t.ok(diffs.some((d) => d.startsWith('"a.txt": mtime')), 'mtimes differ without -t');
  t.ok(diffs.includes('hard links missing: a.txt = d/hard'), 'hard links lost without -H');

  await utimes(join(copy, 'd'), 1, 1);
  await writeFile(join(copy, 'extra'), 'x');
  await writeFile(join(copy, 'a.txt'), 'HELLO');
  await chmod(join(copy, 'd', 'hard'), 0o600);
  const d2 = compareTrees(a, await snapshotTree(copy), { ignoreMtimes: true });
  t.ok(d2.includes('"extra": unexpected file'));
  t.ok(d2.includes('"a.txt": content differs'));
  t.ok(d2.includes('"a.txt": mode 640 != 600'), 'hard-linked chmod shows on both names');
  t.notOk(d2.some((d) => d.startsWith('"d": mtime')), 'ignoreMtimes');
  t.ok(compareTrees(a, await snapshotTree(copy)).some((d) => d.startsWith('"d": mtime')));
  t.notOk(compareTrees(a, await snapshotTree(copy), { ignoreDirMtimes: true }).some((d) => d.startsWith('"d": mtime')));
});

t.test('treeChanges: what happened to one tree between two snapshots', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'rrsyncd-tree-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  await mkdir(join(base, 'd'));
  await writeFile(join(base, 'same'), 'x');
  await writeFile(join(base, 'content'), 'abc');
  await writeFile(join(base, 'gone'), 'g');
  await writeFile(join(base, 'd', 'timed'), 't');
  const before = snapshotTreeSync(base);
  t.same(treeChanges(before, snapshotTreeSync(base)), { added: [], removed: [], changed: [] }, 'nothing happened');
  await writeFile(join(base, 'content'), 'abd');
  await utimes(join(base, 'd', 'timed'), 1000, 1000);
  await rm(join(base, 'gone'));
  await writeFile(join(base, 'd', 'new'), 'n');
  const c = treeChanges(before, snapshotTreeSync(base));
  t.same(c.added, ['d/new']);
  t.same(c.removed, ['gone']);
  t.same(c.changed.sort(), ['.', 'content', 'd', 'd/timed'], 'content, mtime, and the directories whose entries changed');
  const lines = treeChangeLines(before, snapshotTreeSync(base));
  t.same(lines.map((l) => l.replace(/:.*/, '')), ['removed gone', 'changed .', 'changed content', 'changed d', 'changed d/timed', 'added d/new']);
  t.match(lines.find((l) => l.startsWith('changed d/timed'))!, /"mtimeNs":"\d+".* -> .*"mtimeNs":"1000000000000"/, 'a changed line shows both sides');
});
