/**
 * The two servers under test: a private OpenSSH sshd (+ the system rsync it execs) and rrsyncd.
 * Both listen on a random 127.0.0.1 port, use their own host key, and accept the same client key.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { childrenOf, cpuTimes, isAlive, resetPeakRss, rssBytes, vmHwm } from './proc.js';
import { freePort, log, run, sleep, waitForSsh, which } from './util.js';
import { ensurePrivsepDir, SSHD, sshdConfig } from '../../test/helpers/openssh.js';

export type SideName = 'openssh' | 'rrsyncd';

/**
 * The node flags rrsyncd runs with in production: those of bin/rrsyncd.js's shebang
 * (`#!/usr/bin/env -S node FLAGS`; the systemd unit and the Dockerfile pass the same).
 */
function productionNodeFlags(repo: string): string[] {
  const first = readFileSync(join(repo, 'bin', 'rrsyncd.js'), 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\S*env -S node\s+(.*)$/.exec(first);
  return m ? m[1].trim().split(/\s+/) : [];
}

export interface Keys {
  dir: string;
  client: string;
  clientPub: string;
  sshdHost: string;
  rrsyncdHost: string;
}

export function ensureKeys(workDir: string): Keys {
  const dir = join(workDir, 'keys');
  mkdirSync(dir, { recursive: true });
  const k: Keys = {
    dir,
    client: join(dir, 'client_ed25519'),
    clientPub: join(dir, 'client_ed25519.pub'),
    sshdHost: join(dir, 'sshd_host_ed25519'),
    rrsyncdHost: join(dir, 'rrsyncd_host_ed25519'),
  };
  for (const [f, c] of [
    [k.client, 'bench-client'],
    [k.sshdHost, 'bench-sshd-host'],
    [k.rrsyncdHost, 'bench-rrsyncd-host'],
  ] as const) {
    if (!existsSync(f)) run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', c, '-f', f]);
    chmodSync(f, 0o600);
  }
  return k;
}

/** Installs a Debian package when a needed binary is missing (root only). */
export function ensureBinary(path: string, pkg: string): void {
  if (existsSync(path)) return;
  if (process.getuid?.() !== 0) throw new Error(`${path} is missing; install the ${pkg} package`);
  log(`${path} missing: apt-get install -y ${pkg}`);
  spawnSync('apt-get', ['update'], { stdio: 'inherit' });
  const r = spawnSync('apt-get', ['install', '-y', pkg], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (r.status !== 0 || !existsSync(path)) throw new Error(`could not install ${pkg}`);
}

/** Common interface of both servers for the measurement loop. */
export interface Server {
  readonly name: SideName;
  readonly port: number;
  /** Absolute directory that the server's push/pull paths are relative to. */
  readonly root: string;
  /** Remote path spec for a path relative to the root. */
  remote(rel: string): string;
  /** Whether the server can take a run now; restarts a dead rrsyncd. */
  ensureUp(): Promise<boolean>;
  /** Why it is down, when ensureUp() returned false. */
  downReason: string;
  /** Whether the server process is still running (without restarting it). */
  alive(): boolean;
  /** Server CPU seconds so far (monotonic across runs while the same process lives). */
  cpu(): number;
  /** pid whose tree is sampled for RSS, and whether the pid itself counts. */
  rssRoot(): { pid: number; includeRoot: boolean };
  /** Called before a run: resets the peak-RSS counter where possible. */
  beforeRun(): void;
  /** Called after the client finished: waits for server-side processes to finish. */
  settle(): Promise<void>;
  /** Exact per-run peak RSS (VmHWM after a reset), when available. */
  peakRss(): number | undefined;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

async function stopChild(child: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

export class OpenSshServer implements Server {
  readonly name = 'openssh' as const;
  port = 0;
  private child: ChildProcess | undefined;
  downReason = '';
  private readonly user = userInfo().username;

  constructor(
    readonly root: string,
    private readonly keys: Keys,
    private readonly workDir: string,
  ) {}

  remote(rel: string): string {
    return `${this.user}@${HOST}:${join(this.root, rel)}`;
  }

  async start(): Promise<void> {
    ensureBinary(SSHD, 'openssh-server');
    ensurePrivsepDir();
    this.port = await freePort();
    const authKeys = join(this.keys.dir, 'sshd_authorized_keys');
    writeFileSync(authKeys, readFileSync(this.keys.clientPub), { mode: 0o600 });
    const cfg = join(this.workDir, 'sshd_config');
    writeFileSync(cfg, sshdConfig({ port: this.port, hostKey: this.keys.sshdHost, authorizedKeys: authKeys, logLevel: 'ERROR', header: 'generated by bench/run.ts' }));
    run(SSHD, ['-t', '-f', cfg]);
    const logFd = openSync(join(this.workDir, 'logs', 'sshd.log'), 'a');
    this.child = spawn(SSHD, ['-D', '-e', '-f', cfg], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const pid = this.child.pid!;
    if (!(await waitForSsh(this.port, 15000, () => isAlive(pid)))) {
      throw new Error(`sshd did not come up on port ${this.port}; see bench/work/logs/sshd.log`);
    }
    log(`sshd pid ${pid} on ${HOST}:${this.port}`);
  }

  get pid(): number {
    return this.child!.pid!;
  }

  alive(): boolean {
    return !!this.child && isAlive(this.pid);
  }

  async ensureUp(): Promise<boolean> {
    if (this.alive()) return true;
    this.downReason = 'sshd died';
    return false;
  }

  /** Listener's own CPU plus that of its reaped children (per-connection sshd + rsync server). */
  cpu(): number {
    const t = cpuTimes(this.pid);
    return t ? t.self + t.children : 0;
  }

  rssRoot(): { pid: number; includeRoot: boolean } {
    return { pid: this.pid, includeRoot: false };
  }

  beforeRun(): void {}

  async settle(): Promise<void> {
    // cutime/cstime only include children once the listener has reaped them.
    const deadline = Date.now() + 15000;
    while (childrenOf(this.pid).length > 0 && Date.now() < deadline) await sleep(10);
  }

  peakRss(): number | undefined {
    return undefined;
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 5000);
  }
}

export interface RrsyncdOptions {
  repo: string;
  root: string;
  keys: Keys;
  workDir: string;
  profile: boolean;
  /** Force `node --import tsx src/cli.ts` even when dist/ exists. */
  dev: boolean;
}

export class RrsyncdServer implements Server {
  readonly name = 'rrsyncd' as const;
  port = 0;
  private child: ChildProcess | undefined;
  downReason = '';
  /** How it was started, for the report. */
  mode = '';
  starts = 0;
  private hwmReset = false;
  /** Highest process-lifetime VmHWM seen across all rrsyncd processes. */
  lifetimeHwm = 0;
  /** RSS of the idle process right after its first start (baseline for the peak-RSS column). */
  idleRss = 0;
  private readonly user = userInfo().username;
  readonly root: string;

  constructor(private readonly o: RrsyncdOptions) {
    this.root = o.root;
  }

  remote(rel: string): string {
    return `${this.user}@${HOST}:${rel}`;
  }

  private command(): { args: string[]; mode: string } | { error: string } {
    const { repo } = this.o;
    const flags = productionNodeFlags(repo);
    const prof = this.o.profile ? ['--cpu-prof', '--cpu-prof-dir', join(this.o.workDir, 'prof')] : [];
    const dist = join(repo, 'dist', 'cli.js');
    const src = join(repo, 'src', 'cli.ts');
    if (!this.o.dev && existsSync(dist)) {
      if (existsSync(src) && statSync(src).mtimeMs > statSync(dist).mtimeMs) {
        log('warning: src/cli.ts is newer than dist/cli.js: dist/ may be stale (npm run build, or --dev)');
      }
      return { args: [...flags, ...prof, join(repo, 'bin', 'rrsyncd.js')], mode: ['node', ...flags, 'bin/rrsyncd.js (dist/)'].join(' ') };
    }
    if (!existsSync(src)) return { error: 'neither dist/cli.js nor src/cli.ts exists yet' };
    return { args: [...flags, ...prof, '--import', 'tsx', src], mode: ['node', ...flags, '--import tsx src/cli.ts (dev)'].join(' ') };
  }

  async start(): Promise<boolean> {
    const c = this.command();
    if ('error' in c) {
      this.downReason = c.error;
      this.mode = 'unavailable';
      return false;
    }
    this.mode = c.mode + (this.o.profile ? ' --cpu-prof' : '');
    if (!this.port) this.port = await freePort();
    const authKeys = join(this.o.keys.dir, 'rrsyncd_authorized_keys');
    writeFileSync(authKeys, readFileSync(this.o.keys.clientPub), { mode: 0o600 });
    const args = [
      ...c.args,
      'serve',
      '--listen', `${HOST}:${this.port}`,
      '--host-key', this.o.keys.rrsyncdHost,
      '--authorized-keys', authKeys,
      '--root', this.o.root,
    ];
    const logPath = join(this.o.workDir, 'logs', 'rrsyncd.log');
    const logFd = openSync(logPath, 'a');
    this.child = spawn(process.execPath, args, { cwd: this.o.repo, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    this.starts++;
    const pid = this.child.pid!;
    if (!(await waitForSsh(this.port, 30000, () => isAlive(pid)))) {
      const tail = readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ');
      this.downReason = `rrsyncd did not come up on port ${this.port}: ${tail.slice(0, 300)}`;
      await stopChild(this.child, 2000);
      this.child = undefined;
      return false;
    }
    if (!this.idleRss) this.idleRss = rssBytes(pid);
    log(`rrsyncd pid ${pid} on ${HOST}:${this.port} (${this.mode})`);
    return true;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null && isAlive(this.pid);
  }

  async ensureUp(): Promise<boolean> {
    if (this.alive()) return true;
    if (this.child) {
      log(`rrsyncd (pid ${this.pid}) is gone (exit ${this.child.exitCode ?? this.child.signalCode}); restarting`);
      this.child = undefined;
    }
    return this.start();
  }

  /** Restart after a hung run so a stuck session does not burn CPU during later runs. */
  async restart(): Promise<boolean> {
    await this.stop();
    return this.start();
  }

  /** The node process's own CPU (all its threads) plus any reaped children. */
  cpu(): number {
    const t = cpuTimes(this.pid);
    return t ? t.self + t.children : 0;
  }

  rssRoot(): { pid: number; includeRoot: boolean } {
    return { pid: this.pid, includeRoot: true };
  }

  beforeRun(): void {
    const h = vmHwm(this.pid);
    if (h && h > this.lifetimeHwm) this.lifetimeHwm = h;
    this.hwmReset = resetPeakRss(this.pid);
  }

  async settle(): Promise<void> {}

  peakRss(): number | undefined {
    const h = vmHwm(this.pid);
    if (h && h > this.lifetimeHwm) this.lifetimeHwm = h;
    return this.hwmReset ? h : undefined;
  }

  async stop(): Promise<void> {
    // SIGTERM first: rrsyncd shuts down gracefully, which also lets --cpu-prof write its profile.
    await stopChild(this.child, this.o.profile ? 30000 : 5000);
    this.child = undefined;
  }
}

export interface Negotiated {
  kex: string;
  hostKey: string;
  cipher: string;
}

/** Connects with `ssh -v ... true` and reads the negotiated algorithms from the debug output. */
export function probeNegotiation(sshArgs: string[], target: string): Negotiated | string {
  if (!which('ssh')) return 'ssh client missing';
  const r = spawnSync('ssh', [...sshArgs, '-v', '-o', 'LogLevel=DEBUG1', target, 'true'], {
    encoding: 'utf8',
    timeout: 20000,
  });
  const err = r.stderr ?? '';
  const kex = /kex: algorithm: (\S+)/.exec(err)?.[1];
  const hostKey = /kex: host key algorithm: (\S+)/.exec(err)?.[1];
  const c2s = /kex: client->server cipher: (\S+) MAC: (\S+)/.exec(err);
  const s2c = /kex: server->client cipher: (\S+) MAC: (\S+)/.exec(err);
  if (!kex || !c2s || !s2c) return `no kex seen (ssh exit ${r.status}): ${err.trim().split('\n').slice(-1)[0] ?? ''}`;
  const cipher = c2s[1] === s2c[1] ? c2s[1]! : `${c2s[1]} / ${s2c[1]}`;
  return { kex, hostKey: hostKey ?? '?', cipher: `${cipher} (MAC ${c2s[2]})` };
}
