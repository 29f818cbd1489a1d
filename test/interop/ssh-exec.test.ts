// Exec routing and everything that is not an rsync exec, against a real OpenSSH client.
import t from 'tap';
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { once } from 'node:events';
import { startServer, type TestServer } from '../helpers/server.js';

let srv: TestServer;
t.before(async () => {
  srv = await startServer();
});
t.teardown(() => srv.cleanup());

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

t.test('a non-rsync command is refused with a one-line message and status 1', async (t) => {
  const r = await srv.ssh('ls -la /');
  t.equal(r.code, 1);
  t.equal(r.stderr, 'rrsyncd: command not allowed: ls -la /\n');
  t.equal(r.stdout, '');
  const rec = await srv.waitForLog((l) => l.event === 'exec' && l.command === 'ls -la /');
  t.equal(rec.exitCode, 1);
});

t.test('shell tricks around rsync are refused', async (t) => {
  for (const cmd of ['rsync --server . x; id', 'rsync --server . "x', 'sh -c "rsync --server . x"', 'rsync --daemon', 'rsync']) {
    const r = await srv.ssh(cmd);
    t.equal(r.code, 1, cmd);
    t.match(r.stderr, /^rrsyncd: command not allowed: /, cmd);
    t.notMatch(r.stdout, /uid=/);
  }
});

t.test('an rsync --server exec is routed to the engine with the split argv', async (t) => {
  // stdin is /dev/null, so the engine sees EOF at once; only the routing is asserted here
  const r = await srv.ssh("rsync --server --sender -vlogDtpre.iLsfxCIvu . my\\ dir/\"f'x\"", [], { timeoutMs: 30_000 });
  t.not(r.code, -1, 'the exec finished');
  const rec = await srv.waitForLog((l) => l.event === 'exec' && Array.isArray(l.argv) && (l.argv as string[])[1] === '--server');
  t.same(rec.argv, ['rsync', '--server', '--sender', '-vlogDtpre.iLsfxCIvu', '.', "my dir/f'x"]);
  t.equal(rec.refused, undefined);
  t.ok(['sender', 'receiver', 'none'].includes(rec.role as string), 'role is logged');
  t.type(rec.bytesIn, 'number');
  t.type(rec.durationMs, 'number');
  t.equal(rec.root, srv.root);
});

t.test('an interactive shell is refused', async (t) => {
  const r = await srv.ssh('', ['-tt'], { timeoutMs: 20_000 });
  t.equal(r.code, 255);
  t.match(r.stderr + r.stdout, /shell request failed|PTY allocation request failed/);
  await srv.waitForLog((l) => l.refused === 'shell');
  await srv.waitForLog((l) => l.refused === 'pty');
});

t.test('the sftp subsystem is refused', async (t) => {
  const r = await srv.ssh('sftp', ['-s'], { timeoutMs: 20_000 });
  t.equal(r.code, 255);
  t.match(r.stderr, /subsystem request failed/);
});

t.test('env requests are refused without breaking the exec', async (t) => {
  const r = await srv.ssh('true', ['-o', 'SetEnv=LC_ALL=C FOO=bar']);
  t.equal(r.code, 0, r.stderr);
});

t.test('stdio forwarding (-W) is refused', async (t) => {
  const r = await srv.ssh('', ['-W', `127.0.0.1:${srv.port}`], { timeoutMs: 20_000 });
  t.equal(r.code, 255);
  t.match(r.stderr, /stdio forwarding failed/);
  await srv.waitForLog((l) => l.refused === 'direct-tcpip');
});

t.test('remote forwarding (-R) is refused', async (t) => {
  const r = await srv.ssh('', ['-N', '-o', 'ExitOnForwardFailure=yes', '-R', '0:127.0.0.1:9'], { timeoutMs: 20_000 });
  t.equal(r.code, 255);
  t.match(r.stderr, /remote port forwarding failed/);
  await srv.waitForLog((l) => l.refused === 'tcpip-forward');
});

t.test('local forwarding (-L) is refused when used', async (t) => {
  const local = await freePort();
  const ssh = spawn('ssh', ['-N', '-L', `${local}:127.0.0.1:${srv.port}`, ...srv.sshArgs, 'test@127.0.0.1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  ssh.stderr.resume();
  t.teardown(() => ssh.kill());
  // wait for ssh to bind the local port
  let sock: ReturnType<typeof connect> | undefined;
  for (let i = 0; i < 100; i++) {
    sock = connect(local, '127.0.0.1');
    const ok = await new Promise<boolean>((resolve) => {
      sock!.once('connect', () => resolve(true));
      sock!.once('error', () => resolve(false));
    });
    if (ok) break;
    sock = undefined;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(sock, 'ssh listens on the local port');
  const received: Buffer[] = [];
  sock!.on('data', (c: Buffer) => received.push(c));
  await once(sock!, 'close');
  t.equal(Buffer.concat(received).length, 0, 'nothing comes through the tunnel (no SSH banner)');
  await srv.waitForLog((l) => l.refused === 'direct-tcpip');
});
