// -append-only against the real client (src/gateway/append-only.ts, policy/restrict.ts): every
// destructive option a compromised key could try leaves the existing tree byte- and
// metadata-identical (same inodes, contents, modes, owners, file and symlink mtimes; directory
// mtimes may follow a push, the documented choice), refused items end the session with rsync's
// exit code, and an ordinary `rsync -a src/ host:dst/` that adds files still exits 0.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildTree, dir, engineTransport, file, newCase, slink, type Node } from './lib/interop.js';
import { compareTrees, snapshotTree, type TreeSnapshot } from '../helpers/tree.js';

const GRANT = { appendOnly: true };

const existing = (): Node[] => [
  file('f', 'precious data\n', { mode: 0o644 }),
  file('grow.log', 'line 1\n', { mode: 0o640 }),
  dir('dir', { mode: 0o755 }),
  file('dir/inner', 'inner\n', { mode: 0o600 }),
  dir('dir-to-file', { mode: 0o750 }),
  file('dir-to-file/child', 'child\n'),
  file('file-to-dir', 'a file\n'),
  slink('link', 'f'),
];

/** What each attack pushes (a source tree) with which options, and the exit code rsync gives. */
const ATTACKS: { name: string; args: string[]; src: Node[]; code: number }[] = [
  { name: '--inplace empty file over f', args: ['-a', '--inplace'], src: [file('f', '')], code: 0 },
  { name: '--inplace -I --no-W changed f', args: ['-a', '--inplace', '-I', '--no-W'], src: [file('f', 'PRECIOUS DATA\n')], code: 0 },
  { name: '--append to an existing file', args: ['-a', '--append'], src: [file('grow.log', 'line 1\nline 2 appended\n')], code: 0 },
  { name: '-c with other content', args: ['-a', '-c'], src: [file('f', 'tampered data\n')], code: 0 },
  { name: '--force: a file where a directory is', args: ['-a', '--force'], src: [file('dir-to-file', 'x\n')], code: 0 },
  { name: '--force: a directory where a file is', args: ['-a', '--force'], src: [dir('file-to-dir'), file('file-to-dir/x', 'x\n')], code: 23 },
  { name: 'a symlink where a file is', args: ['-a', '--force'], src: [slink('f', '/etc/passwd')], code: 0 },
  { name: 'a file where a symlink is', args: ['-a'], src: [file('link', 'not a link\n')], code: 0 },
  { name: '--chmod=D000', args: ['-a', '--chmod=D000'], src: [dir('dir'), dir('dir-to-file')], code: 0 },
  { name: '--chmod=F000 -I', args: ['-a', '-I', '--chmod=F000'], src: [file('f', 'precious data\n')], code: 0 },
  { name: '--delete', args: ['-a', '--delete'], src: [file('only', 'x\n')], code: 12 },
  { name: '--delete-excluded', args: ['-a', '--delete-excluded', '--exclude=f'], src: [file('only', 'x\n')], code: 12 },
  { name: '-b (backup)', args: ['-a', '-b'], src: [file('f', 'new\n')], code: 12 },
  { name: '--backup-dir', args: ['-a', '--backup-dir=bk'], src: [file('f', 'new\n')], code: 12 },
  { name: '--partial-dir', args: ['-a', '--partial-dir=.p'], src: [file('f', 'new\n')], code: 12 },
  { name: '--delay-updates', args: ['-a', '--delay-updates'], src: [file('f', 'new\n')], code: 12 },
];

/** The existing tree minus what a new entry may add: same inodes and attributes, dir mtimes aside. */
function unchanged(before: TreeSnapshot, after: TreeSnapshot): string[] {
  const diffs = compareTrees(before, after, { ignoreDirMtimes: true, exclude: (p) => !before.entries.has(p) });
  for (const [p, e] of before.entries) {
    const a = after.entries.get(p);
    if (a && a.ino !== e.ino) diffs.push(`${JSON.stringify(p)}: replaced (inode ${e.ino} -> ${a.ino})`);
  }
  return diffs;
}

for (const protocol of [31, 29]) {
  t.test(`every destructive push leaves the existing tree as it was, --protocol=${protocol}`, async (t) => {
    const tr = await engineTransport(t);
    const c = await newCase(t, tr, 'push', [file('unused', '')]);
    await c.seedDst(existing());
    const dst = c.remoteDst();
    const before = await snapshotTree(dst);
    for (const [i, a] of ATTACKS.entries()) {
      const srcDir = `attack${i}`;
      await buildTree(join(c.dir, srcDir), a.src);
      const r = await c.runRemote([...a.args, `--protocol=${protocol}`], { srcs: [`${srcDir}/`], grant: GRANT, keepSources: true });
      t.equal(r.code, a.code, `${a.name}: exit ${a.code}`, { stderr: r.stderr });
      t.same(unchanged(before, await snapshotTree(dst)), [], `${a.name}: the existing tree is unchanged`);
    }
  });
}

t.test('a failed item ends the session with 23 after the rest landed; refused options are named', async (t) => {
  const tr = await engineTransport(t);
  const c = await newCase(t, tr, 'push', [dir('file-to-dir'), file('file-to-dir/x', 'x\n'), file('new-file', 'new\n')]);
  await c.seedDst(existing());
  const r = await c.runRemote(['-a', '--force'], { grant: GRANT });
  t.equal(r.code, 23, r.stderr);
  // like rsync --ignore-existing, the directory is skipped (a file is there), so its content fails
  t.match(r.stderr, /rsync: \[receiver\] file-to-dir\/x: .* is not a directory/);
  t.match(r.stderr, /rsync error: some files\/attrs were not transferred .*\(code 23\)/);
  t.equal(readFileSync(join(c.remoteDst(), 'new-file'), 'utf8'), 'new\n', 'the session went on: the new file landed');
  const del = await c.runRemote(['-a', '--delete'], { grant: GRANT });
  t.equal(del.code, 12, 'refused options: the client sees the connection close, as with rrsync');
  t.match(del.stderr, /rrsyncd: option --delete is not allowed here/);
});

for (const protocol of [32, 30, 27]) {
  t.test(`an ordinary rsync -a adding files to an existing tree exits 0, --protocol=${protocol}`, async (t) => {
    const tr = await engineTransport(t);
    const src = [...existing(), file('new.txt', 'new\n'), file('dir/new-inner', 'new inner\n'), dir('newdir'), file('newdir/deep', 'deep\n'), slink('newlink', 'new.txt')];
    const c = await newCase(t, tr, 'push', src);
    await c.seedDst(existing());
    const dst = c.remoteDst();
    const before = await snapshotTree(dst);
    const r = await c.runRemote(['-a', '-H', `--protocol=${protocol}`], { grant: GRANT });
    t.equal(r.code, 0, r.stderr);
    const after = await snapshotTree(dst);
    t.same(unchanged(before, after), [], 'the existing entries are untouched');
    // the new entries are exactly what a local rsync makes of them
    const ref = join(c.dir, 'ref');
    await buildTree(ref, existing());
    const local = await c.runLocal(['-a', '-H'], { dst: `${ref}/`, keepSources: false });
    t.equal(local.code, 0, local.stderr);
    const isNew = (p: string) => !before.entries.has(p);
    t.same(compareTrees(await snapshotTree(ref), after, { exclude: (p) => !isNew(p), mtimeSecondsOnly: protocol < 31 }), [], 'new entries as rsync makes them');
    const again = await c.runRemote(['-a', `--protocol=${protocol}`], { grant: GRANT });
    t.equal(again.code, 0, `a second, unchanged push exits 0 too: ${again.stderr}`);
  });
}
