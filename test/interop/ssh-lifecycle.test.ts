// Process-level behaviour: host key persistence, SIGTERM, SIGHUP, check-config, keygen, --version.
import t from 'tap';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runCli, startServer } from '../helpers/server.js';

async function tmp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-life-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

function portIsClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

t.test('the host key is generated once (0600) and reused on restart', async (t) => {
  const stateDir = join(await tmp(t), 'state');
  const first = await startServer({ stateDir, defaultHostKey: true });
  t.teardown(() => first.cleanup());
  const fp1 = ((await first.waitForLog((l) => l.event === 'listening')).fingerprints as string[])[0];
  t.equal((await stat(first.hostKeyPath)).mode & 0o777, 0o600);
  await first.waitForLog((l) => l.msg === 'generated host key');
  t.notOk(first.logRecords().some((l) => /random pool/.test(String(l.msg))), 'ssh2 uses the random pool for packet padding');
  const keygenFp = await run('ssh-keygen', ['-lf', `${first.hostKeyPath}.pub`]);
  t.equal(keygenFp.stdout.split(' ')[1], fp1, 'the logged fingerprint is what ssh-keygen prints');
  t.equal(await first.stop(), 0);

  const second = await startServer({ stateDir, defaultHostKey: true });
  t.teardown(() => second.cleanup());
  const fp2 = ((await second.waitForLog((l) => l.event === 'listening')).fingerprints as string[])[0];
  t.equal(fp2, fp1, 'same host key after restart');
  t.notOk(second.logRecords().some((l) => l.msg === 'generated host key'));

  // the client really sees that key: strict checking against a known_hosts with only it
  const knownHosts = join(second.dir, 'known_hosts');
  const pub = (await readFile(`${second.hostKeyPath}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  await writeFile(knownHosts, `[127.0.0.1]:${second.port} ${pub}\n`);
  const r = await second.ssh('true', ['-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`]);
  t.equal(r.code, 0, r.stderr);
});

t.test('SIGTERM: idle connections are closed, exit 0, port closed', async (t) => {
  const srv = await startServer();
  t.teardown(() => srv.cleanup());
  const ssh = spawn('ssh', ['-N', ...srv.sshArgs, 'test@127.0.0.1'], { stdio: 'ignore' });
  t.teardown(() => ssh.kill());
  const sshExited = new Promise<number | null>((r) => ssh.once('exit', (code) => r(code)));
  await srv.waitForLog(() => false, 1500).catch(() => undefined); // give the client time to log in
  const started = Date.now();
  t.equal(await srv.stop('SIGTERM'), 0, srv.logs());
  t.ok(Date.now() - started < 10_000, 'shut down promptly');
  t.ok(await portIsClosed(srv.port), 'port closed');
  t.match(srv.logs(), /shutdown complete/);
  await sshExited;
  const conn = srv.logRecords().find((l) => l.event === 'connection');
  t.equal(conn?.auth, 'ok');
  t.equal(conn?.reason, 'shutdown');
});

t.test('SIGHUP reloads the authorized keys', async (t) => {
  const srv = await startServer({ authorizedKeysOptions: 'from="10.0.0.1"' });
  t.teardown(() => srv.cleanup());
  t.equal((await srv.ssh('true')).code, 255, 'refused before the reload');
  const pub = (await readFile(`${srv.keyPath}.pub`, 'utf8')).trim();
  await writeFile(join(srv.dir, 'authorized_keys'), `${pub}\n`);
  srv.child.kill('SIGHUP');
  await srv.waitForLog((l) => l.msg === 'configuration reloaded');
  t.equal((await srv.ssh('true')).code, 0, 'accepted after the reload');
});

t.test('check-config reports problems with the key name and file', async (t) => {
  const dir = await tmp(t);
  const bad = join(dir, 'bad.json');
  await writeFile(bad, JSON.stringify({ listen: ['127.0.0.1:99999'], bogus: 1, root: dir }));
  const r = await runCli(['check-config', '--config', bad]);
  t.equal(r.code, 1);
  t.match(r.stderr, `${bad}: listen:`);
  t.match(r.stderr, `${bad}: bogus: unknown setting`);

  const ak = join(dir, 'ak');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
  await writeFile(ak, `command="rrsync -ro /srv" ${(await readFile(join(dir, 'k.pub'), 'utf8')).trim()}\n`);
  const good = join(dir, 'good.json');
  await writeFile(good, JSON.stringify({ listen: ['127.0.0.1:2222'], root: dir, authorizedKeys: ['ak'], hostKeys: ['hk'] }));
  const ok = await runCli(['check-config', '--config', good]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /config OK/);

  const env = await runCli(['check-config', '--config', good], { env: { RRSYNCD_LISTEN: 'nonsense' } });
  t.equal(env.code, 1);
  t.match(env.stderr, 'environment RRSYNCD_LISTEN: listen:');
});

t.test('serve refuses a bad config with the key name and file, exit 1', async (t) => {
  const dir = await tmp(t);
  const bad = join(dir, 'c.json');
  await writeFile(bad, JSON.stringify({ limits: { maxConnections: 'many' } }));
  const r = await runCli(['serve', '--config', bad, '--listen', '127.0.0.1:0'], { timeoutMs: 20_000, env: { RRSYNCD_STATE_DIR: join(dir, 's') } });
  t.equal(r.code, 1);
  t.match(r.stderr, `${bad}: limits.maxConnections:`);
});

t.test('keygen creates a 0600 host key and prints its fingerprint', async (t) => {
  const dir = await tmp(t);
  const key = join(dir, 'hk');
  const r = await runCli(['keygen', '--host-key', key]);
  t.equal(r.code, 0, r.stderr);
  const sshFp = (await run('ssh-keygen', ['-lf', key])).stdout.split(' ')[1];
  t.equal(r.stdout.trim(), `${sshFp} ${key}`);
  t.equal((await stat(key)).mode & 0o777, 0o600);
  const again = await runCli(['keygen', '--host-key', key]);
  t.equal(again.code, 1, 'never overwrites');
  t.match(again.stderr, /already exists/);
});

t.test('--version, --help and usage errors', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  t.equal((await runCli(['--version'])).stdout, `rrsyncd ${pkg.version}\n`);
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /rrsyncd serve \[--config FILE\] \[--listen HOST:PORT\]/);
  const bad = await runCli(['serve', '--frobnicate']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /frobnicate/);
});

t.test('a client that never completes the handshake is cut off after handshakeTimeoutMs', async (t) => {
  const srv = await startServer({ env: { RRSYNCD_HANDSHAKE_TIMEOUT_MS: '500' } });
  t.teardown(() => srv.cleanup());
  const started = Date.now();
  const sock = connect(srv.port, '127.0.0.1');
  sock.on('data', () => undefined); // the server's ident line; we never answer
  sock.on('error', () => undefined);
  await new Promise((r) => sock.once('close', r));
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 400 && elapsed < 5000, `closed after ${elapsed} ms`);
  const conn = await srv.waitForLog((l) => l.event === 'connection');
  t.equal(conn.reason, 'handshake timeout');
  t.equal(conn.auth, 'none');
});
