/** Small process and filesystem helpers for the benchmark harness. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { resolve, sep } from 'node:path';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs a command synchronously; throws with its stderr on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { cwd?: string; allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 * MiB });
  if (r.error) throw r.error;
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

export function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Flushes dirty pages so that a timed run does not pay for the previous run's writeback. */
export function syncDisks(): void {
  spawnSync('sync', [], { stdio: 'ignore' });
}

let workRoot: string | undefined;
/** Every path the harness deletes must be inside this directory. */
export function setWorkRoot(dir: string): void {
  workRoot = resolve(dir);
}

/** rm -rf, refusing anything outside bench/work/. */
export function rmrf(path: string): void {
  const abs = resolve(path);
  if (!workRoot || !(abs + sep).startsWith(workRoot + sep) || abs === workRoot) {
    throw new Error(`refusing to delete ${abs}: not inside ${workRoot}`);
  }
  rmSync(abs, { recursive: true, force: true });
}

export function mkdirp(path: string): void {
  mkdirSync(path, { recursive: true });
}

export function freshDir(path: string): void {
  if (existsSync(path)) rmrf(path);
  mkdirp(path);
}

/** A free TCP port on 127.0.0.1 (bound and released; a small race is acceptable here). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** Resolves true once something on host:port sends an SSH banner, false at the deadline. */
export async function waitForSsh(port: number, timeoutMs: number, alive: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) return false;
    const ok = await new Promise<boolean>((res) => {
      const s = connect({ host: '127.0.0.1', port });
      let buf = '';
      const done = (v: boolean): void => {
        s.destroy();
        res(v);
      };
      s.setTimeout(2000, () => done(false));
      s.on('data', (d) => {
        buf += d.toString('latin1');
        if (buf.includes('SSH-')) done(true);
      });
      s.on('error', () => done(false));
      s.on('close', () => done(false));
    });
    if (ok) return true;
    await sleep(100);
  }
  return false;
}

export interface ClientResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  wallS: number;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/**
 * Spawns a client in its own process group (so a timeout can kill rsync and its ssh together)
 * and measures its wall time.
 */
export function runClient(
  cmd: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv,
): Promise<ClientResult> {
  return new Promise((res) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    const cap = (s: string, d: Buffer): string => (s.length > 20000 ? s : s + d.toString('utf8'));
    child.stdout.on('data', (d: Buffer) => (stdout = cap(stdout, d)));
    child.stderr.on('data', (d: Buffer) => (stderr = cap(stderr, d)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, timeoutMs);
    child.on('error', (e) => {
      stderr += String(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      res({ code, signal, wallS, timedOut, stdout, stderr });
    });
  });
}

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1]! + s[m]!) / 2;
}
