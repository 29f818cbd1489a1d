// Live sessions over the control socket: `rrsyncd sessions` lists a running push, `kick` ends it
// cleanly (one line on the client's stderr, non-zero exit, nothing under a final name), `reload`
// validates first and closes a removed key's multiplexed (ControlMaster) connection.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runCli, sshOptionArgs, startServer, type TestServer } from '../helpers/server.js';
import type { SessionView } from '../../src/ops/sessions.js';

const sockOf = (srv: TestServer) => join(srv.dir, 'state', 'control.sock');

async function waitForSessions(srv: TestServer, n: number): Promise<SessionView[]> {
  for (let i = 0; i < 60; i++) {
    const r = await runCli(['sessions', '--json', '--socket', sockOf(srv)]);
    if (r.code !== 0) throw new Error(r.stderr);
    const list = JSON.parse(r.stdout) as SessionView[];
    if (list.length >= n) return list;
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error('no session showed up');
}

t.test('sessions lists a running push and kick ends it cleanly', async (t) => {
  const srv = await startServer({ config: {} });
  t.teardown(() => srv.cleanup());
  t.equal((await stat(sockOf(srv))).mode & 0o777, 0o600, 'control socket is 0600');
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-ops-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  await writeFile(join(d, 'big'), Buffer.alloc(8 << 20, 3));
  await writeFile(join(d, 'upd'), Buffer.alloc(1 << 20, 4));
  await writeFile(join(srv.root, 'upd'), 'old content\n');
  // being replaced when the kick comes: written to a temp file, which the abort must remove
  await writeFile(join(srv.root, 'big'), 'old big\n');

  const push = srv.rsync(['-a', '--bwlimit=100', 'big', 'upd', srv.remote('')], { cwd: d, timeoutMs: 180_000 });
  const [s] = await waitForSessions(srv, 1);
  t.ok(s, 'one session');
  t.match(s, { id: '1.1', fingerprint: /^SHA256:/, comment: 'rrsyncd-test', address: '127.0.0.1', role: 'receiver', user: 'test' });
  t.ok(s!.argv.includes('--server'), 'argv');
  t.ok(s!.bytesIn > 0 && s!.ageMs >= 0, 'bytes and age');
  const table = await runCli(['sessions', '--socket', sockOf(srv)]);
  t.match(table.stdout, /^ID\s+TENANT\s+KEY/m, 'a table without --json');

  const kick = await runCli(['kick', s!.id, '--socket', sockOf(srv)]);
  t.equal(kick.code, 0, kick.stderr + kick.stdout);
  t.equal(kick.stdout, `kicked ${s!.id}\n`);
  const r = await push;
  t.not(r.code, 0, 'the client exits non-zero');
  t.equal(r.stderr.split('\n').filter((l) => l.includes('rrsyncd: session ended by the server operator')).length, 1, r.stderr);
  const rec = await srv.waitForLog((l) => l.event === 'exec');
  t.equal(rec.exitCode, 20);
  t.equal(rec.kicked, 'session ended by the server operator');
  await srv.waitForLog((l) => l.event === 'control' && l.op === 'kick');

  const names = await readdir(srv.root);
  t.same(names.sort(), ['big', 'upd'], 'no temp file left behind');
  t.equal(await readFile(join(srv.root, 'big'), 'utf8'), 'old big\n', 'the file being replaced is untouched');
  t.equal(await readFile(join(srv.root, 'upd'), 'utf8'), 'old content\n');

  const none = await runCli(['kick', '--key', s!.fingerprint, '--socket', sockOf(srv)]);
  t.equal(none.code, 1);
  t.equal(none.stdout, 'no matching session\n');
  const again = await srv.rsync(['-a', 'big', srv.remote('')], { cwd: d });
  t.equal(again.code, 0, `the server still serves: ${again.stderr}`);
});

t.test('reload validates first, and closes a removed key\'s multiplexed connection', async (t) => {
  const srv = await startServer({ config: {} });
  t.teardown(() => srv.cleanup());
  const ctl = join(srv.dir, 'cm');
  const master = spawn('ssh', ['-M', '-S', ctl, '-N', ...sshOptionArgs(srv.port, srv.keyPath), 'test@127.0.0.1'], { stdio: 'ignore' });
  const masterExit = new Promise<number | null>((resolve) => master.once('exit', resolve));
  t.teardown(() => master.kill());
  const check = () => run('ssh', ['-S', ctl, '-O', 'check', 'test@127.0.0.1']);
  for (let i = 0; i < 80 && (await check()).code !== 0; i++) await new Promise((res) => setTimeout(res, 250));
  t.equal((await check()).code, 0, 'the master connection is up');
  const viaMaster = await run('ssh', ['-S', ctl, 'test@127.0.0.1', 'true']);
  t.equal(viaMaster.code, 0, viaMaster.stderr);

  // a broken config is refused and changes nothing
  const configPath = join(srv.dir, 'config.json');
  await writeFile(configPath, '{ not json');
  const bad = await runCli(['reload', '--socket', sockOf(srv)]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /reload refused; the old configuration stays\n.*invalid JSON/);
  t.equal((await run('ssh', ['-S', ctl, 'test@127.0.0.1', 'true'])).code, 0, 'still connected');
  await writeFile(configPath, '{}');

  // an unrelated key change keeps the connection
  const pub = await readFile(join(srv.dir, 'authorized_keys'), 'utf8');
  await writeFile(join(srv.dir, 'authorized_keys'), `# a comment line\n${pub}`);
  const same = await runCli(['reload', '--socket', sockOf(srv)]);
  t.equal(same.code, 0, same.stderr);
  t.match(same.stdout, /0 connection\(s\)/);
  t.equal((await check()).code, 0, 'an unchanged key keeps its connection');

  await writeFile(join(srv.dir, 'authorized_keys'), '');
  const ok = await runCli(['reload', '--socket', sockOf(srv)]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /1 connection\(s\) of removed or changed keys closed/);
  await masterExit;
  t.not((await check()).code, 0, 'the master connection is gone');
  const rec = await srv.waitForLog((l) => l.event === 'connection' && l.auth === 'ok');
  t.equal(rec.reason, 'key removed or changed');
});
