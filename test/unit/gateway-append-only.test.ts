// The -append-only change rules (src/gateway/append-only.ts) on a real directory, through the
// gateway every session uses: what existed before the session is never deleted, replaced,
// written or re-moded (a directory keeps its mode silently, its mtime may change); what the
// session made is its own. The real client rarely reaches these rules (--ignore-existing is
// forced first), so each one is driven here directly.
import t, { type Test } from 'tap';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { openGateway, type Gateway } from '../../src/gateway/index.js';
import { defaultGrant } from '../../src/policy/grant.js';
import { parseServerArgs } from '../../src/policy/options.js';
import { applyGrant } from '../../src/policy/restrict.js';
import { grantFromRrsyncCommand } from '../../src/ssh/authorized-keys.js';
import { tenantGrant } from '../../src/ssh/key-ring.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';

function setup(t: Test): { root: string; gw: Gateway } {
  const root = mkdtempSync(join(tmpdir(), 'rrsyncd-ao-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(root, 'old'), 'old data\n', { mode: 0o644 });
  mkdirSync(join(root, 'olddir'), { mode: 0o755 });
  symlinkSync('old', join(root, 'oldlink'));
  utimesSync(join(root, 'olddir'), 1_000_000, 1_000_000);
  const sandbox = Sandbox.open(root);
  t.teardown(() => sandbox.close());
  const gw = openGateway(sandbox, { ...defaultGrant(root), appendOnly: true }, pino({ level: 'silent' }), {});
  return { root, gw };
}

const EPERM = { code: 'EPERM', message: /-append-only/ };

t.test('existing entries: no delete, rename over, write, truncate or attribute change', async (t) => {
  const { root, gw } = setup(t);
  t.throws(() => gw.unlink('old', 'make-room'), EPERM, 'unlink');
  t.throws(() => gw.removeTree('olddir', 'make-room'), EPERM, 'rm -r of a directory');
  t.throws(() => gw.unlink('oldlink'), EPERM, 'a symlink');
  t.throws(() => gw.rename('old', 'moved'), EPERM, 'renaming it away');
  const tmp = gw.createTemp('', 'old', 0o600);
  gw.close(tmp.fd);
  t.throws(() => gw.rename(tmp.rel, 'old'), EPERM, 'a temp file renamed over it');
  t.throws(() => gw.openInPlace('old'), EPERM, '--inplace / --append');
  t.throws(() => gw.setAttrs('old', { mode: 0o000 }), EPERM, 'chmod');
  t.throws(() => gw.setAttrs('old', { mtime: { sec: 1, nsec: 0 } }), EPERM, 'utime of a file');
  t.throws(() => gw.setAttrs('oldlink', { mtime: { sec: 1, nsec: 0 } }, { isSymlink: true }), EPERM, 'utime of a symlink');
  t.doesNotThrow(() => gw.setAttrs('old', { mode: 0o644 }), 'asking for the mode it has is no change');
  t.equal(readFileSync(join(root, 'old'), 'utf8'), 'old data\n');
  t.equal(lstatSync(join(root, 'old')).mode & 0o7777, 0o644);
  gw.unlink(tmp.rel, 'temp');
});

t.test('an existing directory keeps its mode silently; its mtime may change', async (t) => {
  const { root, gw } = setup(t);
  gw.setAttrs('olddir', { mode: 0o000, mtime: { sec: 2_000_000, nsec: 0 } });
  const st = lstatSync(join(root, 'olddir'));
  t.equal(st.mode & 0o7777, 0o755, 'mode kept');
  t.equal(st.mtimeMs, 2_000_000_000, 'mtime set');
  gw.setAttrs('', { mode: 0o000 });
  t.not(lstatSync(root).mode & 0o7777, 0, 'the root too');
});

t.test("the session's own entries are its own; a hard link to an old file is not", async (t) => {
  const { root, gw } = setup(t);
  gw.mkdir('newdir', 0o700);
  gw.setAttrs('newdir', { mode: 0o750 });
  t.equal(lstatSync(join(root, 'newdir')).mode & 0o7777, 0o750, 'a new directory takes its mode');
  const tmp = gw.createTemp('newdir', 'f', 0o600);
  gw.write(tmp.fd, Buffer.from('new\n'), 0, 4, 0);
  gw.fsetAttrs(tmp.fd, { mode: 0o640 });
  gw.close(tmp.fd);
  gw.rename(tmp.rel, 'newdir/f');
  gw.setAttrs('newdir/f', { mtime: { sec: 5, nsec: 0 } });
  t.equal(lstatSync(join(root, 'newdir/f')).mtimeMs, 5000, 'its own file takes its times');
  gw.symlink('f', 'newdir/l');
  gw.setAttrs('newdir/l', { mtime: { sec: 6, nsec: 0 } }, { isSymlink: true });
  t.equal(lstatSync(join(root, 'newdir/l')).mtimeMs, 6000, 'its own symlink too');
  gw.link('old', 'alias');
  t.throws(() => gw.setAttrs('alias', { mode: 0o777 }), EPERM, 'chmod through a new name of an old inode');
  t.throws(() => gw.openInPlace('alias'), EPERM, 'writing through it');
  t.equal(lstatSync(join(root, 'old')).mode & 0o7777, 0o644);
  linkSync(join(root, 'old'), join(root, 'outside-made'));
  t.throws(() => gw.unlink('outside-made'), EPERM, 'an entry made by someone else during the session counts as old');
});

t.test('-append-only in command="rrsync …", tenant appendOnly, and the options it refuses or forces', async (t) => {
  const fromKey = grantFromRrsyncCommand('rrsync -append-only backups', '/srv');
  t.match(fromKey, { root: '/srv/backups', appendOnly: true, noDelete: true, noOverwrite: true });
  t.match(tenantGrant({ name: 'acme', keys: [], appendOnly: true }, '/srv'), { appendOnly: true, noDelete: true, noOverwrite: true });
  // the grant alone (as a test harness passes it) implies the rest
  const bare = { ...defaultGrant('/srv/b'), appendOnly: true };
  const push = (args: string) => applyGrant(parseServerArgs(['rsync', '--server', ...args.split(' '), '.', 'dst/']), bare);
  t.equal(push('-logDtpre.iLsfxCIvu').ignoreExisting, true, '--ignore-existing is forced');
  for (const opt of ['--delete', '--remove-source-files', '--backup', '--backup-dir=b', '--partial-dir=p', '--delay-updates']) {
    t.throws(() => push(`-logDtpre.iLsfxCIvu ${opt}`), { code: 1, message: /is not allowed here/ }, opt);
  }
});
