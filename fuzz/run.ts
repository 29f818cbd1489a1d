/**
 * npm run fuzz [-- OPTIONS] [TARGET ...]
 *
 *   -runs=N        executions per target (default 1000000)
 *   -max_total_time=S  stop a target after S seconds (default: no limit)
 *   -seed=N        PRNG seed (default 1; same seed and corpus => same inputs)
 *   -timeout=S     one input running longer than S seconds is a hang (default 20)
 *   -rss_limit_mb=M  the process passing M MiB of RSS is out of memory (default 2048, 0: none)
 *   -batch=N       inputs per coverage snapshot (default 512)
 *   -jobs=N        targets fuzzed at the same time (default 1)
 *   -list          print the target names
 *
 * Each target runs in its own process (a hang kills only that one).
 * Corpus: fuzz/corpus/<target>/, crashes: fuzz/crashes/<target>/ (input + .txt with the stack).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Fuzzer, type FuzzStats } from './engine.js';
import { installAllocationGuard } from './harness.js';
import { TARGETS, targetByName } from './targets/index.js';
import { initChecksums } from '../src/protocol/checksum.js';
import { initCompression } from '../src/protocol/token.js';
import { hashWasmBinaries } from '../src/patches/hash-wasm.js';

const FUZZ_DIR = fileURLToPath(new URL('.', import.meta.url));
const SRC_URL = new URL('../src/', import.meta.url).href;

function flag(args: string[], name: string, def: number): number {
  const a = args.find((x) => x.startsWith(`-${name}=`));
  return a ? Number(a.slice(name.length + 2)) : def;
}

async function fuzzOne(name: string, args: string[]): Promise<void> {
  const target = targetByName(name);
  if (!target) throw new Error(`unknown target ${name}`);
  await Promise.all([initChecksums(hashWasmBinaries()), initCompression()]);
  installAllocationGuard();
  const fuzzer = new Fuzzer(target, {
    runs: flag(args, 'runs', 1_000_000),
    maxTimeSec: flag(args, 'max_total_time', Infinity),
    seed: flag(args, 'seed', 1),
    timeoutSec: flag(args, 'timeout', 20),
    rssLimitMb: flag(args, 'rss_limit_mb', 2048),
    batch: flag(args, 'batch', 512),
    corpusDir: join(FUZZ_DIR, 'corpus', name),
    crashDir: join(FUZZ_DIR, 'crashes', name),
    include: (url) => url.startsWith(SRC_URL),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const stats = await fuzzer.run();
  process.stdout.write(`${JSON.stringify(stats)}\n`);
}

type Row = FuzzStats | { target: string; failed: string };

/** Runs each target in a child process, `jobs` at a time; rows come back in target order. */
async function runChildren(queue: string[], flags: string[], jobs: number): Promise<Row[]> {
  const rows = new Map<string, Row>();
  const runOne = (name: string): Promise<void> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), `-child=${name}`, ...flags], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
      child.on('close', (code, signal) => {
        const line = out.trim().split('\n').pop() ?? '';
        rows.set(name, code === 0 && line.startsWith('{') ? (JSON.parse(line) as FuzzStats) : { target: name, failed: `exit ${code ?? signal}` });
        resolve();
      });
    });
  const pending = [...queue];
  const worker = async (): Promise<void> => {
    for (let name = pending.shift(); name !== undefined; name = pending.shift()) await runOne(name);
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  return queue.map((n) => rows.get(n)!);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('-list')) {
    for (const t of TARGETS) process.stdout.write(`${t.name}\n`);
    return;
  }
  const child = args.find((a) => a.startsWith('-child='));
  if (child) {
    fuzzOne(child.slice(7), args).catch((err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(2);
    });
    return;
  }
  const names = args.filter((a) => !a.startsWith('-'));
  const queue = names.length ? names : TARGETS.map((t) => t.name);
  const rows = await runChildren(queue, args.filter((a) => a.startsWith('-')), flag(args, 'jobs', 1));
  process.stdout.write('\ntarget            execs      secs  exec/s  blocks features corpus  bytes crashes\n');
  let bad = false;
  for (const r of rows) {
    if ('failed' in r) {
      bad = true;
      process.stdout.write(`${r.target.padEnd(16)} FAILED (${r.failed}; see fuzz/crashes/${r.target}/)\n`);
      continue;
    }
    if (r.crashes.length) bad = true;
    process.stdout.write(
      `${r.target.padEnd(16)} ${String(r.execs).padStart(8)} ${r.seconds.toFixed(0).padStart(8)} ${String(Math.round(r.execs / r.seconds)).padStart(7)} ${String(r.blocks).padStart(7)} ${String(r.features).padStart(8)} ${String(r.corpus).padStart(6)} ${String(r.corpusBytes).padStart(6)} ${r.crashes.join(',') || '0'}\n`,
    );
  }
  process.exitCode = bad ? 1 : 0;
}

await main();
