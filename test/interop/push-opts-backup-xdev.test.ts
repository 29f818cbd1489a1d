// --backup-dir on another filesystem than the destination (a grant of `/`, as for an operator's
// own key): backups are copied across (rsync's robust_move), and a backup that cannot be made
// never lets the replacement or the deletion go ahead.
import { mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { engineTransport, newCase, file, slink, type Transport, type Node } from './lib/interop.js';
import { run, RSYNC } from '../helpers/server.js';

const SHM = '/dev/shm';
const OLD = { sec: 1_500_000_000, nsec: 42_000 };

async function otherFs(dir: string): Promise<string | null> {
  try {
    const [a, b] = await Promise.all([stat(dir), stat(SHM)]);
    return a.dev !== b.dev ? SHM : null;
  } catch {
    return null;
  }
}

let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const src = (): Node[] => [file('f', 'the new content, longer\n'), file('d/g', 'g new, also longer\n'), slink('l', 'new-target')];
const dst = (): Node[] => [
  file('f', 'old f\n', { mtime: OLD }),
  file('d/g', 'old g\n', { mtime: OLD }),
  slink('l', 'old-target'),
  file('gone', 'deleted, kept as backup\n', { mtime: OLD }),
];

const shm = await otherFs(tmpdir());
const xdev = { skip: shm ? false : `${SHM} is not a separate filesystem from ${tmpdir()} here` };

t.test('backups are copied to a --backup-dir on another filesystem (changed, deleted and symlink)', xdev, async (t) => {
  const c = await newCase(t, tr, 'push', src());
  if (!shm) throw new Error('unreachable: skipped');
  const bak = await mkdtemp(join(shm, 'rrsyncd-bak-'));
  const localBak = await mkdtemp(join(shm, 'rrsyncd-bak-local-'));
  t.teardown(() => Promise.all([rm(bak, { recursive: true, force: true }), rm(localBak, { recursive: true, force: true })]));
  await c.seedDst(dst());
  const args = ['-a', '--delete', '-b'];
  // A grant of `/`: the destination and the backup dir are absolute paths.
  const env = { ...tr.env, NODE_OPTIONS: '', RRSYNCD_TEST_ROOT: '/' };
  const remote = await run(RSYNC, [...args, `--backup-dir=${bak}`, '-e', tr.rsh, 'src/', `x:${c.remoteDst()}/`], { cwd: c.dir, env });
  const local = await c.runLocal([...args, `--backup-dir=${localBak}`]);
  t.equal(remote.code, 0, remote.stderr);
  t.equal(local.code, 0, local.stderr);
  await c.compare(t, { ignoreDirMtimes: true });
  t.equal(await readFile(join(c.remoteDst(), 'f'), 'utf8'), 'the new content, longer\n', 'the file was replaced');
  t.equal(await readFile(join(bak, 'f'), 'utf8'), 'old f\n', 'its old content is in the backup dir');
  t.equal((await stat(join(bak, 'f'))).mtimeMs, OLD.sec * 1000 + 0.042, 'with its mtime');
  t.equal(await readFile(join(bak, 'd/g'), 'utf8'), 'old g\n', 'nested file backed up');
  t.equal(await readFile(join(bak, 'gone'), 'utf8'), 'deleted, kept as backup\n', 'the deleted file is in the backup dir');
  t.equal(await readlink(join(bak, 'l')), 'old-target', 'the replaced symlink is in the backup dir');
  await c.compareDirs(t, localBak, bak, { ignoreDirMtimes: true }, 'backup dir as the reference makes it');
});

t.test('a backup that cannot be made leaves the old file in place', async (t) => {
  const c = await newCase(t, tr, 'push', [file('f', 'the new content, longer\n'), file('keep', 'new keep, longer\n')]);
  // The backup dir's parent is a regular file: no backup can be made below it.
  await c.seedDst([file('f', 'old f\n', { mtime: OLD }), file('keep', 'old keep\n', { mtime: OLD }), file('blocker', 'x')]);
  const r = await c.runRemote(['-a', '-b', '--backup-dir=blocker/bak', '--delete'], {});
  t.equal(r.code, 23, 'partial-transfer exit code');
  t.match(r.stderr, /make_backup "f"/, 'the failed backup is reported');
  t.equal(await readFile(join(c.remoteDst(), 'f'), 'utf8'), 'old f\n', 'f still holds its old data');
  t.equal(await readFile(join(c.remoteDst(), 'keep'), 'utf8'), 'old keep\n', 'keep still holds its old data');
  t.equal(await readFile(join(c.remoteDst(), 'blocker'), 'utf8'), 'x', 'the blocker is untouched');
  const names = await readdir(c.remoteDst());
  t.same(names.sort(), ['blocker', 'f', 'keep'], 'no temp file left behind');
});

t.test('a fifo replaced by a file is backed up as a fifo to a --backup-dir on another filesystem (backup-crossdev-copy)', xdev, async (t) => {
  const c = await newCase(t, tr, 'push', [file('fifo', 'replaces the fifo\n')]);
  if (!shm) throw new Error('unreachable: skipped');
  const bak = await mkdtemp(join(shm, 'rrsyncd-bak-'));
  const localBak = await mkdtemp(join(shm, 'rrsyncd-bak-local-'));
  t.teardown(() => Promise.all([rm(bak, { recursive: true, force: true }), rm(localBak, { recursive: true, force: true })]));
  await c.seedDst([{ path: 'fifo', type: 'fifo', mtime: OLD }]);
  const env = { ...tr.env, NODE_OPTIONS: '', RRSYNCD_TEST_ROOT: '/', RRSYNCD_TEST_GRANT: JSON.stringify({ noLock: true }) };
  const remote = await run(RSYNC, ['-a', '-b', `--backup-dir=${bak}`, '-e', tr.rsh, 'src/', `x:${c.remoteDst()}/`], { cwd: c.dir, env });
  const local = await c.runLocal(['-a', '-b', `--backup-dir=${localBak}`]);
  t.equal(local.code, 0, local.stderr);
  t.equal(remote.code, local.code, remote.stderr);
  await c.compare(t, { ignoreDirMtimes: true });
  t.ok((await stat(join(bak, 'fifo'))).isFIFO(), 'the backup is a fifo');
  await c.compareDirs(t, localBak, bak, { ignoreDirMtimes: true }, 'backup dir as the reference makes it');
});

t.test('a --temp-dir on another filesystem: the file is copied across (chmod-temp-dir)', xdev, async (t) => {
  const c = await newCase(t, tr, 'push', src());
  if (!shm) throw new Error('unreachable: skipped');
  const temp = await mkdtemp(join(shm, 'rrsyncd-temp-'));
  t.teardown(() => rm(temp, { recursive: true, force: true }));
  await c.seedDst(dst());
  const env = { ...tr.env, NODE_OPTIONS: '', RRSYNCD_TEST_ROOT: '/', RRSYNCD_TEST_GRANT: JSON.stringify({ noLock: true }) };
  for (const proto of [29, 32]) {
    const args = ['-a', `--protocol=${proto}`, `--temp-dir=${temp}`];
    const remote = await run(RSYNC, [...args, '-e', tr.rsh, 'src/', `x:${c.remoteDst()}/`], { cwd: c.dir, env });
    const local = await c.runLocal(args);
    t.equal(remote.code, 0, remote.stderr);
    t.equal(local.code, 0, local.stderr);
    await c.compare(t, { ignoreDirMtimes: true });
  }
  t.same(await readdir(temp), [], 'nothing left in the temp dir');
});
