// -H over hard-linked FIFOs and devices with devices granted (issue 17 item 10): the later members
// of a group are hard-linked to the first one, itemized as rsync does (`hD... b2 => b`), at the
// protocols whose hard-link encodings differ (dev/ino below 30, the leader's index from 30).
// A later member is linked as soon as the generator reaches it (its leader, the first member,
// is made by then), so the client's lines come in the same order as the reference's.
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

/** The client's lines in order, without the run's volatile ones (-vv: the transport, the totals). */
function outputLines(out: string, dest: string): string[] {
  return out
    .replaceAll(dest, 'DEST')
    .split('\n')
    .filter((l) => l !== '' && !/^(opening connection |delta-transmission |total: matches=|sent |total size )/.test(l));
}

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
      t.same(outputLines(remote.stdout, `${dir}/d`), outputLines(local.stdout, `${dir}/ref`), `${round}: itemized as the reference, in order`);
      for (const [a, b] of PAIRS) {
        const [sa, sb] = [await lstat(join(dir, 'd', a)), await lstat(join(dir, 'd', b))];
        t.equal(sb.ino, sa.ino, `${round}: d/${b} is a hard link of d/${a}`);
      }
    }
  });
}

// devices_test.py's -aiHvv step: block3.5 (linked to block3) is itemized between block3 and char.
for (const proto of [29, 32]) {
  t.test(`-aiHvv --protocol=${proto}: the hD line of a linked device in list order`, { skip: asRoot ? false : 'mknod needs root' }, async (t) => {
    const dir = join(base, `vv${proto}`);
    await mkdir(join(dir, 's'), { recursive: true });
    const script = 'mknod s/block b 42 69 && mknod s/block3 b 105 73 && ln s/block3 s/block3.5 && mknod s/char c 41 67 && mkfifo s/fifo && mknod s/zz c 42 68 && ln s/zz s/zz2';
    const made = await run('sh', ['-c', script], { cwd: dir });
    t.equal(made.code, 0, made.stderr);
    for (const dry of [['-n'], []]) {
      const opts = ['-aiHvv', ...dry, `--protocol=${proto}`];
      const remote = await srv.rsync([...opts, 's/', `127.0.0.1:${dir}/d/`], { cwd: dir });
      const local = await localRsync([...opts, 's/', `${dir}/ref/`], { cwd: dir });
      t.equal(remote.code, local.code, remote.stderr);
      const got = outputLines(remote.stdout, `${dir}/d`);
      t.same(got, outputLines(local.stdout, `${dir}/ref`), `${opts.join(' ')}: the lines in the reference's order`);
      t.equal(got.indexOf('hD+++++++++ block3.5 => block3'), got.indexOf('cD+++++++++ block3') + 1, 'block3.5 right after block3');
    }
  });
}
