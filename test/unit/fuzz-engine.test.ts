/**
 * The fuzz engine itself: coverage guidance finds planted bugs behind nested byte checks (each
 * step is a ~1/5000 mutation once the step before is in the corpus; all three bytes at once from
 * the seed would take ~10^11 tries), each crash is saved once with its stack, clean rejections
 * are not crashes, the allocation guard turns a huge allocation into a crash, the corpus is kept.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Fuzzer } from '../../fuzz/engine.js';
import { AllocationTooLarge, installAllocationGuard, type Target } from '../../fuzz/harness.js';
import { ProtocolError } from '../../src/protocol/errors.js';

function planted(data: Buffer): void {
  if (data.length < 5) throw new ProtocolError('short');
  if (data[0] === 0xff) {
    if (data[1] === 0x7f) {
      if (data[2] === 0x80) throw new TypeError('planted bug');
    } else if (data[1] === 0x01) {
      if (data[2] === 0xfe) Buffer.alloc(1 << 30);
    }
  }
}

const target: Target = { name: 'planted', maxLen: 6, run: planted, seeds: () => [Buffer.from('hello')] };

t.test('finds crashes behind nested byte checks, saves it once with its stack', async (t) => {
  installAllocationGuard();
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-engine-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fuzzer = new Fuzzer(target, {
    runs: 300_000,
    maxTimeSec: 240,
    seed: 7,
    timeoutSec: 60,
    batch: 64,
    corpusDir: join(dir, 'corpus'),
    crashDir: join(dir, 'crashes'),
    include: (url) => url.includes('fuzz-engine.test'),
    log: () => {},
    stopOnCrashes: 2,
  });
  const stats = await fuzzer.run();
  t.equal(stats.crashes.length, 2, `both planted crashes found in ${stats.execs} executions`);
  t.ok(stats.execs < 300_000, 'stopped once both were found');
  const files = readdirSync(join(dir, 'crashes')).sort();
  t.equal(files.filter((f) => f.endsWith('.txt')).length, 2, 'one stack note per crash');
  const notes = files.filter((f) => f.endsWith('.txt')).map((f) => readFileSync(join(dir, 'crashes', f), 'utf8'));
  t.ok(notes.some((n) => n.includes('TypeError: planted bug') && n.includes('planted (')), 'stack of the TypeError');
  t.ok(notes.some((n) => n.includes(AllocationTooLarge.name)), 'the 1 GiB allocation is a crash');
  const inputs = files.filter((f) => !f.endsWith('.txt')).map((f) => [...readFileSync(join(dir, 'crashes', f)).subarray(0, 3)].join(','));
  t.same(inputs.sort(), ['255,1,254', '255,127,128'], 'the crash files hold the inputs');
  t.ok(readdirSync(join(dir, 'corpus')).length >= 3, 'the corpus kept the steps towards the magic');
});

t.test('a hang is killed by the watchdog and its input saved', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-hang-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const engine = new URL('../../fuzz/engine.ts', import.meta.url).href;
  const script = join(dir, 'hang.mts');
  writeFileSync(
    script,
    `import { Fuzzer } from '${engine}';
const target = { name: 'hang', maxLen: 8, seeds: () => [Buffer.from('ab')], run: (d: Buffer) => { if (d[0] === 0x68) for (;;); } };
await new Fuzzer(target, { runs: 1e9, maxTimeSec: 60, seed: 1, timeoutSec: 1, batch: 16, corpusDir: '${dir}/c', crashDir: '${dir}/x', include: () => false, log: () => {} }).run();
`,
  );
  const res = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 90_000, cwd: new URL('../../', import.meta.url).pathname });
  t.equal(res.signal, 'SIGKILL', 'the process was killed');
  t.match(res.stderr, /fuzz: timeout: input saved as/);
  const saved = readdirSync(join(dir, 'x')).filter((f) => f.startsWith('timeout-') && !f.endsWith('.txt'));
  t.equal(saved.length, 1, 'one timeout file');
  t.equal(readFileSync(join(dir, 'x', saved[0]))[0], 0x68, 'it holds the input that hung');
});

t.test('the event loop turns between inputs (Node-API finalizers and setImmediate work run)', async (t) => {
  // A target whose cleanup waits for a loop turn, like a zstd context's finalizer: without turns
  // between inputs the pending work grows with every run (the token-zstd memory stall).
  let pending = 0;
  let most = 0;
  const deferred: Target = {
    name: 'deferred',
    maxLen: 4,
    seeds: () => [Buffer.from('ab')],
    run: () => {
      pending++;
      most = Math.max(most, pending);
      setImmediate(() => pending--);
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-turn-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const stats = await new Fuzzer(deferred, {
    runs: 20_000,
    maxTimeSec: 120,
    seed: 3,
    timeoutSec: 60,
    batch: 512,
    corpusDir: join(dir, 'corpus'),
    crashDir: join(dir, 'crashes'),
    include: () => false,
    log: () => {},
  }).run();
  t.equal(stats.execs, 20_000, 'all runs made');
  t.ok(most <= 1024, `at most ${most} cleanups were waiting at once (no turn: 20 000)`);
});

t.test('memory passing the RSS limit is killed and the input running then saved', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-oom-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const engine = new URL('../../fuzz/engine.ts', import.meta.url).href;
  const script = join(dir, 'leak.mts');
  writeFileSync(
    script,
    `import { Fuzzer } from '${engine}';
const kept: Buffer[] = [];
const target = { name: 'leak', maxLen: 8, seeds: () => [Buffer.from('ab')], run: () => { kept.push(Buffer.alloc(1 << 20, 1)); } };
await new Fuzzer(target, { runs: 1e9, maxTimeSec: 60, seed: 1, timeoutSec: 60, rssLimitMb: 400, batch: 16, corpusDir: '${dir}/c', crashDir: '${dir}/x', include: () => false, log: () => {} }).run();
`,
  );
  const res = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 90_000, cwd: new URL('../../', import.meta.url).pathname });
  t.equal(res.signal, 'SIGKILL', 'the process was killed');
  t.match(res.stderr, /fuzz: oom: input saved as/);
  const notes = readdirSync(join(dir, 'x')).filter((f) => f.startsWith('oom-') && f.endsWith('.txt'));
  t.equal(notes.length, 1, 'one oom file with its note');
  t.match(readFileSync(join(dir, 'x', notes[0]), 'utf8'), /RSS \d+ MiB passed 400 MiB/);
});
