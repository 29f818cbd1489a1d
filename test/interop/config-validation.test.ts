// Item 7 of issue 15 with the real CLI and clients: bad settings fail check-config and serve with
// their reason, and what a client is told never shows the server's paths.
import t from 'tap';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeKey, runCli, startServer } from '../helpers/server.js';

async function tmp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-valid-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

t.test('from="127.0.0.1/33" fails check-config, and a login with it is refused with the reason logged', async (t) => {
  const dir = await tmp(t);
  const key = await makeKey(join(dir, 'k'));
  const ak = join(dir, 'ak');
  await writeFile(ak, `from="127.0.0.1/33" ${(await readFile(`${key}.pub`, 'utf8')).trim()}\n`);
  const r = await runCli(['check-config', '--authorized-keys', ak, '--root', dir, '--host-key', join(dir, 'hk')]);
  t.equal(r.code, 1);
  t.match(r.stderr, `${ak}:1: key SHA256:`);
  t.match(r.stderr, 'unusable: from="127.0.0.1/33": "127.0.0.1/33": bad mask length (0-32)');

  const srv = await startServer({ authorizedKeysOptions: 'from="127.0.0.1/33"' });
  t.teardown(() => srv.cleanup());
  await srv.waitForLog((l) => l.msg === 'authorized key skipped' && /bad mask length/.test(String(l.problem)));
  t.equal((await srv.ssh('true')).code, 255);
  const rec = await srv.waitForLog((l) => l.event === 'connection' && l.auth === 'failed');
  t.match(rec.reason, /key unusable: from="127\.0\.0\.1\/33": .*bad mask length/);
});

t.test('a tenant named ../escape is refused at load by check-config and serve', async (t) => {
  const dir = await tmp(t);
  const key = await makeKey(join(dir, 'k'));
  const config = join(dir, 'c.json');
  const pub = (await readFile(`${key}.pub`, 'utf8')).trim();
  await writeFile(config, JSON.stringify({ root: join(dir, 'root'), tenants: [{ name: '../escape', keys: [pub] }] }));
  await mkdir(join(dir, 'root'));
  const check = await runCli(['check-config', '--config', config]);
  t.equal(check.code, 1);
  t.match(check.stderr, `${config}: tenants[0].name: "../escape" must not contain "/"`);
  const serve = await runCli(['serve', '--config', config, '--listen', '127.0.0.1:0'], { timeoutMs: 20_000, env: { RRSYNCD_STATE_DIR: join(dir, 's') } });
  t.equal(serve.code, 1);
  t.match(serve.stderr, 'tenants[0].name: "../escape" must not contain "/"');
});

t.test('JSON errors give line:column', async (t) => {
  const dir = await tmp(t);
  const config = join(dir, 'c.json');
  await writeFile(config, '{\n  "listen": ["127.0.0.1:2222"]\n  "root": "/srv"\n}\n');
  const r = await runCli(['check-config', '--config', config]);
  t.equal(r.code, 1);
  t.match(r.stderr, `rrsyncd: config error: ${config}:3:3: invalid JSON: `);
});

t.test('-M--fake-super is refused like -X, push and pull', async (t) => {
  const srv = await startServer();
  t.teardown(() => srv.cleanup());
  const dir = await tmp(t);
  await writeFile(join(dir, 'f'), 'x');
  const push = await srv.rsync(['-a', '-M--fake-super', `${dir}/`, srv.remote('dst/')]);
  // the server refuses before the protocol starts; the client then reports the stream (12), as it
  // does against an rsync built without xattrs
  t.equal(push.code, 12);
  t.match(push.stderr, 'rsync: --fake-super requires an rsync with extended attributes enabled');
  const pull = await srv.rsync(['-a', '-M--fake-super', srv.remote('dst/'), `${dir}/back/`]);
  t.equal(pull.code, 12);
  t.match(pull.stderr, 'rsync: --fake-super requires an rsync with extended attributes enabled');
});

t.test(
  'a missing root shows the client no server path',
  async (t) => {
    for (const opts of ['command="rrsync missing"', 'command="rrsync -no-lock missing"']) {
      const srv = await startServer({ authorizedKeysOptions: opts });
      t.teardown(() => srv.cleanup());
      const dir = await tmp(t);
      const r = await srv.rsync(['-a', `${dir}/`, srv.remote('x/')]);
      t.not(r.code, 0, opts);
      t.match(r.stderr, 'rsync: [Receiver] root not available: No such file or directory (2)');
      t.notMatch(r.stderr, srv.root, 'the server path is not shown');
      await srv.waitForLog((l) => l.msg === 'root not available' && l.root === join(srv.root, 'missing'));
    }
  },
);
