import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Sandbox, SandboxError } from '../../src/sandbox/sandbox.js';
import { nativeBinding } from '../../src/sandbox/native.js';
import { abs, tmpDir as tmpRoot } from './sandbox-helpers.js';

// Runs as root here: permission-denied paths are not exercised (root bypasses DAC).

const NAMES = ['plain', 'with space', 'new\nline', '-leading-dash', '\xff\xfe-not-utf8', 'tab\there', '.hidden'];

t.test('open: missing root and non-directory root fail', async (t) => {
  const root = tmpRoot(t);
  t.throws(() => Sandbox.open(path.join(root, 'nope')), { code: 'ENOENT' });
  fs.writeFileSync(path.join(root, 'f'), 'x');
  t.throws(() => Sandbox.open(path.join(root, 'f')), { code: 'ENOTDIR' });
});

t.test('unnamed files: invisible until named, never replace an existing name', { skip: nativeBinding ? false : 'unnamed files need the native addon' }, async (t) => {
  const root = tmpRoot(t);
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  sb.mkdir('d', 0o755);
  const fd = sb.createAnonymous('d', 0o640);
  t.not(fd, null, 'O_TMPFILE works here (ext4/tmpfs) with the native addon built');
  if (fd === null) return;
  const data = Buffer.from('complete data\n');
  sb.write(fd, data, 0, data.length, 0);
  t.same(fs.readdirSync(abs(root, 'd')), [], 'nothing visible while it is written');
  fs.writeFileSync(abs(root, 'd/taken'), 'keep me');
  t.equal(sb.linkAnonymous(fd, 'd/taken'), false, 'an existing name is not replaced');
  t.equal(fs.readFileSync(abs(root, 'd/taken'), 'utf8'), 'keep me');
  t.equal(sb.linkAnonymous(fd, 'd/new'), true);
  t.ok(fs.readFileSync(abs(root, 'd/new')).equals(data), 'named with its content');
  t.equal((sb.lstat('d/new')?.mode ?? 0) & 0o777, 0o640 & ~process.umask(), 'created with the asked mode (less the umask)');
  const temp = sb.nameAnonymous(fd, 'd', 'x y');
  t.match(temp, /^d\/\.x y\.[A-Za-z0-9]{6}$/, 'a temp name as createTemp makes them');
  t.equal(sb.lstat(temp)?.ino, sb.lstat('d/new')?.ino, 'the same file under both names');
  sb.close(fd);
  t.throws(() => sb.linkAnonymous(fd, 'd/late'), { name: 'SandboxError' }, 'a closed fd cannot be named');

  // Closed without a name: it is gone, nothing is left in the directory.
  const gone = sb.createAnonymous('d');
  sb.write(gone!, data, 0, data.length, 0);
  sb.close(gone!);
  t.same(fs.readdirSync(abs(root, 'd')).sort(), ['.x y' + temp.slice(6), 'new', 'taken'].sort());
});

t.test('readdir and lstatChildren: every awkward name, sorted bytewise, stats as lstat gives them', async (t) => {
  const root = tmpRoot(t);
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  sb.mkdir('d', 0o755);
  for (const name of NAMES) fs.writeFileSync(abs(root, `d/${name}`), name);
  fs.symlinkSync('/etc/passwd', abs(root, 'd/link'));
  fs.mkdirSync(abs(root, 'd/sub'));
  const names = sb.readdir('d');
  t.same(names, [...NAMES, 'link', 'sub'].sort(), 'all names, in byte order (as node:fs lists them)');
  const stats = sb.lstatChildren('d', [...names, 'missing']);
  t.equal(stats.length, names.length + 1);
  names.forEach((n, i) => t.same(stats[i], sb.lstat(`d/${n}`), `same stat as lstat for ${JSON.stringify(n)}`));
  t.equal((stats[names.indexOf('link')] as { type: string }).type, 'symlink', 'a symlink leaf is not followed');
  t.equal(stats[names.length], null, 'a missing name gives null');
  t.throws(() => sb.lstatChildren('d', ['a/b']), { code: 'EUNSAFE' }, 'names must be single components');
  t.throws(() => sb.lstatChildren('d', ['..']), { code: 'EUNSAFE' });
  t.throws(() => sb.lstatChildren('nope', ['x']), { name: 'SandboxError' }, 'a missing directory fails as a whole');
});

t.test('every operation on a normal tree, with awkward byte names', async (t) => {
  const root = tmpRoot(t);
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  for (const name of NAMES) {
    const dir = `d-${name}`;
    sb.mkdir(dir, 0o755);
    t.equal(sb.lstat(dir)?.type, 'dir', `mkdir ${JSON.stringify(name)}`);

    const { fd, rel } = sb.createTemp(dir, name);
    t.ok(rel.startsWith(`${dir}/.`), 'temp in the dir, dot-prefixed');
    t.match(rel.slice(dir.length + 1), /^\..*\.[A-Za-z0-9]{6}$/s);
    const data = Buffer.from(`content of ${name}\n`, 'latin1');
    sb.write(fd, data, 0, data.length, 0);
    sb.fsetAttrs(fd, { mode: 0o640, mtime: { sec: 1_600_000_000, nsec: 123_456_000 } });
    sb.fsync(fd);
    sb.close(fd);
    const file = `${dir}/${name}`;
    sb.rename(rel, file);
    t.ok(fs.readFileSync(abs(root, file)).equals(data), 'content landed under the byte name');
    const st = sb.lstat(file);
    t.equal(st?.type, 'file');
    t.equal((st?.mode ?? 0) & 0o7777, 0o640);
    t.equal(st?.mtimeSec, 1_600_000_000);
    t.equal(st?.mtimeNsec, 123_456_000);
    t.equal(st?.size, data.length);

    t.ok(sb.readdir(dir).includes(name), 'readdir returns the byte name');

    const r = sb.openRead(file, { dev: st!.dev, ino: st!.ino });
    const buf = Buffer.alloc(100);
    const n = sb.read(r.fd, buf, 0, 100, 0);
    t.ok(buf.subarray(0, n).equals(data));
    t.equal(r.stat.ino, st!.ino);
    sb.close(r.fd);

    const w = sb.openWrite(file);
    sb.write(w.fd, Buffer.from('XY'), 0, 2, 0);
    sb.truncate(w.fd, 4);
    t.equal(sb.fstat(w.fd).size, 4);
    sb.close(w.fd);
    t.equal(fs.readFileSync(abs(root, file)).toString('latin1'), 'XYnt');

    sb.setAttrs(file, { mode: 0o600, uid: 1234, gid: 4321, mtime: { sec: 1_000, nsec: 5_000 }, atime: { sec: 2_000, nsec: 0 } });
    const st2 = sb.lstat(file)!;
    t.same([st2.mode & 0o7777, st2.uid, st2.gid, st2.mtimeSec, st2.mtimeNsec, st2.atimeSec], [0o600, 1234, 4321, 1000, 5000, 2000]);

    sb.symlink(`target ${name}`, `${dir}/link`);
    t.equal(sb.readlink(`${dir}/link`), `target ${name}`);
    t.equal(sb.lstat(`${dir}/link`)?.type, 'symlink');
    sb.setAttrs(`${dir}/link`, { mtime: { sec: 3_000, nsec: 7_000 } }, { isSymlink: true });
    t.equal(sb.lstat(`${dir}/link`)?.mtimeSec, 3000);

    sb.link(file, `${dir}/hard`);
    t.equal(sb.lstat(`${dir}/hard`)?.ino, st2.ino);
    t.equal(sb.lstat(file)?.nlink, 2);

    sb.unlink(`${dir}/hard`);
    t.equal(sb.lstat(`${dir}/hard`), null);
    sb.mkdir(`${dir}/sub`, 0o700);
    sb.rmdir(`${dir}/sub`);
    t.equal(sb.lstat(`${dir}/sub`), null);
  }
  sb.mkdirp('p/q/r\xff/s', 0o755);
  t.equal(sb.lstat('p/q/r\xff/s')?.type, 'dir');
  sb.mkdirp('p/q/r\xff/s', 0o755);
  sb.removeTree('p');
  t.equal(sb.lstat('p'), null);
  sb.removeTree('p'); // missing is fine
  t.same(new Set(sb.readdir('')), new Set(NAMES.map((n) => `d-${n}`)));
  sb.setAttrs('', { mode: 0o750, mtime: { sec: 1_234_567, nsec: 890_000 } });
  const rootSt = fs.statSync(root, { bigint: true });
  t.equal(Number(rootSt.mode) & 0o7777, 0o750, 'setAttrs on the root itself');
  t.equal(rootSt.mtimeNs, 1_234_567_000_890_000n);
  t.equal(sb.lstat('')?.type, 'dir');
  t.equal(sb.lstat('.')?.type, 'dir');
});

t.test('lstat of missing things, also under a missing or non-directory parent', async (t) => {
  const root = tmpRoot(t);
  fs.writeFileSync(path.join(root, 'file'), 'x');
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  t.equal(sb.lstat('nope'), null);
  t.equal(sb.lstat('nope/deeper/x'), null);
  t.equal(sb.lstat('file/x'), null);
  t.throws(() => sb.mkdir('nope/x', 0o755), { code: 'ENOENT' });
  t.throws(() => sb.mkdir('file', 0o755), { code: 'EEXIST' });
  t.throws(() => sb.mkdir('file/x', 0o755), { code: 'ENOTDIR' });
  t.throws(() => sb.openRead('nope'), { code: 'ENOENT' });
  t.throws(() => sb.rename('', 'x'), { code: 'EINVAL' });
  t.throws(() => sb.removeTree(''), { code: 'EINVAL' });
});

t.test('validation errors are EUNSAFE SandboxErrors and touch nothing', async (t) => {
  const root = tmpRoot(t);
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'a//b', 'a\0b']) {
    t.throws(() => sb.mkdir(bad, 0o755), { code: 'EUNSAFE' }, `mkdir ${JSON.stringify(bad)}`);
    t.throws(() => sb.lstat(bad), { code: 'EUNSAFE' });
    t.throws(() => sb.createTemp(bad, 'f'), { code: 'EUNSAFE' });
    t.throws(() => sb.rename('x', bad), { code: 'EUNSAFE' });
  }
  t.throws(() => sb.createTemp('', 'a/b'), { code: 'EUNSAFE' });
  t.throws(() => sb.createTemp('', '..'), { code: 'EUNSAFE' });
  t.throws(() => sb.symlink('', 'l'), { code: 'EUNSAFE' });
  const err = (() => {
    try {
      sb.lstat('a/../b');
    } catch (e) {
      return e;
    }
    return null;
  })();
  t.ok(err instanceof SandboxError);
  t.match((err as Error).message, 'unsafe path "a/../b"');
  t.same(fs.readdirSync(root), []);
});

t.test('createTemp naming: leading dot not doubled, long names fit NAME_MAX, noLeadingDot', async (t) => {
  const root = tmpRoot(t);
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  const a = sb.createTemp('', '.foo');
  t.match(a.rel, /^\.foo\.[A-Za-z0-9]{6}$/);
  sb.close(a.fd);
  const b = sb.createTemp('', 'y'.repeat(255));
  t.ok(b.rel.length <= 255);
  sb.close(b.fd);
  const c = sb.createTemp('', 'bar', 0o600, { noLeadingDot: true });
  t.match(c.rel, /^bar\.[A-Za-z0-9]{6}$/);
  t.equal(fs.statSync(path.join(root, c.rel)).mode & 0o777, 0o600);
  sb.close(c.fd);
});

t.test('openRead refuses non-regular files and a changed inode (ECHANGED)', async (t) => {
  const root = tmpRoot(t);
  fs.mkdirSync(path.join(root, 'dir'));
  fs.writeFileSync(path.join(root, 'f'), 'one');
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  sb.mkfifo('fifo', 0o644);
  t.equal(sb.lstat('fifo')?.type, 'fifo');
  t.throws(() => sb.openRead('fifo'), { code: 'EBADTYPE' }, 'a fifo is never opened (would block)');
  t.throws(() => sb.openRead('dir'), { code: 'EISDIR' });
  const st = sb.lstat('f')!;
  fs.writeFileSync(path.join(root, 'f2'), 'two');
  fs.renameSync(path.join(root, 'f2'), path.join(root, 'f'));
  t.throws(() => sb.openRead('f', { dev: st.dev, ino: st.ino }), { code: 'ECHANGED' });
});

t.test('mknod creates devices (root) under byte names; sockets are ENOTSUP', async (t) => {
  const root = tmpRoot(t);
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  sb.mknod('null\xff', 0o020644, 0x0103);
  const st = sb.lstat('null\xff')!;
  t.equal(st.type, 'chr');
  t.equal(st.rdev, 0x0103);
  t.equal(st.mode & 0o7777, 0o644);
  sb.mknod('fifo2', 0o010600, 0);
  t.equal(sb.lstat('fifo2')?.type, 'fifo');
  t.throws(() => sb.mknod('null\xff', 0o020644, 0x0103), { code: 'EEXIST' });
  t.throws(() => sb.mknod('sock', 0o140644, 0), { code: 'ENOTSUP' });
  t.same(sb.readdir('').sort(), ['fifo2', 'null\xff'], 'no temp names left behind');
});

t.test('time precision: µs through Node, exact ns and pre-1970 via touch', async (t) => {
  const root = tmpRoot(t);
  fs.writeFileSync(path.join(root, 'f'), 'x');
  fs.symlinkSync('somewhere', path.join(root, 'lz'));
  const approx = Sandbox.open(root);
  const exact = Sandbox.open(root, { exactTimes: true });
  t.teardown(() => {
    approx.close();
    exact.close();
  });
  const ns = (): bigint => fs.lstatSync(path.join(root, 'f'), { bigint: true }).mtimeNs;
  approx.setAttrs('f', { mtime: { sec: 1_700_000_000, nsec: 123_456_789 } });
  // With the native addon (the normal build) every time is exact; without it Node's µs limit shows.
  t.equal(
    ns(),
    nativeBinding ? 1_700_000_000_123_456_789n : 1_700_000_000_123_456_000n,
    nativeBinding ? 'native utimensat: nanosecond exact' : 'Node path: truncated to the microsecond',
  );
  exact.setAttrs('f', { mtime: { sec: 1_700_000_000, nsec: 123_456_789 } });
  t.equal(ns(), 1_700_000_000_123_456_789n, 'exactTimes: nanosecond exact');
  approx.setAttrs('f', { mtime: { sec: -6, nsec: 750_000_000 } });
  t.equal(ns(), -5_250_000_000n, 'pre-1970 (Node would have used "now")');
  t.equal(approx.lstat('f')?.mtimeSec, -6);
  t.equal(approx.lstat('f')?.mtimeNsec, 750_000_000);

  const { fd } = exact.openWrite('f');
  exact.fsetAttrs(fd, { mtime: { sec: 1_234_567_890, nsec: 987_654_321 }, atime: { sec: 5, nsec: 1 } });
  exact.close(fd);
  const st = fs.lstatSync(path.join(root, 'f'), { bigint: true });
  t.equal(st.mtimeNs, 1_234_567_890_987_654_321n);
  t.equal(st.atimeNs, 5_000_000_001n);

  exact.setAttrs('lz', { mtime: { sec: 1_700_000_001, nsec: 1 } }, { isSymlink: true });
  t.equal(fs.lstatSync(path.join(root, 'lz'), { bigint: true }).mtimeNs, 1_700_000_001_000_000_001n, 'symlink exact via touch -h');
  t.same(fs.readdirSync(root).sort(), ['f', 'lz'], 'temporary hard link removed');
});
