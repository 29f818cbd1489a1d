// --chown, --usermap and --groupmap on a push (issue 17 item 3): the receiver maps each id of the
// sender's file list by the first matching rule (uidlist.c), compared with a local rsync, at
// several protocols. Ownership is only set with the grant's allowChown (and as root); without it
// the rules are parsed and nothing is chowned.
import { chown, mkdir, mkdtemp, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startServer, type TestServer } from '../helpers/server.js';
import { grantAsTenant } from '../helpers/tenant.js';
import { localRsync } from '../helpers/tree.js';

const GRANT = 'command="rrsync -no-lock /"';
const asRoot = process.getuid?.() === 0;
let granted: TestServer;
let plain: TestServer;
let base: string;

t.before(async () => {
  if (!asRoot) return;
  granted = await startServer({ authorizedKeysOptions: GRANT, root: '/', config: {} });
  await grantAsTenant(granted, GRANT, { root: '/', limits: { allowChown: true } });
  plain = await startServer({ authorizedKeysOptions: GRANT, root: '/' });
  base = await mkdtemp(join(await realpath(tmpdir()), 'rrsyncd-idmap-'));
});
t.teardown(async () => {
  await granted?.cleanup();
  await plain?.cleanup();
  if (base) await rm(base, { recursive: true, force: true });
});

let n = 0;
/** s/ with files owned by root, by 5:7 and by 9:12 (daemon-ish numeric ids). */
async function source(): Promise<string> {
  const dir = join(base, `c${++n}`);
  await mkdir(join(dir, 's', 'sub'), { recursive: true });
  for (const [f, uid, gid] of [['root', 0, 0], ['five', 5, 7], ['sub/nine', 9, 12]] as const) {
    await writeFile(join(dir, 's', f), `${f}\n`);
    await chown(join(dir, 's', f), uid, gid);
  }
  return dir;
}

async function owners(root: string): Promise<string[]> {
  return Promise.all(['root', 'five', 'sub/nine'].map(async (f) => {
    const st = await stat(join(root, f));
    return `${f} ${st.uid}:${st.gid}`;
  }));
}

const CASES = [
  ['--chown=1:1'],
  ['--chown=daemon'],
  ['--chown=:bin'],
  ['--usermap=0:2,5-8:3,*:4'],
  ['--usermap=root:daemon', '--groupmap=7:1,1-20:bin'],
  ['--groupmap=r*:6'],
  ['--numeric-ids', '--usermap=*:1', '--groupmap=12:3'],
];
for (const proto of [29, 31, 32]) {
  for (const args of CASES) {
    t.test(`-a ${args.join(' ')} --protocol=${proto}`, { skip: asRoot ? false : 'ownership needs root' }, async (t) => {
      const dir = await source();
      const opts = ['-a', `--protocol=${proto}`, ...args];
      const remote = await granted.rsync([...opts, 's/', `127.0.0.1:${dir}/d/`], { cwd: dir });
      const local = await localRsync([...opts, 's/', `${dir}/ref/`], { cwd: dir });
      t.equal(remote.code, local.code, remote.stderr);
      t.same(await owners(join(dir, 'd')), await owners(join(dir, 'ref')), 'owners as the reference maps them');
    });
  }
}

t.test('without allowChown the map is parsed and nothing is chowned', { skip: asRoot ? false : 'ownership needs root' }, async (t) => {
  const dir = await source();
  const r = await plain.rsync(['-a', '--chown=1:1', 's/', `127.0.0.1:${dir}/d/`], { cwd: dir });
  t.equal(r.code, 0, r.stderr);
  t.same(await owners(join(dir, 'd')), ['root 0:0', 'five 0:0', 'sub/nine 0:0'], 'owned by the server user');
});

t.test('an unknown name after the colon: rsync\'s error, the rule dropped, the transfer goes on', { skip: asRoot ? false : 'ownership needs root' }, async (t) => {
  const dir = await source();
  const opts = ['-a', '--usermap=5:no-such-user-here,*:1'];
  const remote = await granted.rsync([...opts, 's/', `127.0.0.1:${dir}/d/`], { cwd: dir });
  const local = await localRsync([...opts, 's/', `${dir}/ref/`], { cwd: dir });
  t.equal(remote.code, local.code, remote.stderr);
  t.match(remote.stderr, /Unknown --usermap name on receiver: no-such-user-here/);
  t.same(await owners(join(dir, 'd')), await owners(join(dir, 'ref')), 'owners as the reference maps them');
});
