// Without -p, new files and directories get the sender's permissions masked by the server's
// umask, as rsync's dflt_perms (ACCESSPERMS & ~umask): the shipped systemd unit runs the server
// with UMask=0027, so nothing may land group-writable or world-readable then. The server here is
// the pipe harness (a child process per push) started under umask 027.
import t from 'tap';
import { chmod, lstat, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newCase, file, PIPE_RSH, type Transport } from './lib/interop.js';

const UMASK = 0o027;

async function umaskedRsh(dir: string): Promise<string> {
  const script = join(dir, 'umask-rsh.sh');
  await writeFile(script, `#!/bin/sh\numask ${UMASK.toString(8).padStart(4, '0')}\nexec ${PIPE_RSH} "$@"\n`);
  await chmod(script, 0o755);
  return script;
}

const src = () => [file('f.txt', 'data\n', { mode: 0o666 }), file('x.sh', '#!/bin/sh\n', { mode: 0o775 }), file('d/g.txt', 'g\n', { mode: 0o644 })];

for (const protocol of [27, 29, 31, 32]) {
  t.test(`-rt (no -p) under a server umask of 027 --protocol=${protocol}`, async (t) => {
    const scripts = await mkdtemp(join(tmpdir(), 'rrsyncd-umask-'));
    t.teardown(() => rm(scripts, { recursive: true, force: true }));
    const tr: Transport = { kind: 'pipe', rsh: await umaskedRsh(scripts), host: 'x', env: {} };
    const c = await newCase(t, tr, 'push', src());
    await chmod(join(c.src, 'd'), 0o777);
    const r = await c.runRemote(['-rt', `--protocol=${protocol}`]);
    t.equal(r.code, 0, 'the push succeeded', { stderr: r.stderr });
    const mode = async (rel: string): Promise<number> => (await lstat(join(c.remoteDst(), rel))).mode & 0o7777;
    t.equal((await mode('f.txt')).toString(8), (0o666 & ~UMASK).toString(8), 'a 0666 file lands 0640');
    t.equal((await mode('x.sh')).toString(8), (0o775 & ~UMASK).toString(8), 'a 0775 file lands 0750');
    t.equal((await mode('d/g.txt')).toString(8), (0o644 & ~UMASK).toString(8), 'a 0644 file lands 0640');
    t.equal((await mode('d')).toString(8), (0o777 & ~UMASK).toString(8), 'a 0777 directory lands 0750');
  });
}
