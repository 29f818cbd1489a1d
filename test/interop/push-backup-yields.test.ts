// A -b push whose backup's name is taken by a directory of 20 000 files (`f~` beside the file,
// or `f` under --backup-dir) removes that tree while letting the event loop run: other sessions
// in the process are served meanwhile. The server runs in this process
// (test/helpers/inproc-server.ts); every turn of the loop looks whether the removal is under way
// (the first name of the listing gone, the last still there). The result matches a local stock
// rsync's.
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, mkdtempSync, opendirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startInprocServer, type InprocServer } from '../helpers/inproc-server.js';
import { compareTrees, localRsync, snapshotTreeSync } from '../helpers/tree.js';
import { countTurns } from '../unit/sandbox-helpers.js';
import { defaultGrant } from '../../src/policy/grant.js';

const FILES = 20_000;
const OLD = 1_500_000_000;

const cases = [
  { title: '-b: the backup name f~ is a full directory', args: ['-b'], tree: 'f~' },
  { title: '--backup-dir=bk: bk/f is a full directory', args: ['--backup-dir=bk'], tree: 'bk/f' },
];

/** The destination: an old `f` and, at the backup's name, a directory of `files` empty files (one level down too). */
function seed(dst: string, tree: string, files: number): void {
  const full = join(dst, tree);
  mkdirSync(join(full, 'sub'), { recursive: true });
  // Each file with the same mtime in both copies (a directory that stays is compared).
  const put = (path: string, data: string): void => {
    writeFileSync(path, data);
    utimesSync(path, OLD, OLD);
  };
  for (let i = 0; i < files; i++) put(join(full, `n${i}`), '');
  put(join(full, 'sub', 'deeper'), 'x\n');
  put(join(dst, 'f'), 'the old data\n');
}

/** A source with a new `f`, the server's destination root/dst and a reference copy `ref`, both seeded. */
async function setup(t: Test, tree: string, files: number): Promise<{ root: string; src: string; ref: string; srv: InprocServer }> {
  const dir = mkdtempSync(join(tmpdir(), 'rrsyncd-bkyield-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  const src = join(dir, 'src');
  const ref = join(dir, 'ref');
  mkdirSync(src);
  writeFileSync(join(src, 'f'), 'the new data, longer\n');
  seed(join(root, 'dst'), tree, files);
  seed(ref, tree, files);
  const srv = await startInprocServer(dir, { ...defaultGrant(root), noLock: true });
  t.teardown(() => srv.close());
  return { root, src, ref, srv };
}

function listing(dir: string): string[] {
  const names: string[] = [];
  const d = opendirSync(dir);
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) names.push(e.name);
  } finally {
    d.closeSync();
  }
  return names;
}

for (const c of cases) {
  t.test(c.title, async (t) => {
    const { root, src, ref, srv } = await setup(t, c.tree, FILES);

    // The removal goes in the directory's own order (getdents; readdirSync would sort it).
    const victim = join(root, 'dst', c.tree);
    const listed = listing(victim);
    const [first, last] = [join(victim, listed[0]!), join(victim, listed.at(-1)!)];
    let result: Awaited<ReturnType<typeof srv.rsync>> | undefined;
    const { probed } = await countTurns(
      async () => {
        result = await srv.rsync(['-rt', ...c.args, `${src}/`, 'x:dst/'], { timeoutMs: 300_000 });
      },
      () => !existsSync(first) && existsSync(last),
    );
    const r = result!;
    const local = await localRsync(['-rt', ...c.args, `${src}/`, `${ref}/`]);
    t.equal(r.code, local.code, `exit code as the reference (${r.stderr})`);
    t.same(compareTrees(snapshotTreeSync(ref), snapshotTreeSync(join(root, 'dst')), { ignoreDirMtimes: true }), [], 'the tree the reference leaves');
    t.ok(probed >= 20, `the event loop ran ${probed} times while the backup's directory was being removed`);
  });
}

// --inplace -b copies the old data to its backup (the basis then): the reference cannot unlink a
// directory at that name, says so and skips the file (no tree is removed).
t.test('--inplace -b: a directory f~ is not replaced, the file is skipped', async (t) => {
  const { root, src, ref, srv } = await setup(t, 'f~', 3);
  const r = await srv.rsync(['-rt', '--inplace', '-b', `${src}/`, 'x:dst/']);
  const local = await localRsync(['-rt', '--inplace', '-b', `${src}/`, `${ref}/`]);
  t.equal(local.code, 23, local.stderr);
  t.equal(r.code, local.code, 'exit code as the reference');
  t.match(local.stderr, /unlink ".*f~": Is a directory \(21\)/);
  t.match(r.stderr, 'rsync: [generator] unlink "f~": Is a directory (21)', 'the reference\'s error, with the name relative to the destination');
  t.same(compareTrees(snapshotTreeSync(ref), snapshotTreeSync(join(root, 'dst')), { ignoreDirMtimes: true }), [], 'the tree the reference leaves');
});
