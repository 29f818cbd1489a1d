// Snapshot mode with the real client (in-process engine host): each push builds a new revision
// linked against the previous one (unchanged files share inodes); no option a snapshot key can
// send changes an earlier revision; pulls see latest/ and snapshots/, never the staging place.
import t, { type Test } from 'tap';
import { mkdtemp, rm, writeFile, utimes, unlink, mkdir, symlink, readFile, readlink } from 'node:fs/promises';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTree, file, dir } from './lib/interop.js';
import { startEngineHost } from './lib/engine-host.js';
import { fingerprint, pusher, revisionNames, stagingLeft } from './lib/revisions.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { verifyManifestChain } from '../../src/revisions/manifest.js';

const GRANT = { revisions: { mode: 'snapshot' } };
type Tap = Test;

async function workspace(t: Tap): Promise<{ root: string; src: string; top: string }> {
  const top = await mkdtemp(join(tmpdir(), 'rrsyncd-rev-'));
  t.teardown(() => rm(top, { recursive: true, force: true }));
  const root = join(top, 'root');
  const src = join(top, 'src');
  await mkdir(root);
  await buildTree(src, [file('same.txt', 'same\n'), file('changed.txt', 'version 1\n'), file('sub/gone.txt', 'deleted later\n'), file('sub/kept.bin', 'k'.repeat(50_000)), dir('d')]);
  await writeFile(join(src, 'd/x'), 'in a dir\n');
  return { root, src, top };
}

function ino(p: string): bigint {
  return lstatSync(p, { bigint: true }).ino;
}

function chainOk(t: Tap, root: string): void {
  const sandbox = Sandbox.open(root);
  try {
    const report = verifyManifestChain(sandbox, 'snapshot');
    t.same(report.problems, [], 'the manifest chain verifies');
  } finally {
    sandbox.close();
  }
}

t.test('two pushes with one change and one deletion make two revisions sharing unchanged inodes', async (t) => {
  const host = await startEngineHost();
  t.teardown(() => host.close());
  for (const protocol of [27, 28, 29, 30, 31, 32]) {
    await t.test(`--protocol=${protocol}`, async (t) => {
      const { root, src } = await workspace(t);
      const push = pusher(host, root, GRANT);
      const first = await push(['-a', '--delete', `--protocol=${protocol}`, `${src}/`, 'x:']);
      t.equal(first.code, 0, first.stderr);
      await writeFile(join(src, 'changed.txt'), 'version 2\n');
      await utimes(join(src, 'changed.txt'), 1_700_000_000, 1_700_000_000);
      await unlink(join(src, 'sub/gone.txt'));
      const second = await push(['-a', '--delete', `--protocol=${protocol}`, `${src}/`, 'x:']);
      t.equal(second.code, 0, second.stderr);
      const [a, b] = revisionNames(root);
      t.equal(revisionNames(root).length, 2, 'two revisions');
      const ra = join(root, 'snapshots', a!);
      const rb = join(root, 'snapshots', b!);
      t.equal(await readlink(join(root, 'latest')), `snapshots/${b}`, 'latest names the second');
      t.equal(ino(join(ra, 'same.txt')), ino(join(rb, 'same.txt')), 'unchanged file: one inode');
      t.equal(ino(join(ra, 'sub/kept.bin')), ino(join(rb, 'sub/kept.bin')), 'unchanged file in a subdir: one inode');
      t.not(ino(join(ra, 'changed.txt')), ino(join(rb, 'changed.txt')), 'changed file: a new inode');
      t.equal(readFileSync(join(ra, 'changed.txt'), 'utf8'), 'version 1\n');
      t.equal(readFileSync(join(rb, 'changed.txt'), 'utf8'), 'version 2\n');
      t.ok(existsSync(join(ra, 'sub/gone.txt')), 'the deletion left the first revision alone');
      t.notOk(existsSync(join(rb, 'sub/gone.txt')), 'and shaped the second');
      t.same(stagingLeft(root), [], 'no staging left');
      const manifest = JSON.parse(await readFile(join(root, 'snapshots', `${b}.manifest.json`), 'utf8')) as Record<string, unknown>;
      t.equal(manifest.basis, a);
      t.equal(manifest.previous, a);
      t.equal(manifest.files, 4);
      t.equal(manifest.newBytes, 'version 2\n'.length, 'new bytes: only the changed file');
      chainOk(t, root);
    });
  }
});

t.test('destructive options tried by a snapshot key leave earlier revisions identical', async (t) => {
  const host = await startEngineHost();
  t.teardown(() => host.close());
  const { root, src, top } = await workspace(t);
  const push = pusher(host, root, GRANT);
  const base = await push(['-a', `${src}/`, 'x:']);
  t.equal(base.code, 0, base.stderr);
  const first = revisionNames(root)[0]!;
  // a source whose every file differs from the first revision, and a dir replaced by a file
  const other = join(top, 'other');
  await buildTree(other, [file('same.txt', ''), file('changed.txt', 'x'), file('d', 'a file where a dir was\n'), file('sub/kept.bin', 'short')]);
  const evilLink = join(top, 'evil-link');
  await buildTree(evilLink, [file('f', 'f\n')]);
  await symlink('../snapshots', join(evilLink, 'evil'));
  await symlink('../../snapshots', join(evilLink, 'evil2'));
  const evilDir = join(top, 'evil-dir');
  await buildTree(evilDir, [file('evil/pwn', 'pwned\n'), file('evil2/pwn', 'pwned\n'), file(`evil/${first}/same.txt`, 'pwned\n')]);
  const attempts: Array<{ args: string[]; refused?: boolean; unpublished?: boolean }> = [
    { args: ['--inplace', `${other}/`] },
    { args: ['--inplace', '--no-W', '--protocol=28', `${other}/`] },
    { args: ['--append', `${other}/`], refused: true },
    { args: ['--append-verify', `${other}/`], refused: true },
    { args: ['--delete', `${other}/`] },
    { args: ['--delete', '--delete-excluded', '--exclude=same.txt', `${other}/`] },
    { args: ['--force', '--delete', `${other}/`] },
    { args: ['--chmod=D000,F000', `${other}/`] },
    { args: ['-b', '--suffix=.bak', `${other}/`] },
    { args: ['-b', `--backup-dir=/snapshots/${first}`, `${other}/`], refused: true },
    { args: [`--link-dest=/snapshots/${first}`, `${other}/`], refused: true },
    { args: [`--copy-dest=/snapshots/${first}`, `${other}/`], refused: true },
    { args: [`--compare-dest=/snapshots/${first}`, `${other}/`], refused: true },
    { args: [`--temp-dir=../../snapshots/${first}`, `${other}/`], refused: true },
    { args: [`--temp-dir=/snapshots/${first}`, `${other}/`], refused: true },
    { args: [`--partial-dir=/snapshots/${first}`, `${other}/`], refused: true },
    { args: ['--delay-updates', `${other}/`] },
    { args: ['-K', `${other}/`], refused: true },
    { args: [`${evilLink}/`] },
    { args: ['-K', `${evilDir}/`], refused: true },
    { args: [`${evilDir}/`] },
    { args: [`${other}/`, `x:snapshots/${first}/`] },
    { args: ['--mkpath', `${other}/`, `x:latest/sub/`] },
    { args: ['-n', '--delete', `${other}/`], unpublished: true },
  ];
  for (const { args, refused, unpublished } of attempts) {
    const before = new Map(revisionNames(root).map((n) => [n, fingerprint(join(root, 'snapshots', n))]));
    const latest = await readlink(join(root, 'latest'));
    const dest = args.at(-1)!.startsWith('x:') ? [] : ['x:'];
    const r = await push(['-a', ...args, ...dest]);
    const what = args.join(' ').replaceAll(top, '');
    if (refused) {
      t.not(r.code, 0, `${what}: refused`);
      t.match(r.stderr, /rrsyncd: (option|path)/, `${what}: one clear line`);
      t.equal(await readlink(join(root, 'latest')), latest, `${what}: latest unchanged`);
    } else if (unpublished) {
      t.equal(r.code, 0, `${what}: ${r.stderr}`);
      t.equal(await readlink(join(root, 'latest')), latest, `${what}: a dry run publishes nothing`);
    } else {
      t.equal(r.code, 0, `${what}: ${r.stderr}`);
      t.not(await readlink(join(root, 'latest')), latest, `${what}: a new revision`);
    }
    for (const [name, fp] of before) t.same(fingerprint(join(root, 'snapshots', name)), fp, `${what}: ${name} identical`);
    t.same(stagingLeft(root), [], `${what}: no staging left`);
  }
  t.notOk(existsSync(join(root, 'snapshots', first, 'evil')), 'nothing reached the first revision');
  chainOk(t, root);
});

t.test('pulls see latest/ and snapshots/NAME/, never the staging place', async (t) => {
  const host = await startEngineHost();
  t.teardown(() => host.close());
  const { root, src, top } = await workspace(t);
  const push = pusher(host, root, GRANT);
  t.equal((await push(['-a', `${src}/`, 'x:'])).code, 0);
  const name = revisionNames(root)[0]!;
  await mkdir(join(root, '.rrsyncd-staging/2000-01-01T000000Z'), { recursive: true });
  await writeFile(join(root, '.rrsyncd-staging/2000-01-01T000000Z/secret'), 'not published\n');
  const ro = { ...GRANT, readOnly: true, noDelete: true, noLock: true };
  const latest = await push(['-a', 'x:latest/', join(top, 'out-latest')], ro);
  t.equal(latest.code, 0, latest.stderr);
  t.same(fingerprint(join(top, 'out-latest')).size, fingerprint(join(root, 'snapshots', name)).size, 'latest/ pulled');
  t.equal(readFileSync(join(top, 'out-latest/changed.txt'), 'utf8'), 'version 1\n');
  const named = await push(['-a', `x:snapshots/${name}/`, join(top, 'out-named')], ro);
  t.equal(named.code, 0, named.stderr);
  t.ok(existsSync(join(top, 'out-named/sub/kept.bin')));
  const all = await push(['-a', 'x:', join(top, 'out-all')], ro);
  t.equal(all.code, 0, all.stderr);
  t.ok(existsSync(join(top, 'out-all/snapshots', name)), 'the whole root');
  t.notOk(existsSync(join(top, 'out-all/.rrsyncd-staging')), 'without the staging place');
  const staging = await push(['-a', 'x:.rrsyncd-staging/', join(top, 'out-staging')], ro);
  t.not(staging.code, 0, 'the staging place cannot be named');
  t.notOk(existsSync(join(top, 'out-staging/2000-01-01T000000Z')));
  const remove = await push(['-a', '--remove-source-files', `x:snapshots/${name}/`, join(top, 'out-rm')], { ...GRANT });
  t.not(remove.code, 0, '--remove-source-files refused');
  t.ok(existsSync(join(root, 'snapshots', name, 'same.txt')), 'and nothing removed');
});

t.test('a vetoing verify hook: nothing published, the client gets one line', async (t) => {
  let veto: string | null = 'too few files';
  const seen: string[] = [];
  const host = await startEngineHost({
    revisionHooks: {
      verify: async (event, staged) => {
        seen.push(`${event.event} ${event.revision} ${existsSync(join(staged, 'same.txt'))}`);
        return veto;
      },
    },
  });
  t.teardown(() => host.close());
  const { root, src } = await workspace(t);
  const push = pusher(host, root, GRANT);
  const vetoed = await push(['-a', `${src}/`, 'x:']);
  t.equal(vetoed.code, 1, 'exit 1');
  t.match(vetoed.stderr, /^rrsyncd: revision refused by verify hook: too few files$/m);
  t.same(revisionNames(root), [], 'nothing published');
  t.notOk(existsSync(join(root, 'latest')), 'no latest');
  t.same(stagingLeft(root), [], 'staging removed');
  veto = null;
  const ok = await push(['-a', `${src}/`, 'x:']);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(revisionNames(root).length, 1, 'published once the hook agrees');
  t.match(seen, [/^revision\.staged \S+ true$/, /^revision\.staged \S+ true$/], 'the hook saw the staged tree');
});
