// Issue 15 item 4: as root, a pushed set-uid/set-gid file must not keep those bits unless the
// grant allows chown; a tenant's incomingChmod is applied after the stripping.
import t from 'tap';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeKey, run, RSYNC, startServer } from '../helpers/server.js';

const asRoot = process.getuid?.() === 0;

t.test(
  'set-uid/set-gid bits are stripped without allowChown, kept with it; incomingChmod decides last',
  { skip: asRoot ? false : 'set-uid files only matter when the server runs as root' },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'rrsyncd-setid-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'suid'), '#!/bin/sh\nid\n');
    await chmod(join(dir, 'src', 'suid'), 0o6755);
    const keys: Record<string, string> = {};
    for (const name of ['chown', 'forced']) keys[name] = await makeKey(join(dir, name));
    const pub = async (name: string) => (await readFile(`${keys[name]}.pub`, 'utf8')).trim();
    const srv = await startServer({
      config: {
        tenants: [
          { name: 'chown', keys: [await pub('chown')], limits: { allowChown: true } },
          { name: 'forced', keys: [await pub('forced')], limits: { incomingChmod: 'Fu+s' } },
        ],
      },
    });
    t.teardown(() => srv.cleanup());
    for (const name of ['chown', 'forced']) await mkdir(join(srv.root, name));
    const push = (key: string | undefined) =>
      run(RSYNC, ['-e', `ssh ${key ? `-i ${key} ` : ''}${srv.sshArgs.join(' ')}`, '-a', `${dir}/src/`, srv.remote('in/')]);
    const modeOf = async (p: string) => ((await stat(join(srv.root, p, 'suid'))).mode & 0o7777).toString(8);

    t.equal((await push(undefined)).code, 0);
    t.equal(await modeOf('in'), '755', 'default grant (allowChown off): set-id bits stripped');
    t.equal((await push(keys.chown)).code, 0);
    t.equal(await modeOf('chown/in'), '6755', 'allowChown: kept');
    t.equal((await push(keys.forced)).code, 0);
    t.equal(await modeOf('forced/in'), '4755', 'incomingChmod Fu+s after stripping: the admin decides');
  },
);
