/**
 * A private OpenSSH sshd (which execs the system `rsync --server`) for interop tests, and the
 * sshd_config the benchmark's OpenSSH side uses too (bench/lib/servers.ts).
 *
 *   const skip = sshdMissing();                        // tap { skip } reason, or undefined
 *   const sshd = await startOpenSsh();                 // random 127.0.0.1 port, fresh keys
 *   t.teardown(() => sshd.cleanup());                  // kills sshd, removes its directory
 *   rsync -e sshd.rsh … sshd.remote('/abs/path/')       // logs in as the current user
 *
 * sshd runs as the current user with `-D -e`, its own host key and authorized_keys, `UsePAM no`
 * and `StrictModes no` (the keys live in a temp dir). As root it needs /run/sshd (created here).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { makeKey, sshOptionArgs } from './server.js';

export const SSHD = '/usr/sbin/sshd';
const HOST = '127.0.0.1';

export interface SshdConfigOptions {
  port: number;
  hostKey: string;
  authorizedKeys: string;
  /** sshd's LogLevel; INFO or above prints "Server listening on …" when ready. */
  logLevel: 'ERROR' | 'INFO' | 'VERBOSE';
  /** First line, a comment naming who wrote the file. */
  header: string;
}

/** sshd_config text: pubkey only, no PAM, no forwarding, loopback only, no pid file. */
export function sshdConfig(o: SshdConfigOptions): string {
  return [
    `# ${o.header}`,
    `Port ${o.port}`,
    `ListenAddress ${HOST}`,
    `HostKey ${o.hostKey}`,
    `AuthorizedKeysFile ${o.authorizedKeys}`,
    `PidFile none`,
    `UsePAM no`,
    `StrictModes no`,
    `PubkeyAuthentication yes`,
    `PasswordAuthentication no`,
    `KbdInteractiveAuthentication no`,
    `PermitRootLogin prohibit-password`,
    `AllowTcpForwarding no`,
    `X11Forwarding no`,
    `PrintMotd no`,
    `PrintLastLog no`,
    `UseDNS no`,
    `MaxStartups 200`,
    `MaxSessions 50`,
    `LogLevel ${o.logLevel}`,
    ``,
  ].join('\n');
}

/** sshd started as root refuses to run without its privilege separation directory. */
export function ensurePrivsepDir(): void {
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
}

/** Why no private sshd can run here (for tap's `skip`), or undefined. */
export function sshdMissing(): string | undefined {
  if (!existsSync(SSHD)) return `${SSHD} is not installed (Debian: apt-get install openssh-server)`;
  return undefined;
}

export interface OpenSsh {
  port: number;
  /** The user sshd logs in (the current user). */
  user: string;
  keyPath: string;
  /** Value for `rsync -e` / `rrsyncd relay --src-rsh`. */
  rsh: string;
  /** `user@127.0.0.1:` + an absolute path. */
  remote(path: string): string;
  /** What sshd printed on stderr so far (capped). */
  logs(): string;
  /** Stops sshd (SIGKILL after 5 s) and removes its directory. */
  cleanup(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

interface Listener {
  child: ChildProcess;
  exited: Promise<void>;
  logs(): string;
}

/** Spawns `sshd -D -e -f cfg`; resolves once it listens, rejects if it exits or hangs first. */
function spawnSshd(cfg: string, timeoutMs: number): Promise<Listener> {
  const child = spawn(SSHD, ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  const logs = (): string => stderr;
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`sshd ${why}:\n${stderr}`));
    };
    const timer = setTimeout(() => fail(`did not listen within ${timeoutMs} ms`), timeoutMs);
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited (${code ?? signal}) before listening`));
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 1 << 20) stderr += chunk.toString('utf8');
      if (!settled && /Server listening on /.test(stderr)) {
        settled = true;
        clearTimeout(timer);
        resolve({ child, exited, logs });
      }
    });
  });
}

/**
 * Starts a private sshd on a random loopback port. The port is picked free and then bound by sshd,
 * so another process may take it in between: sshd then exits, and another port is tried.
 */
export async function startOpenSsh(): Promise<OpenSsh> {
  ensurePrivsepDir();
  const dir = await mkdtemp(join(tmpdir(), 'rrsyncd-sshd-'));
  try {
    const keyPath = await makeKey(join(dir, 'client_ed25519'));
    const hostKey = await makeKey(join(dir, 'host_ed25519'), 'rrsyncd-test-sshd-host');
    const authorizedKeys = join(dir, 'authorized_keys');
    await writeFile(authorizedKeys, await readFile(`${keyPath}.pub`), { mode: 0o600 });
    const cfg = join(dir, 'sshd_config');
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      await writeFile(cfg, sshdConfig({ port, hostKey, authorizedKeys, logLevel: 'INFO', header: 'written by test/helpers/openssh.ts' }));
      try {
        const listener = await spawnSshd(cfg, 15_000);
        return openSsh(dir, port, keyPath, listener);
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function openSsh(dir: string, port: number, keyPath: string, l: Listener): OpenSsh {
  const user = userInfo().username;
  return {
    port,
    user,
    keyPath,
    rsh: ['ssh', ...sshOptionArgs(port, keyPath)].join(' '),
    remote: (path) => `${user}@${HOST}:${path}`,
    logs: l.logs,
    cleanup: async () => {
      if (l.child.exitCode === null && l.child.signalCode === null) {
        l.child.kill('SIGTERM');
        const force = setTimeout(() => l.child.kill('SIGKILL'), 5000);
        await l.exited;
        clearTimeout(force);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
