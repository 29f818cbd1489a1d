// The operator console: an admin key's `ssh -tt` gets `rrsyncd console` on a PTY (node-pty); the
// test types commands and reads the screen. Admin keys cannot rsync; other keys still get no
// shell. admins.shell runs another program, and window changes reach its PTY.
import t, { type Test } from 'tap';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { makeKey, run, sshOptionArgs, startServer, type TestServer } from '../helpers/server.js';

interface Screen {
  child: ChildProcessWithoutNullStreams;
  text(): string;
  /** Resolves once the screen (after `from`) matches. */
  waitFor(re: RegExp, from?: number, timeoutMs?: number): Promise<number>;
  type(s: string): void;
  exit: Promise<number | null>;
}

function openConsole(srv: TestServer, keyPath: string): Screen {
  const child = spawn('ssh', ['-tt', ...sshOptionArgs(srv.port, keyPath), 'test@127.0.0.1'], { stdio: 'pipe' });
  let out = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    for (const w of [...waiters]) w();
  });
  child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    child,
    text: () => out,
    type: (s) => child.stdin.write(s),
    exit,
    waitFor: (re, from = 0, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out.slice(from));
          if (!m) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(from + m.index + m[0].length);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`screen never matched ${re}:\n${out}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
  };
}

async function adminServer(t: Test, admins: object): Promise<{ srv: TestServer; adminKey: string; fp: string }> {
  const keyDir = await mkdtemp(join(tmpdir(), 'rrsyncd-admin-'));
  t.teardown(() => rm(keyDir, { recursive: true, force: true }));
  const adminKey = await makeKey(join(keyDir, 'admin_ed25519'), 'operator-1');
  const pub = (await readFile(`${adminKey}.pub`, 'utf8')).trim();
  const srv = await startServer({ config: { admins: { keys: [pub], ...admins } } });
  t.teardown(() => srv.cleanup());
  const fp = (await run('ssh-keygen', ['-lf', `${adminKey}.pub`])).stdout.split(' ')[1]!;
  return { srv, adminKey, fp };
}

t.test('an admin key drives the console over ssh -tt', async (t) => {
  const { srv, adminKey, fp } = await adminServer(t, { idleTimeoutMs: 60_000 });
  const c = openConsole(srv, adminKey);
  let at = await c.waitFor(/rrsyncd> /);
  t.match(c.text(), `operator console (${fp} operator-1)`, 'the console knows who is typing');

  c.type('help\r');
  at = await c.waitFor(/kick ID \| --key FP[\s\S]*rrsyncd> /, at);
  c.type('sessions\r');
  at = await c.waitFor(/no sessions[\s\S]*rrsyncd> /, at);
  c.type('tenants\r');
  at = await c.waitFor(/no tenants configured[\s\S]*rrsyncd> /, at);
  c.type('usage\r');
  at = await c.waitFor(/no usage ledgers yet[\s\S]*rrsyncd> /, at);
  c.type('frobnicate\r');
  at = await c.waitFor(/unknown command "frobnicate"[\s\S]*rrsyncd> /, at);

  c.type('log\r');
  at = await c.waitFor(/following the log/, at);
  const r = await srv.ssh('true');
  t.equal(r.code, 0, r.stderr);
  at = await c.waitFor(/"event":"exec"[^\n]*"argv":\["true"\]/, at);
  c.type('\x03');
  at = await c.waitFor(/rrsyncd> /, at);
  c.type('sessions\r');
  await c.waitFor(/no sessions[\s\S]*rrsyncd> /, at);

  c.type('exit 3\r');
  t.equal(await c.exit, 3, 'the console\'s exit status is the ssh exit status');

  const audited = srv.logRecords().filter((l) => l.event === 'control' && l.who === `${fp} operator-1`);
  t.same(
    audited.map((l) => l.line ?? l.op),
    ['help', 'sessions', 'tenants', 'usage', 'frobnicate', 'log', 'sessions', 'exit 3'],
    'every command is in the log with the admin key',
  );
  await srv.waitForLog((l) => l.msg === 'console ended' && l.exitCode === 3);
});

t.test('admin keys cannot rsync; other keys get no shell', async (t) => {
  const { srv, adminKey } = await adminServer(t, {});
  const r = await run('/usr/bin/rsync', ['-e', ['ssh', ...sshOptionArgs(srv.port, adminKey)].join(' '), 'test@127.0.0.1:', '/tmp/']);
  t.not(r.code, 0);
  t.match(r.stderr, /admin keys cannot run commands or rsync/);
  const shell = await srv.ssh('', ['-tt']);
  t.not(shell.code, 0, 'a non-admin key gets no shell');
  await srv.waitForLog((l) => l.refused === 'pty' || l.refused === 'shell');
  const noTty = await run('ssh', ['-T', ...sshOptionArgs(srv.port, adminKey), 'test@127.0.0.1'], { input: 'help\n' });
  t.equal(noTty.code, 1);
  t.match(noTty.stderr, /the console needs a terminal/);
});

t.test('idle timeout, admins.shell and window changes', async (t) => {
  const { srv, adminKey } = await adminServer(t, { idleTimeoutMs: 3000 });
  const c = openConsole(srv, adminKey);
  await c.waitFor(/rrsyncd> /);
  t.equal(await c.exit, 0);
  t.match(c.text(), /idle timeout: closing the console/);

  // admins.shell: a program that prints its terminal size, waits for a line, prints it again
  const configPath = join(srv.dir, 'config.json');
  const cfg = JSON.parse(await readFile(configPath, 'utf8')) as { admins: Record<string, unknown> };
  cfg.admins.shell = ['/bin/sh', '-c', 'stty size; read x; stty size; exit 7'];
  await writeFile(configPath, JSON.stringify(cfg));
  srv.child.kill('SIGHUP');
  await srv.waitForLog((l) => l.msg === 'configuration reloaded');

  const client = new ssh2.Client();
  const out = await new Promise<{ text: string; code: number }>((resolve, reject) => {
    client.on('error', reject);
    client.on('ready', () => {
      client.shell({ rows: 30, cols: 100, term: 'xterm' }, (err, stream) => {
        if (err) return reject(err);
        let text = '';
        let code = -1;
        stream.on('data', (d: Buffer) => {
          text += d.toString();
          if (/30 100/.test(text) && !/resized/.test(text)) {
            text += '[resized]';
            stream.setWindow(40, 120, 0, 0);
            setTimeout(() => stream.write('\n'), 300);
          }
        });
        stream.on('exit', (c: number) => (code = c));
        stream.on('close', () => resolve({ text, code }));
      });
    });
    void readFile(adminKey, 'utf8').then((privateKey) => client.connect({ host: '127.0.0.1', port: srv.port, username: 'test', privateKey }));
  });
  client.end();
  t.match(out.text, /30 100[\s\S]*40 120/, 'the PTY follows the window size');
  t.equal(out.code, 7, 'the program\'s exit status');
});
