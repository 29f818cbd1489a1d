/**
 * "Sessions own their resources", the shared part of the tests that run many sessions of every
 * kind in this one process (test/hostile/resources-*.test.ts): the random mix, run in lanes with a
 * seeded generator (each session's kind and timings derive from the seed and its number), then
 * /proc/self/fd, the active handles and timers and the heap after gc compared with a baseline
 * taken after a warm-up, and no session ended with something still open.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import pino, { type Logger } from 'pino';
import type { Test } from 'tap';
import { arena } from '../hostile/client.js';
import type { RunResult } from './server.js';
import { prng } from './prng.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A session of one kind: a problem for the test to report, or null. `rand(n)` is in [0, n). */
export type SessionKind<W> = (w: W, i: number, rand: (n: number) => number) => Promise<string | null>;

export interface MixOptions<W> {
  world: W;
  kinds: Record<string, SessionKind<W>>;
  sessions: number;
  lanes: number;
  seed: number;
  /** Resolves once the server runs no session (after the clients returned). */
  idle: () => Promise<void>;
  /** Log records of sessions that ended with resources still open. */
  leftovers: () => object[];
  /** How much the heap (after gc) may grow over the run, and why that much. */
  heapBound: { bytes: number; why: string };
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Handle and request types Node reports as active, counted by type. */
function activeResources(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 10));
  gc();
}

/** Runs the mix and asserts that it left nothing behind. */
export async function runSessionMix<W>(t: Test, o: MixOptions<W>): Promise<void> {
  const names = Object.keys(o.kinds);
  const randFor = (i: number): ((n: number) => number) => prng(o.seed * 1_000_003 + i);
  // warm-up: lazily loaded modules and descriptors that stay (native addon, hash modules)
  for (const [i, name] of names.entries()) await o.kinds[name]!(o.world, i, randFor(i));
  await o.idle();
  await settle();
  const fds = openFds();
  const handles = activeResources();
  const heap = process.memoryUsage().heapUsed;
  const problems: string[] = [];
  const counts = new Map<string, number>();
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < o.sessions; i = next++) {
      const rand = randFor(i + names.length);
      const name = names[rand(names.length)]!;
      counts.set(name, (counts.get(name) ?? 0) + 1);
      const p = await o.kinds[name]!(o.world, i + names.length, rand);
      if (p) problems.push(`${name} #${i}: ${p}`);
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: o.lanes }, lane));
  await o.idle();
  await settle();
  t.same(problems, [], 'every honest session succeeded and every other one failed cleanly');
  t.comment(`seed ${o.seed}, ${o.sessions} sessions in ${((Date.now() - started) / 1000).toFixed(0)} s: ${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  t.same(o.leftovers(), [], 'no session ended with resources still open');
  t.ok(openFds() <= fds, `open descriptors: ${fds} before, ${openFds()} after`);
  const after = activeResources();
  for (const [type, n] of after) t.ok(n <= (handles.get(type) ?? 0), `active ${type}: ${handles.get(type) ?? 0} before, ${n} after`);
  const grown = process.memoryUsage().heapUsed - heap;
  t.ok(grown < o.heapBound.bytes, `heap after gc: ${(grown / 1048576).toFixed(1)} MiB more than before (bound ${(o.heapBound.bytes / 1048576).toFixed(0)} MiB: ${o.heapBound.why})`);
}

/**
 * A warn-level logger that keeps the records of sessions ending with resources still open, and
 * those at error level (an engine failure, a listener error).
 */
export function leftoverLogger(): { log: Logger; leftovers: object[]; errors: object[] } {
  const leftovers: object[] = [];
  const errors: object[] = [];
  const log = pino({ level: 'warn' }, {
    write(line: string) {
      const rec = JSON.parse(line) as { leftovers?: object; level?: number };
      if (rec.leftovers) leftovers.push(rec);
      if ((rec.level ?? 0) >= 50) errors.push(rec);
      if (process.env.RRSYNCD_TEST_VERBOSE) process.stderr.write(line);
    },
  });
  return { log, leftovers, errors };
}

export interface KillableOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Written to the child's stdin, which is then closed (default: no stdin). */
  input?: Buffer;
  /** SIGKILLs the child's process group after this long. */
  killAfterMs?: number;
  /** SIGKILLs it after this long in any case (default 120 s). */
  timeoutMs?: number;
}

/** Runs `cmd` in its own process group (so a kill takes its remote shell too), collecting output. */
export function runKillable(cmd: string, args: string[], opts: KillableOptions = {}): Promise<RunResult & { killed: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    if (opts.input) {
      child.stdin!.on('error', () => undefined); // EPIPE once the other side is gone
      child.stdin!.end(opts.input);
    }
    const killGroup = (): void => {
      killed = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const killTimer = opts.killAfterMs !== undefined ? setTimeout(killGroup, opts.killAfterMs) : undefined;
    const limit = setTimeout(killGroup, opts.timeoutMs ?? 120_000);
    child.on('close', (code, signal) => {
      clearTimeout(killTimer);
      clearTimeout(limit);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, killed });
    });
  });
}

export interface MixTrees {
  /** The arena's top directory (client-side copies of the trees live here). */
  dir: string;
  /** The server's root, with the same trees. */
  root: string;
  cleanup: () => void;
}

/** `small/` (64 KiB) and `big/` (`bigBytes`) trees, both on the client side and under the root. */
export function prepareTrees(prefix: string, bigBytes: number): MixTrees {
  const a = arena(prefix);
  for (const [name, size] of [['small', 64 * 1024], ['big', bigBytes]] as const) {
    for (const base of [join(a.top, name), join(a.root, name)]) {
      mkdirSync(base, { recursive: true });
      writeFileSync(join(base, 'a'), 'a\n');
      writeFileSync(join(base, 'b'), Buffer.alloc(size, name));
    }
  }
  return { dir: a.top, root: a.root, cleanup: () => a.cleanup() };
}
