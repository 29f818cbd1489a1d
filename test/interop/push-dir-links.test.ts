// Destination symlinks to directories (issue 17 items 7 and 12), pushed by the real client through
// the engine over pipes (test/pipe/rsh.sh) and compared with the same transfer as a local rsync:
// -K goes through a destination symlink where the sender has a directory; at a root of `/` the
// destination itself, the operator's own --temp-dir/--backup-dir/--link-dest/--partial-dir and a
// path element of -R --no-implied-dirs may be symlinks (followed when owned by root or by the
// server's uid, as rsync 3.5.0 does); below a real root they are still refused.
import { lchown, mkdir, mkdtemp, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { run, type RunResult } from '../helpers/server.js';
import { compareTrees, localRsync, snapshotTree } from '../helpers/tree.js';

const RSH = fileURLToPath(new URL('../pipe/rsh.sh', import.meta.url));
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

let base: string;
t.before(async () => {
  base = await mkdtemp(join(await realpath(tmpdir()), 'rrsyncd-dir-links-'));
});
t.teardown(() => rm(base, { recursive: true, force: true }));

type Setup = (side: string) => Promise<void>;
/** The rsync arguments for one side; `dst` is `x:/abs/side/dst` through the server, a plain path locally. */
type Args = (side: string, dst: string) => string[];

/** A push into `<case>/a` through the engine (grant root `root`, default `/`), the same push locally into `<case>/b`. */
async function both(name: string, setup: Setup, args: Args, root = '/'): Promise<{ a: string; b: string; remote: RunResult; local: RunResult }> {
  const [a, b] = [join(base, name, 'a'), join(base, name, 'b')];
  for (const side of [a, b]) {
    await mkdir(side, { recursive: true });
    await setup(side);
    // the same mtimes on both sides (rsync copies them)
    const touched = await run('find', [side, '-exec', 'touch', '-h', '-d', '@1600000000', '{}', '+']);
    if (touched.code !== 0) throw new Error(touched.stderr);
  }
  const remoteDst = root === '/' ? `x:${a}/dst` : 'x:dst';
  // -no-lock, as the suite's grant: a root of `/` is shared with every other test on the machine
  const env = { RRSYNCD_TEST_ROOT: root === '/' ? '/' : a, RRSYNCD_TEST_GRANT: JSON.stringify({ noLock: true }), NODE_OPTIONS: '' };
  const remote = await run('rsync', ['-e', RSH, ...args(a, remoteDst)], { cwd: a, env });
  const local = await localRsync(args(b, `${b}/dst`), { cwd: b });
  return { a, b, remote, local };
}

async function sameTrees(t: Test, a: string, b: string, what = ''): Promise<void> {
  const diff = compareTrees(await snapshotTree(b), await snapshotTree(a), { ignoreDirMtimes: true });
  t.same(diff, [], `${what}the trees are the same as a local rsync's`);
}

/** `s/` with `d/f`, `d/sub/g`, `top`; `dst/d` a symlink to `target`, whose `sub` is a symlink to `../sub-real`. */
const keepDirlinksSetup: Setup = async (side) => {
  await mkdir(join(side, 's/d/sub'), { recursive: true });
  await writeFile(join(side, 's/d/f'), 'f\n');
  await writeFile(join(side, 's/d/sub/g'), 'g\n');
  await writeFile(join(side, 's/top'), 'top\n');
  await mkdir(join(side, 'dst/target'), { recursive: true });
  await mkdir(join(side, 'dst/sub-real'), { recursive: true });
  await writeFile(join(side, 'dst/target/extra'), 'extra\n');
  await writeFile(join(side, 'dst/sub-real/extra'), 'extra\n');
  await symlink('target', join(side, 'dst/d'));
  await symlink('../sub-real', join(side, 'dst/target/sub'));
};

t.test('-K goes through destination symlinks to directories (keep-dirlinks-rule)', async (t) => {
  for (const proto of [29, 30, 32]) {
    // P: the links' targets are not in the source (rsync would delete them from `.` first)
    const args: Args = (_, dst) => ['-aK', '--delete', '--filter=P /target', '--filter=P /sub-real', `--protocol=${proto}`, 's/', `${dst}/`];
    const { a, b, remote, local } = await both(`keep-${proto}`, keepDirlinksSetup, args);
    t.equal(remote.code, local.code, `protocol ${proto}: exit code (${remote.stderr})`);
    t.equal(local.code, 0);
    await sameTrees(t, a, b, `protocol ${proto}: `);
    t.same(await readdir(join(a, 'dst/sub-real')), ['g'], `protocol ${proto}: written through both links`);
    t.same((await readdir(join(a, 'dst/target'))).sort(), ['f', 'sub'], `protocol ${proto}: extra deleted through the link`);
  }
});

t.test('-K does not go through a link that leaves the destination, as rsync 3.5.0', async (t) => {
  const setup: Setup = async (side) => {
    await mkdir(join(side, 's/d/sub'), { recursive: true });
    await writeFile(join(side, 's/d/f'), 'f\n');
    await writeFile(join(side, 's/d/sub/g'), 'g\n');
    await mkdir(join(side, 'dst'));
    await mkdir(join(side, 'elsewhere'));
    await symlink('../elsewhere', join(side, 'dst/d'));
  };
  for (const proto of [29, 32]) {
    const { a, b, remote, local } = await both(`keep-out-${proto}`, setup, (_, dst) => ['-aK', `--protocol=${proto}`, 's/', `${dst}/`]);
    t.equal(local.code, 23, 'rsync refuses it');
    t.equal(remote.code, local.code, `protocol ${proto}: exit code (${remote.stderr})`);
    t.match(remote.stderr, /d\/f: path component .* is a symlink/);
    await sameTrees(t, a, b, `protocol ${proto}: `);
  }
});

t.test('-K without a directory behind the link replaces it, as rsync does', async (t) => {
  const setup: Setup = async (side) => {
    await mkdir(join(side, 's/d'), { recursive: true });
    await writeFile(join(side, 's/d/f'), 'f\n');
    await mkdir(join(side, 'dst'));
    await writeFile(join(side, 'dst/file'), 'x\n');
    await symlink('file', join(side, 'dst/d'));
  };
  const { a, b, remote, local } = await both('keep-file', setup, (_, dst) => ['-aK', 's/', `${dst}/`]);
  t.equal(remote.code, local.code, remote.stderr);
  await sameTrees(t, a, b);
});

t.test('-K does not go through a link of another user that leaves the destination', { skip: isRoot ? false : 'needs root (lchown)' }, async (t) => {
  const setup: Setup = async (side) => {
    await mkdir(join(side, 's/d'), { recursive: true });
    await writeFile(join(side, 's/d/f'), 'f\n');
    await mkdir(join(side, 'dst'));
    await mkdir(join(side, 'outside'));
    await symlink(join(side, 'outside'), join(side, 'dst/d'));
    await lchown(join(side, 'dst/d'), NOBODY, NOBODY);
  };
  const { a, remote, local } = await both('keep-untrusted', setup, (_, dst) => ['-aK', 's/', `${dst}/`]);
  t.equal(local.code, 23, 'rsync refuses it');
  t.equal(remote.code, local.code, remote.stderr);
  t.match(remote.stderr, /d\/f: path component .* is a symlink/);
  t.same(await readdir(join(a, 'outside')), [], 'nothing written through it');
});

/** `s/a`, `s/b`, and `dst` a symlink to `real`. */
const destLinkSetup: Setup = async (side) => {
  await mkdir(join(side, 's'));
  await writeFile(join(side, 's/a'), 'a\n');
  await writeFile(join(side, 's/b'), 'b\n');
  await mkdir(join(side, 'real'));
  await symlink('real', join(side, 'dst'));
};

/** `s/path/file`, and `dst/path` a symlink to `real` (beside it). */
const pathLinkSetup: Setup = async (side) => {
  await mkdir(join(side, 's/path'), { recursive: true });
  await writeFile(join(side, 's/path/file'), 'NEW\n');
  await mkdir(join(side, 'dst/real'), { recursive: true });
  await symlink('real', join(side, 'dst/path'));
};

t.test('root /: a destination that is a symlink to a directory (dest-symlinked-dir)', async (t) => {
  for (const slash of ['/', '']) {
    const { a, b, remote, local } = await both(`dest${slash ? '-slash' : ''}`, destLinkSetup, (_, dst) => ['-a', 's/', `${dst}${slash}`]);
    t.equal(remote.code, local.code, remote.stderr);
    await sameTrees(t, a, b, `"dst${slash}": `);
    t.same(await readdir(join(a, 'real')), ['a', 'b']);
  }
});

t.test('root /: a destination symlink of another user is not followed (symlink-race-dest)', { skip: isRoot ? false : 'needs root (lchown)' }, async (t) => {
  const setup: Setup = async (side) => {
    await mkdir(join(side, 's/sub'), { recursive: true });
    await writeFile(join(side, 's/sub/f0'), 'p\n');
    await writeFile(join(side, 's/sub/f1'), 'p\n');
    await mkdir(join(side, 'outside'));
    await mkdir(join(side, 'dst'));
    await symlink(join(side, 'outside'), join(side, 'dst/sub'));
    await lchown(join(side, 'dst/sub'), NOBODY, NOBODY);
  };
  const { a, remote, local } = await both('dest-untrusted', setup, (_, dst) => ['-a', 's/sub/', `${dst}/sub/`]);
  t.equal(local.code, 3);
  t.equal(remote.code, local.code, remote.stderr);
  t.same(await readdir(join(a, 'outside')), [], 'nothing written outside');
});

/** `s/a` (new content), `dst/a` (old), and symlinked helper dirs: `link -> real`, `ld/link -> real` (holding an unchanged `a`). */
const helperSetup: Setup = async (side) => {
  await mkdir(join(side, 's'));
  await writeFile(join(side, 's/a'), 'new\n');
  await mkdir(join(side, 'dst'));
  await writeFile(join(side, 'dst/a'), 'old\n');
  await mkdir(join(side, 'real'));
  await symlink('real', join(side, 'link'));
  await symlink('../real', join(side, 'dst/rel-link'));
  await mkdir(join(side, 'ld/real'), { recursive: true });
  await symlink('real', join(side, 'ld/link'));
  // the --link-dest copy of `a`: the same content and mtime as the source's
  const r = await localRsync(['-a', 's/a', 'ld/real/a'], { cwd: side });
  if (r.code !== 0) throw new Error(r.stderr);
};

t.test('root /: the operator\'s own symlinked helper dirs (chmod-temp-dir, operator-path-*)', async (t) => {
  const cases: Array<[string, Args]> = [
    ['temp-dir', (side, dst) => ['-a', `--temp-dir=${side}/link`, 's/', `${dst}/`]],
    ['backup-dir', (side, dst) => ['-a', '-b', `--backup-dir=${side}/link`, 's/', `${dst}/`]],
    ['backup-dir below', (side, dst) => ['-a', '-b', `--backup-dir=${side}/link/sub`, 's/', `${dst}/`]],
    ['backup-dir relative', (_, dst) => ['-a', '-b', '--backup-dir=rel-link', 's/', `${dst}/`]],
    ['link-dest', (side, dst) => ['-aii', `--link-dest=${side}/ld/link`, 's/', `${dst}/new/`]],
    ['partial-dir below', (side, dst) => ['-a', '--delay-updates', `--partial-dir=${side}/link/sub`, 's/', `${dst}/`]],
    // util1.c handle_partial_dir() lstat()s the partial dir itself: a symlink there is replaced
    ['partial-dir itself', (side, dst) => ['-a', '--delay-updates', `--partial-dir=${side}/link`, 's/', `${dst}/`]],
  ];
  for (const [what, args] of cases) {
    const { a, b, remote, local } = await both(`helper-${what.replace(/ /g, '-')}`, helperSetup, args);
    t.equal(remote.code, local.code, `${what}: exit code (${remote.stderr})`);
    t.equal(local.code, 0, `${what}: rsync succeeds`);
    await sameTrees(t, a, b, `${what}: `);
    if (what === 'link-dest') t.match(remote.stdout, /^hf {10}a$/m, 'a is hard-linked from the --link-dest dir');
  }
});

t.test('root /: -R --no-implied-dirs writes through a symlinked path element (no-implied-dirs-symlink)', async (t) => {
  for (const proto of [30, 32]) {
    for (const implied of [false, true]) {
      const opts = implied ? [] : ['--no-implied-dirs'];
      const name = `noimplied-${proto}${implied ? '-implied' : ''}`;
      const { a, b, remote, local } = await both(name, pathLinkSetup, (side, dst) => ['-aR', ...opts, `--protocol=${proto}`, `${side}/s/./path/file`, `${dst}/`]);
      t.equal(remote.code, local.code, `${name}: exit code (${remote.stderr})`);
      await sameTrees(t, a, b, `${name}: `);
    }
  }
});

t.test('below a real root the same symlinks are still refused', async (t) => {
  const dest = await both('jail-dest', destLinkSetup, (_, dst) => ['-a', 's/', `${dst}/`], 'jail');
  t.equal(dest.remote.code, 3, dest.remote.stderr);
  t.match(dest.remote.stderr, /destination must be a directory/);
  t.same(await readdir(join(dest.a, 'real')), [], 'nothing written through the destination link');

  const temp = await both('jail-temp', helperSetup, (_, dst) => ['-a', '--temp-dir=/link', 's/', `${dst}/`], 'jail');
  t.equal(temp.remote.code, 1, temp.remote.stderr);
  t.match(temp.remote.stderr, /the --temp-dir path is not a directory/);

  const implied = await both('jail-noimplied', pathLinkSetup, (side, dst) => ['-aR', '--no-implied-dirs', `${side}/s/./path/file`, `${dst}/`], 'jail');
  t.equal(implied.remote.code, 23, implied.remote.stderr);
  t.match(implied.remote.stderr, /is a symlink/);
  t.same(await readdir(join(implied.a, 'dst/real')), [], 'nothing written through the path element');
});
