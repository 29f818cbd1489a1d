// The install story: `rrsyncd init`, tenant roots created on first use (or refused without the
// server's path), SIGHUP applying log.level/log.destination and reopening a rotated log file, and
// what `npm pack` ships.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeKey, REPO_ROOT, run, runCli, sshOptionArgs, startServer } from '../helpers/server.js';

async function tmp(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-inst-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

t.test('init writes a starter config, host key and keys example, and refuses to overwrite', async (t) => {
  const d = await tmp(t);
  const dir = join(d, 'etc');
  const r = await runCli(['init', '--dir', dir, '--root', join(d, 'srv'), '--state-dir', join(d, 'state'), '--listen', '127.0.0.1:0']);
  t.equal(r.code, 0, r.stderr);
  const config = JSON.parse(await readFile(join(dir, 'rrsyncd.json'), 'utf8')) as Record<string, unknown>;
  t.ok(Array.isArray(config['//']), 'comments in a "//" key');
  t.equal((await stat(join(dir, 'ssh_host_ed25519_key'))).mode & 0o777, 0o600);
  t.match(await readFile(join(dir, 'authorized_keys'), 'utf8'), /^# rrsyncd authorized_keys/);

  await mkdir(join(d, 'srv'));
  const key = await makeKey(join(d, 'k'));
  await writeFile(join(dir, 'authorized_keys'), await readFile(`${key}.pub`));
  const check = await runCli(['check-config', '--config', join(dir, 'rrsyncd.json')]);
  t.equal(check.code, 0, `the starter config is valid once it has a key: ${check.stderr}`);

  const again = await runCli(['init', '--dir', dir]);
  t.equal(again.code, 1);
  t.match(again.stderr, /not overwriting .*rrsyncd\.json/);
  t.equal((await readFile(join(dir, 'authorized_keys'))).length > 0, true, 'nothing was replaced');
});

t.test('a missing tenant root is created 0700; a missing rrsync dir is refused without its path', async (t) => {
  const d = await tmp(t);
  const tenantKey = await makeKey(join(d, 'tenant'));
  const srv = await startServer({
    authorizedKeysOptions: `command="rrsync ${d}/nowhere/deep"`,
    config: { tenants: [{ name: 'acme', keys: [(await readFile(`${tenantKey}.pub`, 'utf8')).trim()] }] },
  });
  t.teardown(() => srv.cleanup());
  await writeFile(join(d, 'f.txt'), 'x\n');
  const tenantRsh = ['ssh', ...sshOptionArgs(srv.port, tenantKey)].join(' ');
  const push = await run('/usr/bin/rsync', ['-e', tenantRsh, 'f.txt', 'test@127.0.0.1:'], { cwd: d });
  t.equal(push.code, 0, push.stderr);
  t.equal((await stat(join(srv.root, 'acme'))).mode & 0o777, 0o700, 'tenant root created 0700');
  t.equal(await readFile(join(srv.root, 'acme', 'f.txt'), 'utf8'), 'x\n');

  const refused = await srv.rsync(['f.txt', srv.remote('')], { cwd: d });
  t.not(refused.code, 0);
  t.match(refused.stderr, 'rsync: [Receiver] root not available: No such file or directory (2)');
  t.notMatch(refused.stderr, d, 'the server path is not shown');
  t.notOk(existsSync(join(d, 'nowhere')), 'a non-tenant root is not created');
  await srv.waitForLog((l) => l.msg === 'root not available' && l.root === join(d, 'nowhere/deep'));
});

t.test('SIGHUP applies log.destination and log.level and reopens a rotated file', async (t) => {
  const srv = await startServer({ config: {} });
  t.teardown(() => srv.cleanup());
  const configPath = join(srv.dir, 'config.json');
  const logFile = join(srv.dir, 'rrsyncd.log');
  const hup = async (log: object, expectLine: RegExp | null) => {
    await writeFile(configPath, JSON.stringify({ log }));
    srv.child.kill('SIGHUP');
    if (expectLine) {
      for (let i = 0; i < 100 && !expectLine.test(await readFile(logFile, 'utf8').catch(() => '')); i++) await new Promise((r) => setTimeout(r, 100));
    }
  };
  await hup({ destination: logFile }, /configuration reloaded/);
  t.match(await readFile(logFile, 'utf8'), /configuration reloaded/, 'the log goes to the file');
  const r1 = await srv.ssh('true');
  t.equal(r1.code, 0);
  for (let i = 0; i < 100 && !/"event":"exec"/.test(await readFile(logFile, 'utf8')); i++) await new Promise((r) => setTimeout(r, 100));

  await rename(logFile, `${logFile}.1`);
  await hup({ destination: logFile }, /configuration reloaded/);
  t.ok(existsSync(logFile), 'a rotated log file is reopened under its name');
  t.match(await readFile(`${logFile}.1`, 'utf8'), /"event":"exec"/, 'the old file keeps what was written before');

  await hup({ destination: logFile, level: 'warn' }, null);
  await new Promise((r) => setTimeout(r, 1500));
  const r2 = await srv.ssh('true');
  t.equal(r2.code, 0);
  await new Promise((r) => setTimeout(r, 1000));
  t.notMatch(await readFile(logFile, 'utf8'), /"event":"exec"/, 'info records stop at level warn');
});

t.test('npm pack ships bin/, dist/ (built by prepack) and the native addon sources', async (t) => {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { files: string[]; scripts: Record<string, string> };
  t.match(pkg.scripts.prepack, /tsc -p tsconfig\.build\.json/);
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO_ROOT, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  for (const f of ['bin/rrsyncd.js', 'native/binding.gyp', 'native/rrsyncd_native.c', 'native/rrsyncd_gc.cc', 'native/index.cjs', 'native/package.json', 'systemd/rrsyncd.service', 'README.md']) {
    t.ok(files.includes(f), f);
  }
  t.ok(pkg.files.includes('dist/'), 'dist/ is in the files list');
  t.notOk(files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('node_modules/') || f.startsWith('native/build/')), 'no sources, tests or builds');
});
