/**
 * What isolating each session's engine in a worker thread (`new Worker` with `resourceLimits`)
 * would cost, against the engine running on the main event loop as it does (docs/architecture.md,
 * "Why sessions share the event loop"). Measured with the compiled engine (`--dist DIR`, default
 * dist/; build one with `npx tsc -p tsconfig.build.json --outDir DIR`):
 *  - startup: `new Worker` until the engine module is loaded and the worker answers;
 *  - memory: RSS of the process per idle worker with the engine loaded (8 workers);
 *  - throughput: a 256 MiB push from the stock client (test/pipe/unix-rsh.pl over a unix socket)
 *    into the engine in this process, and into the engine in a worker fed through its MessagePort
 *    (chunks transferred, with an 8 MiB in-flight window), wall time and this process's CPU.
 *
 *   npx tsx bench/worker-isolation.ts [--dist DIR] [--mib 256] [--rounds 3]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { readCommand, UNIX_RSH } from '../test/helpers/inproc-server.js';
import { REPO_ROOT, RSYNC } from '../test/helpers/server.js';
import { splitShellWords } from '../src/policy/shellwords.js';
import { defaultGrant, type Grant } from '../src/policy/grant.js';

const { values } = parseArgs({ options: { dist: { type: 'string' }, mib: { type: 'string', default: '256' }, rounds: { type: 'string', default: '3' } } });
const DIST = values.dist ?? join(REPO_ROOT, 'dist');
const SESSION_URL = pathToFileURL(join(DIST, 'engine', 'session.js')).href;
const PINO_URL = pathToFileURL(join(REPO_ROOT, 'node_modules', 'pino', 'pino.js')).href;
const WINDOW = 8 << 20;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { Readable, Writable } = require('node:stream');
(async () => {
  const { runRsyncSession } = await import(workerData.session);
  const pino = (await import(workerData.pino)).default;
  parentPort.postMessage({ t: 'ready' });
  parentPort.once('message', async ({ argv, grant }) => {
    const input = new Readable({ read() {} });
    parentPort.on('message', (m) => {
      if (m.t === 'data') {
        input.push(Buffer.from(m.b));
        parentPort.postMessage({ t: 'ack', n: m.b.byteLength });
      } else if (m.t === 'end') input.push(null);
    });
    const output = new Writable({
      write(chunk, _e, cb) {
        const ab = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.length);
        parentPort.postMessage({ t: 'out', b: ab }, [ab]);
        cb();
      },
    });
    const stderr = new Writable({ write(_c, _e, cb) { cb(); } });
    const r = await runRsyncSession({ input, output, stderr }, { argv, grant, log: pino({ level: 'silent' }) });
    parentPort.postMessage({ t: 'exit', code: r.exitCode });
  });
})();
`;

type RunSession = (io: { input: Socket | PassThrough; output: Writable; stderr: Writable }, req: object) => Promise<{ exitCode: number }>;

function startWorker(): Promise<{ worker: Worker; ms: number }> {
  const t0 = performance.now();
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { session: SESSION_URL, pino: PINO_URL },
    resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 16 },
  });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', () => resolve({ worker, ms: performance.now() - t0 }));
  });
}

/** One session in a worker, bridged to the socket through the worker's port. */
async function serveInWorker(sock: Socket, argv: string[], grant: Grant): Promise<void> {
  const { worker } = await startWorker();
  worker.postMessage({ argv, grant });
  let inflight = 0;
  sock.on('data', (b: Buffer) => {
    const ab = new ArrayBuffer(b.length);
    new Uint8Array(ab).set(b);
    inflight += b.length;
    worker.postMessage({ t: 'data', b: ab }, [ab]);
    if (inflight > WINDOW) sock.pause();
  });
  sock.on('end', () => worker.postMessage({ t: 'end' }));
  sock.resume();
  await new Promise<void>((resolve) => {
    worker.on('message', (m: { t: string; n?: number; b?: ArrayBuffer }) => {
      if (m.t === 'ack') {
        inflight -= m.n!;
        if (inflight < WINDOW / 2) sock.resume();
      } else if (m.t === 'out') sock.write(Buffer.from(m.b!));
      else if (m.t === 'exit') resolve();
    });
  });
  sock.end();
  await worker.terminate();
}

async function serveInProcess(run: RunSession, sock: Socket, argv: string[], grant: Grant): Promise<void> {
  const stderr = new Writable({ write: (_c, _e, cb) => cb() });
  const p = run({ input: sock, output: sock, stderr }, { argv, grant, log: pino({ level: 'silent' }) });
  sock.resume();
  await p;
  sock.end();
}

function push(sockPath: string, src: string): Promise<number> {
  return new Promise((resolve) => {
    const c = spawn(RSYNC, ['-e', UNIX_RSH, '-W', src, 'x:dst/'], { env: { ...process.env, RRSYNCD_SOCK: sockPath }, stdio: 'ignore' });
    c.on('close', (code) => resolve(code ?? -1));
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'worker-iso-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  const src = join(dir, 'big');
  writeFileSync(src, randomBytes(Number(values.mib) << 20));
  const run = (await import(SESSION_URL)).runRsyncSession as RunSession;
  const grant = { ...defaultGrant(root), noLock: true };

  const starts: number[] = [];
  for (let i = 0; i < 10; i++) {
    const { worker, ms } = await startWorker();
    starts.push(ms);
    await worker.terminate();
  }
  const rss0 = process.memoryUsage().rss;
  const idle = await Promise.all(Array.from({ length: 8 }, () => startWorker()));
  const perWorker = (process.memoryUsage().rss - rss0) / 8;
  await Promise.all(idle.map((w) => w.worker.terminate()));

  const results: Record<string, { wall: number[]; cpu: number[] }> = { 'in process': { wall: [], cpu: [] }, worker: { wall: [], cpu: [] } };
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const mode of round % 2 ? ['worker', 'in process'] : ['in process', 'worker']) {
      const sockPath = join(dir, `s-${round}-${mode.replace(' ', '')}.sock`);
      const server = createServer((s) => {
        void readCommand(s).then((cmd) => {
          const argv = splitShellWords(cmd);
          return mode === 'worker' ? serveInWorker(s, argv, grant) : serveInProcess(run, s, argv, grant);
        });
      });
      await new Promise<void>((r) => server.listen(sockPath, r));
      rmSync(join(root, 'dst'), { recursive: true, force: true });
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const code = await push(sockPath, src);
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      server.close();
      if (code !== 0) throw new Error(`${mode} push failed: exit ${code}`);
      results[mode]!.wall.push(wall / 1000);
      results[mode]!.cpu.push((cpu.user + cpu.system) / 1e6);
    }
  }
  rmSync(dir, { recursive: true, force: true });
  const lines = [
    `worker startup (engine loaded), median of 10: ${median(starts).toFixed(1)} ms (min ${Math.min(...starts).toFixed(1)}, max ${Math.max(...starts).toFixed(1)})`,
    `RSS per idle worker with the engine loaded (8 workers): ${(perWorker / 1048576).toFixed(1)} MiB`,
    ...Object.entries(results).map(
      ([mode, r]) => `${values.mib} MiB push, ${mode}: wall ${median(r.wall).toFixed(2)} s (${r.wall.map((x) => x.toFixed(2)).join(', ')}), server-process CPU ${median(r.cpu).toFixed(2)} s`,
    ),
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
