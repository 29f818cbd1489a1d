/**
 * Test harness: runs a real rrsyncd as a child process on a random loopback port, with a fresh
 * client key, and drives it with the real OpenSSH client and /usr/bin/rsync.
 *
 *   const srv = await startServer({ authorizedKeysOptions: 'command="rrsync -ro /data"' });
 *   t.teardown(() => srv.cleanup());
 *   const r = await srv.rsync(['-a', 'src/', srv.remote('dest/')]);
 *   t.equal(r.code, 0, r.stderr);
 *   const rec = await srv.waitForLog((l) => l.event === 'exec');
 *
 * Layout of `dir` (a fresh temp dir): client_ed25519{,.pub}, host_ed25519, authorized_keys,
 * root/ (unless opts.root), state/ (RRSYNCD_STATE_DIR), config.json (when opts.config).
 * `logs()` / `logRecords()` / `waitForLog()` expose the server's JSON log: one record with
 * event 'exec' per exec (argv, role, exitCode, bytesIn, bytesOut, durationMs, refused?) and one with
 * event 'connection' per connection (remote, user, fingerprint, auth, reason). The exec record is
 * written after the exit status is sent, so use waitForLog() rather than logRecords() right after
 * a client returns.
 * The server is started with --listen 127.0.0.1:0 --host-key --authorized-keys --root, so
 * opts.config can only add settings those flags do not override.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI_PATH = join(REPO_ROOT, 'src', 'cli.ts');
export const RSYNC = '/usr/bin/rsync';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  input?: string | Buffer;
}

export interface StartOptions {
  /** Prefix for the client key's authorized_keys line, e.g. 'from="10.0.0.1",command="rrsync -ro /x"'. */
  authorizedKeysOptions?: string;
  /** Root directory to serve (default: `<dir>/root`, created empty). */
  root?: string;
  /** Extra CLI arguments for `rrsyncd serve`. */
  extraArgs?: string[];
  /** Written to `<dir>/config.json` and passed with --config. */
  config?: object;
  /** Extra environment for the server process. */
  env?: Record<string, string>;
  /** RRSYNCD_STATE_DIR for the server (default `<dir>/state`); reuse one to test restarts. */
  stateDir?: string;
  /** Don't pass --host-key: the server uses (and on first start generates) `<stateDir>/ssh_host_ed25519_key`. */
  defaultHostKey?: boolean;
  /** node flags before the script, e.g. the V8 heap flags of bin/rrsyncd.js's shebang. */
  nodeFlags?: string[];
  /** Milliseconds to wait for the "listening" record (default 20000). */
  startTimeoutMs?: number;
}

export interface TestServer {
  port: number;
  root: string;
  dir: string;
  keyPath: string;
  hostKeyPath: string;
  /** Value for `rsync -e`. */
  rsh: string;
  /** ssh arguments before the destination (port, key, options). */
  sshArgs: string[];
  /** 'test@127.0.0.1:' + path */
  remote(path: string): string;
  /** `/usr/bin/rsync -e <rsh> ...args` */
  rsync(args: string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * `ssh ...extraSshArgs <sshArgs> test@127.0.0.1 [command]`; an empty command requests a shell.
   * extraSshArgs come first so their -o settings win (ssh keeps the first value it sees).
   */
  ssh(command: string, extraSshArgs?: string[], opts?: RunOptions): Promise<RunResult>;
  /** Everything the server printed so far (stdout JSON logs, then stderr). */
  logs(): string;
  /** The server's JSON log records so far. */
  logRecords(): Array<Record<string, unknown>>;
  /** Resolves with the first log record matching `pred` (waiting for it up to timeoutMs). */
  waitForLog(pred: (rec: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Signals the server (default SIGTERM) and resolves with its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Stops the server (SIGKILL if still running) and removes `dir`. */
  cleanup(): Promise<void>;
  child: ChildProcess;
}

/** Runs a command, collecting output; on timeout the process is killed and code is -1. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8') + (timedOut ? `\n[timed out after ${opts.timeoutMs ?? 60_000} ms]` : '');
      resolve({ code: timedOut ? -1 : code ?? (signal ? 128 : -1), stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
  });
}

/** Creates a fresh ed25519 key pair with ssh-keygen; returns the private key path. */
export async function makeKey(path: string, comment = 'rrsyncd-test'): Promise<string> {
  const r = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
  if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  return path;
}

/** Runs the CLI (`node --import tsx src/cli.ts ...args`) to completion. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, ['--import', 'tsx', CLI_PATH, ...args], { cwd: REPO_ROOT, ...opts });
}

export function sshOptionArgs(port: number, keyPath: string): string[] {
  return [
    '-F', '/dev/null',
    '-p', String(port),
    '-i', keyPath,
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'LogLevel=ERROR',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'BatchMode=yes',
  ];
}

export async function startServer(opts: StartOptions = {}): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'rrsyncd-test-'));
  const keyPath = await makeKey(join(dir, 'client_ed25519'));
  const stateDir = opts.stateDir ?? join(dir, 'state');
  const hostKeyPath = opts.defaultHostKey
    ? join(stateDir, 'ssh_host_ed25519_key')
    : await makeKey(join(dir, 'host_ed25519'), 'rrsyncd-test-host');
  const pub = (await readFile(`${keyPath}.pub`, 'utf8')).trim();
  const authorizedKeys = join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, `${opts.authorizedKeysOptions ? `${opts.authorizedKeysOptions} ` : ''}${pub}\n`, { mode: 0o600 });
  const root = opts.root ?? join(dir, 'root');
  await mkdir(root, { recursive: true });
  const args = [
    ...(opts.nodeFlags ?? []),
    '--import', 'tsx', CLI_PATH, 'serve',
    '--listen', '127.0.0.1:0',
    ...(opts.defaultHostKey ? [] : ['--host-key', hostKeyPath]),
    '--authorized-keys', authorizedKeys,
    '--root', root,
  ];
  if (opts.config) {
    const configPath = join(dir, 'config.json');
    await writeFile(configPath, JSON.stringify(opts.config, null, 2));
    args.push('--config', configPath);
  }
  args.push(...(opts.extraArgs ?? []));

  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, RRSYNCD_STATE_DIR: stateDir, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const records: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    stdout += text;
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        records.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log record
      }
    }
    for (const w of [...waiters]) w();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((c) => {
    exitCode = c;
    for (const w of [...waiters]) w();
  });

  const logs = () => `${stdout}${stderr ? `\n--- stderr ---\n${stderr}` : ''}`;
  const waitForLog = (pred: (rec: Record<string, unknown>) => boolean, timeoutMs = 10_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const hit = records.find(pred);
        if (hit) {
          finish();
          resolve(hit);
        } else if (exitCode !== undefined) {
          finish();
          reject(new Error(`server exited (${exitCode}) before the expected log record:\n${logs()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out waiting for a log record:\n${logs()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  let listening: Record<string, unknown>;
  try {
    listening = await waitForLog((r) => r.event === 'listening' && typeof r.port === 'number', opts.startTimeoutMs ?? 20_000);
  } catch (err) {
    child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const port = listening.port as number;
  const sshArgs = sshOptionArgs(port, keyPath);
  const rsh = ['ssh', ...sshArgs].join(' ');

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (exitCode !== undefined) return exitCode;
    child.kill(signal);
    return exited;
  };
  return {
    port,
    root,
    dir,
    keyPath,
    hostKeyPath,
    rsh,
    sshArgs,
    child,
    remote: (path: string) => `test@127.0.0.1:${path}`,
    rsync: (rsyncArgs, runOpts) => run(RSYNC, ['-e', rsh, ...rsyncArgs], runOpts),
    ssh: (command, extra = [], runOpts) => run('ssh', [...extra, ...sshArgs, 'test@127.0.0.1', ...(command ? [command] : [])], runOpts),
    logs,
    logRecords: () => [...records],
    waitForLog,
    stop,
    cleanup: async () => {
      if (exitCode === undefined) {
        child.kill('SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
