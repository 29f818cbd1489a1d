import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { tmpDir } from './sandbox-helpers.js';
import { snapshotTreeSync, treeChangeLines } from '../helpers/tree.js';

// CVE-2024-12087 / CVE-2026-29518 fixtures ("Symlink then child"). Runs as root, so a failure
// here would really write outside: the targets are a private temp dir, and for `d -> /` only
// uniquely named creations and read-only opens are attempted.

interface Fixture {
  base: string;
  root: string;
  outside: string;
  sb: Sandbox;
}

function fixture(t: { teardown(fn: () => void): void }, cacheSize?: number): Fixture {
  const base = tmpDir(t, 'sbx-conf-');
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(root);
  fs.mkdirSync(path.join(outside, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(outside, 'x'), 'outside secret');
  fs.symlinkSync('x', path.join(outside, 'lnk'));
  fs.symlinkSync('/', path.join(root, 'slash'));
  fs.symlinkSync('../outside', path.join(root, 'l'));
  fs.mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
  fs.symlinkSync('../../../outside', path.join(root, 'a', 'b', 'c'));
  fs.symlinkSync('../outside/x', path.join(root, 'leaf'));
  fs.symlinkSync('../outside', path.join(root, 'leafdir'));
  fs.writeFileSync(path.join(root, 'inside'), 'in');
  const sb = Sandbox.open(root, cacheSize === undefined ? {} : { dirCacheSize: cacheSize });
  t.teardown(() => sb.close());
  return { base, root, outside, sb };
}

const THROUGH = ['l', 'a/b/c'];

for (const cacheSize of [64, 0]) {
  t.test(`operations through a symlinked parent fail with ELOOP (cache ${cacheSize})`, async (t) => {
    const { outside, sb } = fixture(t, cacheSize);
    const before = snapshotTreeSync(outside);
    for (const via of THROUGH) {
      const ops: Array<[string, () => unknown]> = [
        ['lstat', () => sb.lstat(`${via}/x`)],
        ['readdir', () => sb.readdir(via)],
        ['readlink', () => sb.readlink(`${via}/lnk`)],
        ['mkdir', () => sb.mkdir(`${via}/new`, 0o777)],
        ['mkdirp', () => sb.mkdirp(`${via}/new/deeper`, 0o777)],
        ['createTemp', () => sb.createTemp(via, 'x')],
        ['rename in', () => sb.rename('inside', `${via}/x`)],
        ['rename out', () => sb.rename(`${via}/x`, 'stolen')],
        ['unlink', () => sb.unlink(`${via}/x`)],
        ['rmdir', () => sb.rmdir(`${via}/sub`)],
        ['removeTree', () => sb.removeTree(`${via}/sub`)],
        ['setAttrs', () => sb.setAttrs(`${via}/x`, { mode: 0o777, uid: 1, mtime: { sec: 1, nsec: 0 } })],
        ['openRead', () => sb.openRead(`${via}/x`)],
        ['openWrite', () => sb.openWrite(`${via}/x`)],
        ['symlink', () => sb.symlink('/etc', `${via}/evil`)],
        ['link from', () => sb.link(`${via}/x`, 'hard')],
        ['link to', () => sb.link('inside', `${via}/hard`)],
        ['mkfifo', () => sb.mkfifo(`${via}/fifo`, 0o600)],
      ];
      // An unnamed (O_TMPFILE) file made in the root, then named through the symlinked parent.
      const anon = sb.createAnonymous('');
      if (anon !== null) {
        ops.push(
          ['createAnonymous', () => sb.createAnonymous(via)],
          ['linkAnonymous', () => sb.linkAnonymous(anon, `${via}/named`)],
          ['nameAnonymous', () => sb.nameAnonymous(anon, via, 'named')],
        );
      }
      for (const [name, op] of ops) t.throws(op, { name: 'SandboxError', code: 'ELOOP' }, `${name} via ${via}`);
      if (anon !== null) sb.close(anon);
    }
    t.same(treeChangeLines(before, snapshotTreeSync(outside)), [], 'outside untouched');
    t.notOk(fs.existsSync(path.join(fixtureRootOf(sb), 'stolen')));
  });
}

function fixtureRootOf(sb: Sandbox): string {
  return sb.rootPath;
}

t.test('d -> / : creations and reads through it fail, nothing appears in /', async (t) => {
  const { sb } = fixture(t);
  const probe = `rrsyncd-sbx-probe-${process.pid}-${Date.now()}`;
  t.throws(() => sb.mkdir(`slash/${probe}`, 0o755), { code: 'ELOOP' });
  t.throws(() => sb.mkdirp(`slash/tmp/${probe}`, 0o755), { code: 'ELOOP' });
  t.throws(() => sb.createTemp('slash/tmp', probe), { code: 'ELOOP' });
  t.throws(() => sb.rename('inside', `slash/tmp/${probe}`), { code: 'ELOOP' });
  t.throws(() => sb.symlink('x', `slash/tmp/${probe}`), { code: 'ELOOP' });
  t.throws(() => sb.openRead('slash/etc/passwd'), { code: 'ELOOP' });
  t.throws(() => sb.openWrite('slash/etc/passwd'), { code: 'ELOOP' });
  t.throws(() => sb.lstat('slash/etc'), { code: 'ELOOP' });
  t.throws(() => sb.readdir('slash'), { code: 'ELOOP' });
  t.notOk(fs.existsSync(`/${probe}`));
  t.notOk(fs.existsSync(`/tmp/${probe}`));
  t.ok(fs.existsSync(path.join(sb.rootPath, 'inside')));
});

t.test('a symlink leaf is never followed', async (t) => {
  const { root, outside, sb } = fixture(t);
  const before = snapshotTreeSync(outside);
  t.throws(() => sb.openRead('leaf'), { code: 'ELOOP' });
  t.throws(() => sb.openWrite('leaf'), { code: 'ELOOP' });
  t.throws(() => sb.setAttrs('leaf', { mode: 0o777 }), { code: 'ELOOP' });
  t.throws(() => sb.setAttrs('leafdir', { mode: 0o777 }), { code: 'ELOOP' });
  t.throws(() => sb.mkdir('leafdir', 0o755), { code: 'EEXIST' });
  t.throws(() => sb.createTemp('leafdir', 'x'), { code: 'ELOOP' });
  t.throws(() => sb.readdir('leafdir'), { code: 'ELOOP' });
  t.throws(() => sb.mkdirp('leafdir', 0o755), { code: 'ELOOP' });
  // times and owner go to the link itself
  sb.setAttrs('leaf', { uid: 4242, gid: 4242, mtime: { sec: 12345, nsec: 0 } }, { isSymlink: true });
  sb.setAttrs('leafdir', { mtime: { sec: 1, nsec: 0 } }, { isSymlink: true });
  const st = fs.lstatSync(path.join(root, 'leaf'));
  t.equal(st.uid, 4242);
  t.equal(Math.floor(st.mtimeMs / 1000), 12345);
  t.equal(sb.lstat('leaf')?.type, 'symlink');
  // hard-linking a symlink links the symlink itself
  sb.link('leaf', 'leaf2');
  t.equal(sb.lstat('leaf2')?.type, 'symlink');
  // rename/unlink/removeTree of a symlink act on the link
  sb.rename('leaf2', 'leaf3');
  sb.unlink('leaf3');
  sb.removeTree('leafdir');
  t.equal(sb.lstat('leafdir'), null);
  // a symlink planted inside a tree being removed is unlinked, not descended
  fs.mkdirSync(path.join(root, 'tree', 'deep'), { recursive: true });
  fs.symlinkSync('../../../outside', path.join(root, 'tree', 'deep', 'out'));
  sb.removeTree('tree');
  t.equal(sb.lstat('tree'), null);
  t.same(treeChangeLines(before, snapshotTreeSync(outside)), [], 'outside untouched');
});

t.test('a cached directory swapped for a symlink afterwards keeps pointing at the pinned inode', async (t) => {
  const { root, outside, sb } = fixture(t);
  const before = snapshotTreeSync(outside);
  sb.mkdir('d', 0o755);
  sb.mkdir('d/e', 0o755); // caches 'd'
  fs.renameSync(path.join(root, 'd'), path.join(root, 'd.old'));
  fs.symlinkSync('../outside', path.join(root, 'd'));
  const { fd, rel } = sb.createTemp('d', 'f');
  sb.close(fd);
  sb.rename(rel, 'd/f');
  t.ok(fs.existsSync(path.join(root, 'd.old', 'f')), 'landed in the pinned (moved) directory');
  sb.dropDirCache();
  t.throws(() => sb.createTemp('d', 'g'), { code: 'ELOOP' }, 'after a fresh walk the symlink is refused');
  t.same(treeChangeLines(before, snapshotTreeSync(outside)), [], 'outside untouched');
});
