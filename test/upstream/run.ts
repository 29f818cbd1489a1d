/**
 * rsync's own test suite (rsync 3.5.0 `runtests.py`) as an oracle for rrsyncd; see
 * docs/upstream-suite.md.
 *
 *   npm run test:upstream -- --rsync-src DIR [--mode stock|push|pull]... [-j N] [--out DIR]
 *                            [--timeout SEC] [--allow-devices] [TEST...]
 *
 * `stock` runs the suite against DIR/rsync itself. `push` and `pull` start a real rrsyncd on a
 * random loopback port with a fresh key granted `command="rrsync -no-lock /"`, and point
 * `--rsync-bin` at test/upstream/rsync-wrapper.sh, which turns each plain local transfer into a
 * push to (or a pull from) that server. `--allow-devices`: the key's grant also allows devices
 * and specials (a tenant with limits.allowDevices). Results go to OUT/MODE/ (runtests.log,
 * results.json, server.log, rewritten.log: every rewritten command line, by test); failed tests
 * keep their scratch directory there. Prints the counts and each test that passes stock but not
 * through the server (exit 1 when there is one).
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startServer, type TestServer } from '../helpers/server.js';
import { grantAsTenant } from '../helpers/tenant.js';

type Mode = 'stock' | 'push' | 'pull';
type Outcome = 'pass' | 'fail' | 'skip' | 'xfail';
type Results = Record<string, Outcome>;

const WRAPPER = fileURLToPath(new URL('./rsync-wrapper.sh', import.meta.url));
const GRANT = 'command="rrsync -no-lock /"';

interface Options {
  src: string;
  modes: Mode[];
  jobs: number;
  out: string;
  timeout: number;
  tests: string[];
  allowDevices: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'rsync-src': { type: 'string' },
      mode: { type: 'string', multiple: true },
      jobs: { type: 'string', short: 'j' },
      out: { type: 'string' },
      timeout: { type: 'string' },
      'allow-devices': { type: 'boolean' },
    },
  });
  const src = values['rsync-src'];
  if (!src) throw new Error('--rsync-src DIR is required (rsync 3.5.0 source, built)');
  const modes = (values.mode ?? ['stock', 'push', 'pull']).flatMap((m) => m.split(','));
  for (const m of modes) if (!['stock', 'push', 'pull'].includes(m)) throw new Error(`unknown --mode ${m}`);
  return {
    src: resolve(src),
    modes: modes as Mode[],
    jobs: Number(values.jobs ?? 2),
    out: resolve(values.out ?? join(tmpdir(), 'rrsyncd-upstream')),
    timeout: Number(values.timeout ?? 300),
    tests: positionals,
    allowDevices: values['allow-devices'] ?? false,
  };
}

function checkSource(src: string): void {
  for (const f of ['runtests.py', 'rsync', 'tls', 'getfsdev']) {
    if (!existsSync(join(src, f))) {
      throw new Error(`${join(src, f)} is missing: build rsync 3.5.0 there first (./configure --disable-md2man && make && make check-progs)`);
    }
  }
}

/** A `rsync` the suite can run: the wrapper with this mode's settings baked in. */
async function writeShim(dir: string, mode: Mode, src: string, srv: TestServer): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const shim = join(bin, 'rsync');
  await writeFile(
    shim,
    [
      '#!/bin/sh',
      `RRU_REAL=${q(join(src, 'rsync'))} RRU_MODE=${mode} RRU_RSH=${q(srv.rsh)} RRU_LOG=${q(join(dir, 'rewritten.log'))}`,
      'export RRU_REAL RRU_MODE RRU_RSH RRU_LOG',
      `exec ${q(WRAPPER)} "$@"`,
      '',
    ].join('\n'),
  );
  await chmod(shim, 0o755);
  return shim;
}

/** Runs runtests.py; its output goes to DIR/runtests.log, one dot per finished test to stdout. */
function runSuite(opts: Options, dir: string, rsyncBin: string): Promise<Results> {
  const args = ['runtests.py', '--rsync-bin', rsyncBin, '-j', String(opts.jobs), '--timeout', String(opts.timeout), ...opts.tests];
  const log = createWriteStream(join(dir, 'runtests.log'));
  const results: Results = {};
  return new Promise((resolvePromise, reject) => {
    const child = spawn('python3', args, {
      cwd: opts.src,
      env: { ...process.env, scratchbase: join(dir, 'scratch') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let tail = '';
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      const lines = (tail + chunk.toString('utf8')).split('\n');
      tail = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^(PASS|FAIL|SKIP|XFAIL)\s+(\S+)/.exec(line);
        if (!m) continue;
        results[m[2]!] = m[1]!.toLowerCase() as Outcome;
        process.stdout.write(m[1] === 'PASS' ? '.' : m[1]![0]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('error', reject);
    child.on('close', () => {
      log.end();
      process.stdout.write('\n');
      resolvePromise(results);
    });
  });
}

async function runMode(opts: Options, mode: Mode): Promise<Results> {
  const dir = join(opts.out, mode);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  process.stdout.write(`== ${mode}: ${dir}\n`);
  if (mode === 'stock') return save(dir, await runSuite(opts, dir, join(opts.src, 'rsync')));
  const srv = await startServer({ authorizedKeysOptions: GRANT, root: '/', config: {} });
  try {
    // devices and specials need a tenant's grant (an authorized_keys line cannot give them)
    if (opts.allowDevices) await grantAsTenant(srv, GRANT, { root: '/', limits: { allowDevices: true, allowChown: true } });
    const results = await runSuite(opts, dir, await writeShim(dir, mode, opts.src, srv));
    await writeFile(join(dir, 'server.log'), srv.logs());
    return save(dir, results);
  } finally {
    await srv.cleanup();
  }
}

async function save(dir: string, results: Results): Promise<Results> {
  await writeFile(join(dir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  return results;
}

async function load(opts: Options, mode: Mode): Promise<Results | undefined> {
  try {
    return JSON.parse(await readFile(join(opts.out, mode, 'results.json'), 'utf8')) as Results;
  } catch {
    return undefined;
  }
}

function counts(r: Results): string {
  const n = (o: Outcome) => Object.values(r).filter((v) => v === o).length;
  return `${n('pass')} passed, ${n('fail')} failed, ${n('skip')} skipped, ${n('xfail')} xfailed`;
}

async function reachedServer(opts: Options, mode: Mode): Promise<number> {
  const text = await readFile(join(opts.out, mode, 'rewritten.log'), 'utf8').catch(() => '');
  return new Set(text.split('\n').filter(Boolean).map((l) => l.split('\t')[0])).size;
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  checkSource(opts.src);
  const results = new Map<Mode, Results>();
  for (const mode of opts.modes) results.set(mode, await runMode(opts, mode));
  const stock = results.get('stock') ?? (await load(opts, 'stock'));
  let worse = 0;
  for (const [mode, r] of results) {
    const reached = mode === 'stock' ? '' : `; ${await reachedServer(opts, mode)} tests reached the server`;
    process.stdout.write(`${mode}: ${counts(r)}${reached}\n`);
    if (mode === 'stock') continue;
    if (!stock) {
      process.stdout.write(`  (no stock results in ${opts.out}/stock to compare with: run --mode stock)\n`);
      continue;
    }
    const lost = Object.keys(r).filter((t) => stock[t] === 'pass' && r[t] !== 'pass').sort();
    worse += lost.length;
    process.stdout.write(`  passes stock, not through the server (${lost.length}):\n`);
    for (const t of lost) process.stdout.write(`    ${r[t]!.padEnd(5)} ${t}\n`);
  }
  return worse ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`test:upstream: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
