// -H over hard-linked FIFOs and devices with devices granted (issue 17 item 10): the later members
// of a group are hard-linked to the first one, itemized as rsync does (`hD... b2 => b`), at the
// protocols whose hard-link encodings differ (dev/ino below 30, the leader's index from 30).
import { lstat, mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { run, startServer, type TestServer } from '../helpers/server.js';
import { grantAsTenant } from '../helpers/tenant.js';
import { localRsync } from '../helpers/tree.js';

const GRANT = 'command="rrsync -no-lock /"';
const asRoot = process.getuid?.() === 0;
let srv: TestServer;
let base: string;

t.before(async () => {
  if (!asRoot) return;
  srv = await startServer({ authorizedKeysOptions: GRANT, root: '/', config: {} });
  await grantAsTenant(srv, GRANT, { root: '/', limits: { allowDevices: true } });
  base = await mkdtemp(join(await realpath(tmpdir()), 'rrsyncd-hlinkdev-'));
});
t.teardown(async () => {
  await srv?.cleanup();
  if (base) await rm(base, { recursive: true, force: true });
});

const PAIRS = [['p', 'p2'], ['p', 'sub/p3'], ['b', 'b2'], ['c', 'sub/c2']] as const;

for (const proto of [29, 30, 32]) {
  t.test(`-aHi --protocol=${proto}: devices and FIFOs linked as the reference links them`, { skip: asRoot ? false : 'mknod needs root' }, async (t) => {
    const dir = join(base, `p${proto}`);
    await mkdir(join(dir, 's', 'sub'), { recursive: true });
    const script = 'mkfifo s/p && ln s/p s/p2 && ln s/p s/sub/p3 && mknod s/b b 1 3 && ln s/b s/b2 && mknod s/c c 1 3 && ln s/c s/sub/c2 && mkfifo s/lone';
    const made = await run('sh', ['-c', script], { cwd: dir });
    t.equal(made.code, 0, made.stderr);
    for (const round of ['new', 'again']) {
      const opts = ['-aHi', `--protocol=${proto}`];
      const remote = await srv.rsync([...opts, 's/', `127.0.0.1:${dir}/d/`], { cwd: dir });
      const local = await localRsync([...opts, 's/', `${dir}/ref/`], { cwd: dir });
      t.equal(remote.code, local.code, remote.stderr);
      const lines = (out: string, d: string) => out.replaceAll(`${dir}/${d}`, 'DEST').split('\n').sort();
      t.same(lines(remote.stdout, 'd'), lines(local.stdout, 'ref'), `${round}: itemized as the reference`);
      for (const [a, b] of PAIRS) {
        const [sa, sb] = [await lstat(join(dir, 'd', a)), await lstat(join(dir, 'd', b))];
        t.equal(sb.ino, sa.ino, `${round}: d/${b} is a hard link of d/${a}`);
      }
    }
  });
}
