/**
 * Soak bench (issue 15): one rrsyncd (test/helpers/server.ts: `node --import tsx src/cli.ts
 * serve`) and N concurrent lanes (default 64) of stock rsync over ssh for M minutes (default 10),
 * each lane picking at random: an honest push, an honest pull, a push or a pull whose client
 * (with its ssh) is SIGKILLed at a random point, or a hostile byte stream (random bytes fed to
 * `rsync --server` through ssh). Every honest session must succeed; the server's open descriptors
 * and RSS are recorded after warm-up and again at the end once it is idle, and every 30 s between.
 *
 * The server runs with the V8 flags of bin/rrsyncd.js's shebang, as production does (`--bare-node`:
 * without them).
 *
 *   npx tsx bench/soak.ts [--minutes 10] [--concurrency 64] [--bare-node] [--out bench/results/<date>-soak.md]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { IDLE_RELEASE_DELAY_MS } from '../src/ssh/idle-memory.js';
import { REPO_ROOT, RSYNC, startServer, type TestServer } from '../test/helpers/server.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '64' },
    out: { type: 'string' },
    'bare-node': { type: 'boolean', default: false },
  },
});
const MINUTES = Number(values.minutes);
const LANES = Number(values.concurrency);
/** The V8 heap flags production starts with (bin/rrsyncd.js's shebang); none with --bare-node. */
const NODE_FLAGS = values['bare-node'] ? [] : (/^#!\/usr\/bin\/env -S node((?: --[\w-]+=\w+)*)\n/.exec(readFileSync(join(REPO_ROOT, 'bin', 'rrsyncd.js'), 'utf8'))?.[1] ?? '').trim().split(' ').filter(Boolean);
const OUT = values.out ?? join(REPO_ROOT, 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-soak.md`);

type Kind = 'push' | 'pull' | 'killed push' | 'killed pull' | 'hostile';
const WEIGHTS: Array<[Kind, number]> = [['push', 3], ['pull', 3], ['killed push', 1], ['killed pull', 1], ['hostile', 2]];

interface Tally {
  runs: number;
  ok: number;
  failures: string[];
}

interface Sample {
  atS: number;
  fds: number;
  sessions: number;
  /** Sessions running in the server (its rrsyncd_active_sessions gauge). */
  running: number;
  mem: Memory;
}

/** MiB: the kernel's view (/proc) and V8's (process.memoryUsage() in the server, via /metrics). */
interface Memory {
  rss: number;
  /** Anonymous memory (smaps_rollup): V8's heap, Buffers and malloc's arenas; the rest is file-backed (code). */
  anon: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

const MEMORY_ROWS: Array<[string, keyof Memory]> = [
  ['RSS', 'rss'],
  ['anonymous', 'anon'],
  ['V8 heap total', 'heapTotal'],
  ['V8 heap used', 'heapUsed'],
  ['external', 'external'],
  ['ArrayBuffers', 'arrayBuffers'],
];

function pickKind(): Kind {
  const total = WEIGHTS.reduce((n, [, w]) => n + w, 0);
  let r = Math.random() * total;
  for (const [k, w] of WEIGHTS) if ((r -= w) < 0) return k;
  return 'push';
}

function serverFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function procKiB(text: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** GET /metrics on a fresh connection (a kept-alive one may be closed by the server under our feet). */
function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** The server's memory and running sessions: /proc for the kernel's view, its /metrics for the rest. */
async function serverState(pid: number, metricsPort: number): Promise<{ running: number; mem: Memory }> {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const metrics = await scrape(metricsPort);
  const gauge = (name: string): number => {
    const m = new RegExp(`^rrsyncd_${name} (\\S+)$`, 'm').exec(metrics);
    return m ? Number(m[1]) : NaN;
  };
  const mib = (name: string): number => gauge(name) / 1048576;
  return {
    running: gauge('active_sessions'),
    mem: {
      rss: procKiB(rollup, 'Rss') / 1024,
      anon: procKiB(rollup, 'Anonymous') / 1024,
      heapTotal: mib('nodejs_heap_size_total_bytes'),
      heapUsed: mib('nodejs_heap_size_used_bytes'),
      external: mib('nodejs_external_memory_bytes'),
      arrayBuffers: mib('nodejs_array_buffers_bytes'),
    },
  };
}

/** rsync over the server's ssh; `killAfterMs` SIGKILLs the client and its ssh together. */
function client(srv: TestServer, args: string[], killAfterMs?: number): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(RSYNC, ['-e', srv.rsh, ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const kill = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    };
    const killer = killAfterMs === undefined ? undefined : setTimeout(kill, killAfterMs);
    const limit = setTimeout(kill, 300_000);
    child.on('close', (code) => {
      clearTimeout(killer);
      clearTimeout(limit);
      resolve({ code: code ?? -1, stderr });
    });
  });
}

async function session(srv: TestServer, work: string, kind: Kind, n: number): Promise<string | null> {
  switch (kind) {
    case 'push': {
      const r = await client(srv, ['-a', join(work, 'src') + '/', srv.remote(`push-${n}/`)]);
      const ok = r.code === 0 && readFileSync(join(srv.root, `push-${n}`, 'medium')).equals(readFileSync(join(work, 'src', 'medium')));
      rmSync(join(srv.root, `push-${n}`), { recursive: true, force: true });
      return ok ? null : `exit ${r.code}: ${r.stderr.trim().slice(0, 200)}`;
    }
    case 'pull': {
      const dest = join(work, `pull-${n}`);
      const r = await client(srv, ['-a', srv.remote('src/'), dest + '/']);
      const ok = r.code === 0 && readFileSync(join(dest, 'medium')).equals(readFileSync(join(work, 'src', 'medium')));
      rmSync(dest, { recursive: true, force: true });
      return ok ? null : `exit ${r.code}: ${r.stderr.trim().slice(0, 200)}`;
    }
    case 'killed push':
      await client(srv, ['-a', join(work, 'big') + '/', srv.remote(`kpush-${n}/`)], Math.random() * 2000);
      rmSync(join(srv.root, `kpush-${n}`), { recursive: true, force: true });
      return null;
    case 'killed pull': {
      const dest = join(work, `kpull-${n}`);
      await client(srv, ['-a', srv.remote('big/'), dest + '/'], Math.random() * 2000);
      rmSync(dest, { recursive: true, force: true });
      return null;
    }
    case 'hostile': {
      const cmd = n % 2 ? 'rsync --server -logDtpre.iLsfxCIvu . hostile/' : 'rsync --server --sender -logDtpre.iLsfxCIvu . src/';
      const r = await srv.ssh(cmd, [], { input: randomBytes(64 + Math.floor(Math.random() * 4096)), timeoutMs: 60_000 });
      return r.code === -1 ? 'the hostile session did not end within 60 s' : null;
    }
  }
}

function prepare(dir: string, root: string): void {
  const medium = randomBytes(4 << 20);
  const big = randomBytes(32 << 20);
  for (const base of [dir, root]) {
    mkdirSync(join(base, 'src', 'sub'), { recursive: true });
    mkdirSync(join(base, 'big'), { recursive: true });
    writeFileSync(join(base, 'src', 'medium'), medium);
    for (let i = 0; i < 50; i++) writeFileSync(join(base, 'src', 'sub', `f${i}`), `file ${i}\n`);
    writeFileSync(join(base, 'big', 'big'), big);
  }
}

/**
 * Waits until no session runs in the server and its descriptor count has been steady for 5 s (at
 * most 2 min), then until its idle memory release has run (src/ssh/idle-memory.ts: the quiet
 * delay, then the GC).
 */
async function idle(pid: number, running: () => Promise<number>): Promise<void> {
  let last = -1;
  let steady = 0;
  for (let i = 0; i < 120 && steady < 5; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const fds = serverFds(pid);
    steady = fds === last && (await running()) === 0 ? steady + 1 : 0;
    last = fds;
  }
  await new Promise((r) => setTimeout(r, IDLE_RELEASE_DELAY_MS + 5000));
}

async function main(): Promise<void> {
  const srv = await startServer({
    nodeFlags: NODE_FLAGS,
    config: {
      limits: { maxConnections: 1024, maxConnectionsPerKey: 1024, maxStartups: '512', maxStartupsPerSource: 512 },
      metrics: { listen: '127.0.0.1:0' },
    },
  });
  const pid = srv.child.pid!;
  const metricsPort = Number((await srv.waitForLog((l) => l.event === 'metrics')).port);
  const running = async (): Promise<number> => (await serverState(pid, metricsPort)).running;
  const sample = async (atS: number, sessions: number): Promise<Sample> => ({ atS, sessions, fds: serverFds(pid), ...(await serverState(pid, metricsPort)) });
  const work = join(srv.dir, 'work');
  prepare(work, srv.root);
  const tallies = new Map<Kind, Tally>(WEIGHTS.map(([k]) => [k, { runs: 0, ok: 0, failures: [] }]));
  // warm-up: one of each, so lazily loaded modules are in the baseline
  for (const [k] of WEIGHTS) await session(srv, work, k, -1);
  await idle(pid, running);
  const start = await sample(0, 0);
  const samples: Sample[] = [start];
  const t0 = Date.now();
  const deadline = t0 + MINUTES * 60_000;
  let n = 0;
  let done = 0;
  const sampler = setInterval(() => void sample(Math.round((Date.now() - t0) / 1000), done).then((s) => samples.push(s), () => {}), 30_000); // a sample the busy server did not answer is left out
  const lane = async (): Promise<void> => {
    while (Date.now() < deadline) {
      const kind = pickKind();
      const tally = tallies.get(kind)!;
      tally.runs++;
      const problem = await session(srv, work, kind, n++);
      done++;
      if (problem) tally.failures.push(problem);
      else tally.ok++;
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  clearInterval(sampler);
  const wallS = Math.round((Date.now() - t0) / 1000);
  await idle(pid, running);
  const end = await sample(Math.round((Date.now() - t0) / 1000), done);
  samples.push(end);
  const alive = srv.child.exitCode === null;
  await srv.cleanup();
  const honestFailures = (['push', 'pull'] as Kind[]).reduce((s, k) => s + tallies.get(k)!.failures.length, 0);
  const report = [
    `# Soak: ${LANES} concurrent sessions for ${MINUTES} min (${new Date().toISOString()})`,
    '',
    `Machine: ${cpus().length} cores, load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')} (shared with other work: the numbers are not a throughput measurement).`,
    `Server: \`node ${NODE_FLAGS.map((f) => f + ' ').join('')}--import tsx src/cli.ts serve\` (test/helpers/server.ts), limits raised so ${LANES} lanes are not refused at the front door.`,
    `Sessions: ${done} in ${wallS} s; server still running at the end: ${alive ? 'yes' : 'NO'}.`,
    `Honest sessions that failed: ${honestFailures}.`,
    '',
    '| kind | runs | ok | failures (first 3) |',
    '|---|---|---|---|',
    ...[...tallies].map(([k, t]) => `| ${k} | ${t.runs} | ${t.ok} | ${t.failures.slice(0, 3).join('<br>').replace(/\|/g, '\\|') || ''} |`),
    '',
    'Killed and hostile sessions count as ok when the server ended them (a hostile one within 60 s); honest ones when rsync exited 0 and the file arrived intact.',
    '',
    '| | after warm-up | end (idle) |',
    '|---|---|---|',
    `| server open fds | ${start.fds} | ${end.fds} |`,
    ...MEMORY_ROWS.map(([label, key]) => `| server ${label} | ${start.mem[key].toFixed(1)} MiB | ${end.mem[key].toFixed(1)} MiB |`),
    '',
    'RSS and anonymous memory from /proc/PID/smaps_rollup; the V8 heap, external and ArrayBuffer memory from process.memoryUsage() in the server (its /metrics).',
    '',
    'Timeline (every 30 s), MiB:',
    '',
    `| s | sessions done | running | fds | ${MEMORY_ROWS.map(([label]) => label).join(' | ')} |`,
    `|---|---|---|---|${MEMORY_ROWS.map(() => '---|').join('')}`,
    ...samples.map((s) => `| ${s.atS} | ${s.sessions} | ${s.running} | ${s.fds} | ${MEMORY_ROWS.map(([, key]) => s.mem[key].toFixed(1)).join(' | ')} |`),
    '',
  ].join('\n');
  mkdirSync(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(OUT, report);
  process.stdout.write(report);
  process.exit(honestFailures === 0 && alive && end.fds <= start.fds ? 0 : 1);
}

await main();
