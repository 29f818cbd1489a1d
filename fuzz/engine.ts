/**
 * A small coverage-guided fuzzer (libFuzzer's loop, in-process): mutate a corpus entry, run the
 * target, keep inputs that reach new (block, hit-count bucket) features. Coverage is taken once
 * per batch; only a batch that reached a new block is re-run input by input to find which inputs
 * to keep. Crashes (any error that is not a clean rsync-style rejection, allocations over the
 * limit) are saved with their stack; a watchdog thread kills the process on a hang and saves
 * the input that hung.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { Coverage } from './coverage.js';
import { isCleanRejection, type Target } from './harness.js';
import { mutate, Rng } from './mutate.js';

export interface FuzzOptions {
  runs: number;
  maxTimeSec: number;
  seed: number;
  corpusDir: string;
  crashDir: string;
  /** A single input running longer than this (wall clock) kills the process as a hang. */
  timeoutSec: number;
  /** The process's RSS passing this many MiB kills it as out of memory (libFuzzer's -rss_limit_mb). */
  rssLimitMb?: number;
  batch: number;
  /** Include only scripts whose URL this accepts in the coverage. */
  include: (url: string) => boolean;
  log: (line: string) => void;
  /** Stop after this many distinct crashes (default: never). */
  stopOnCrashes?: number;
}

export interface FuzzStats {
  target: string;
  execs: number;
  runsTotal: number;
  seconds: number;
  /** CPU time (user + system) of the fuzzing process: what the run costs on an idle machine. */
  cpuSeconds: number;
  corpus: number;
  corpusBytes: number;
  features: number;
  blocks: number;
  crashes: string[];
  slowestMs: number;
}

interface Entry {
  data: Buffer;
  features: number[];
}

/**
 * Runs between two turns of the event loop. A target's inputs resolve through microtasks only,
 * so without a turn now and then nothing queued with setImmediate ever runs: among those are
 * Node-API finalizers (Node 20 defers them there), so every zstd context the token-zstd target
 * made stayed allocated (RSS grew ~20 MB/s until the machine ran out of memory).
 */
const RUNS_PER_TURN = 64;

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function inputName(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex').slice(0, 16);
}

/** Files of a corpus or crash directory (inputs only, not the .txt stack notes). */
export function listInputs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => !f.endsWith('.txt') && !f.endsWith('.md') && !f.startsWith('.'))
    .sort();
}

/** One line that identifies a crash: error name and the first project frames of its stack. */
function crashSignature(err: unknown): string {
  if (!(err instanceof Error)) return `non-error ${String(err)}`;
  const frames = (err.stack ?? '')
    .split('\n')
    .filter((l) => l.includes('/src/'))
    .slice(0, 3)
    .map((l) => l.trim().replace(/:\d+\)?$/, ''));
  return `${err.name}: ${frames.join(' | ')}`;
}

const WATCHDOG = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { sab, timeoutSec, rssLimitMb, crashDir } = workerData;
const state = new Int32Array(sab, 0, 2);
const bytes = new Uint8Array(sab, 8);
let last = -1, since = Date.now();
function saveAndDie(kind, why) {
  const data = Buffer.from(bytes.subarray(0, Atomics.load(state, 1)));
  fs.mkdirSync(crashDir, { recursive: true });
  const name = kind + '-' + require('node:crypto').createHash('sha1').update(data).digest('hex').slice(0, 16);
  fs.writeFileSync(crashDir + '/' + name, data);
  fs.writeFileSync(crashDir + '/' + name + '.txt', why + '\\n');
  fs.writeSync(2, 'fuzz: ' + kind + ': input saved as ' + crashDir + '/' + name + '\\n');
  process.kill(process.pid, 'SIGKILL');
}
setInterval(() => {
  const rss = process.memoryUsage.rss();
  if (rssLimitMb && rss > rssLimitMb * 1048576) {
    saveAndDie('oom', 'RSS ' + Math.round(rss / 1048576) + ' MiB passed ' + rssLimitMb + ' MiB while this input ran (it may have grown over many inputs: a leak)');
  }
  const n = Atomics.load(state, 0);
  if (n !== last) { last = n; since = Date.now(); return; }
  if (Date.now() - since < timeoutSec * 1000) return;
  saveAndDie('timeout', 'input ran longer than ' + timeoutSec + ' s (hang)');
}, 250);
`;

export class Fuzzer {
  private readonly corpus: Entry[] = [];
  private readonly seenFeatures = new Set<number>();
  private readonly seenBlocks = new Set<number>();
  private readonly crashSigs = new Map<string, string>();
  private readonly rng: Rng;
  private readonly cov: Coverage;
  private readonly sab: SharedArrayBuffer;
  private readonly state: Int32Array;
  private readonly bytes: Uint8Array;
  private watchdog: Worker | null = null;
  /** Fresh (mutated) inputs run. */
  private execs = 0;
  /** Every run, the re-runs that measure single inputs included. */
  private runsTotal = 0;
  private slowestMs = 0;

  constructor(
    private readonly target: Target,
    private readonly o: FuzzOptions,
  ) {
    this.rng = new Rng(o.seed);
    this.cov = new Coverage(o.include);
    this.sab = new SharedArrayBuffer(8 + Math.max(target.maxLen, 1 << 16));
    this.state = new Int32Array(this.sab, 0, 2);
    this.bytes = new Uint8Array(this.sab, 8);
  }

  /** Runs one input; returns true when it crashed (and saves the crash once per signature). */
  private async exec(data: Buffer): Promise<boolean> {
    if (data.length <= this.bytes.length) {
      this.bytes.set(data);
      Atomics.store(this.state, 1, data.length);
    }
    Atomics.add(this.state, 0, 1);
    if (++this.runsTotal % RUNS_PER_TURN === 0) await nextMacrotask();
    const t0 = performance.now();
    try {
      await this.target.run(data);
      return false;
    } catch (err) {
      if (isCleanRejection(err)) return false;
      await this.saveCrash(data, err);
      return true;
    } finally {
      const ms = performance.now() - t0;
      if (ms > this.slowestMs) this.slowestMs = ms;
    }
  }

  /** Runs again with stack traces on (they are off while fuzzing: capturing one costs more than a run). */
  private async stackOf(data: Buffer, first: unknown): Promise<unknown> {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 20;
    try {
      await this.target.run(data);
      return first;
    } catch (err) {
      return err;
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  private async saveCrash(data: Buffer, first: unknown): Promise<void> {
    const err = await this.stackOf(data, first);
    const sig = crashSignature(err);
    if (this.crashSigs.has(sig)) return;
    const name = `crash-${inputName(data)}`;
    this.crashSigs.set(sig, name);
    mkdirSync(this.o.crashDir, { recursive: true });
    writeFileSync(join(this.o.crashDir, name), data);
    const stack = err instanceof Error ? (err.stack ?? String(err)) : String(err);
    writeFileSync(join(this.o.crashDir, `${name}.txt`), `${sig}\n\n${stack}\n`);
    this.o.log(`${this.target.name}: CRASH ${name}: ${sig}`);
  }

  /** Runs `data` alone and adds it to the corpus when it reaches a feature not seen before. */
  private async consider(data: Buffer, save: boolean): Promise<boolean> {
    this.cov.reset();
    const crashed = await this.exec(data);
    const feats = this.cov.features();
    if (crashed) return false; // kept in the crash directory, not in the corpus
    let fresh = false;
    for (const f of feats) {
      if (!this.seenFeatures.has(f)) {
        this.seenFeatures.add(f);
        fresh = true;
      }
      this.seenBlocks.add(f >> 3);
    }
    if (!fresh) return false;
    this.corpus.push({ data, features: feats });
    if (save) {
      mkdirSync(this.o.corpusDir, { recursive: true });
      writeFileSync(join(this.o.corpusDir, inputName(data)), data);
    }
    return true;
  }

  private startWatchdog(): void {
    this.watchdog = new Worker(WATCHDOG, {
      eval: true,
      workerData: { sab: this.sab, timeoutSec: this.o.timeoutSec, rssLimitMb: this.o.rssLimitMb ?? 0, crashDir: this.o.crashDir },
    });
    this.watchdog.unref();
  }

  async run(): Promise<FuzzStats> {
    const started = performance.now();
    this.startWatchdog();
    const existing = listInputs(this.o.corpusDir).map((f) => readFileSync(join(this.o.corpusDir, f)));
    // Seeds and the stored corpus first (new seeds are written to the corpus directory).
    for (const d of existing) await this.consider(d, false);
    for (const d of this.target.seeds()) await this.consider(d, !existing.some((e) => e.equals(d)));
    if (this.corpus.length === 0) this.corpus.push({ data: Buffer.alloc(0), features: [] });
    const ctx = { other: () => this.pick(), dict: this.target.dict ?? [] };
    const deadline = started + this.o.maxTimeSec * 1000;
    let lastLog = performance.now();
    let batches = 0;
    const stackLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    const enough = (): boolean => this.crashSigs.size >= (this.o.stopOnCrashes ?? Infinity);
    try {
      while (this.execs < this.o.runs && performance.now() < deadline && !enough()) {
        const n = Math.min(this.o.batch, this.o.runs - this.execs);
        const batch: Buffer[] = [];
        for (let i = 0; i < n; i++) batch.push(mutate(this.rng, this.pick(), this.target.maxLen, ctx));
        this.cov.reset();
        for (const m of batch) await this.exec(m);
        this.execs += n;
        if (this.hasNewBlock()) await this.bisect(batch);
        // Now and then single inputs are measured alone, so hit-count buckets can grow too.
        else if (++batches % 16 === 0) await this.consider(batch[this.rng.below(batch.length)], true);
        if (performance.now() - lastLog > 10_000) {
          lastLog = performance.now();
          this.o.log(this.progressLine(started));
        }
      }
    } finally {
      Error.stackTraceLimit = stackLimit;
    }
    this.cov.stop();
    await this.watchdog?.terminate();
    this.minimizeCorpus();
    const stats = this.stats(started);
    this.o.log(`${this.progressLine(started)} done`);
    return stats;
  }

  private hasNewBlock(): boolean {
    for (const b of this.cov.hitRanges()) if (!this.seenBlocks.has(b)) return true;
    return false;
  }

  /**
   * Finds the inputs of a batch that reached new blocks by halving it (one coverage snapshot per
   * half instead of one per input), then measures those inputs alone.
   */
  private async bisect(batch: Buffer[]): Promise<void> {
    if (batch.length === 1) {
      await this.consider(batch[0], true);
      return;
    }
    const mid = batch.length >> 1;
    for (const half of [batch.slice(0, mid), batch.slice(mid)]) {
      this.cov.reset();
      for (const m of half) await this.exec(m);
      if (this.hasNewBlock()) await this.bisect(half);
    }
  }

  private pick(): Buffer {
    // Favour recent entries a little (they opened new ground), like libFuzzer's weighting.
    const n = this.corpus.length;
    const i = this.rng.chance(2) ? n - 1 - this.rng.below(Math.min(n, 16)) : this.rng.below(n);
    return this.corpus[i].data;
  }

  /** Keeps a small subset of the corpus with the same features (greedy, smallest inputs first). */
  private minimizeCorpus(): void {
    const order = [...this.corpus].sort((a, b) => a.data.length - b.data.length);
    const covered = new Set<number>();
    const keep: Entry[] = [];
    for (const e of order) {
      if (e.features.some((f) => !covered.has(f))) {
        keep.push(e);
        for (const f of e.features) covered.add(f);
      }
    }
    const names = new Set(keep.map((e) => inputName(e.data)));
    mkdirSync(this.o.corpusDir, { recursive: true });
    for (const f of listInputs(this.o.corpusDir)) if (!names.has(f)) unlinkSync(join(this.o.corpusDir, f));
    for (const e of keep) {
      const p = join(this.o.corpusDir, inputName(e.data));
      if (!existsSync(p)) writeFileSync(p, e.data);
    }
    this.corpus.splice(0, this.corpus.length, ...keep);
  }

  private progressLine(started: number): string {
    const s = (performance.now() - started) / 1000;
    return `${this.target.name}: #${this.execs} ${Math.round(this.execs / s)} exec/s (${Math.round(this.execs / cpuSeconds())} per cpu-s) cov ${this.seenBlocks.size} ft ${this.seenFeatures.size} corp ${this.corpus.length} crashes ${this.crashSigs.size} ${s.toFixed(0)}s`;
  }

  private stats(started: number): FuzzStats {
    return {
      target: this.target.name,
      execs: this.execs,
      runsTotal: this.runsTotal,
      seconds: (performance.now() - started) / 1000,
      cpuSeconds: cpuSeconds(),
      corpus: this.corpus.length,
      corpusBytes: this.corpus.reduce((n, e) => n + e.data.length, 0),
      features: this.seenFeatures.size,
      blocks: this.seenBlocks.size,
      crashes: [...this.crashSigs.values()],
      slowestMs: Math.round(this.slowestMs),
    };
  }
}
