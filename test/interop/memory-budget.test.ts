/**
 * Per-session memory budgets (grant limits.memoryBytes) with the stock client through the pipe
 * harness: a pull whose block sums pass a small budget and a 200 000-entry list without
 * incremental recursion (push and pull) end with rsync's out-of-memory exit code 22 (at protocol
 * 31+, where the server's exit code reaches the client) and
 * "rrsyncd: session memory budget exceeded", instead of the server holding that memory; the same
 * pull under the default budget works.
 */
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, RSYNC, REPO_ROOT } from '../helpers/server.js';

const RSH = join(REPO_ROOT, 'test', 'pipe', 'rsh.sh');
const BASIS = 8 * 1024 * 1024;

function rsync(root: string, memoryBytes: number | undefined, args: string[]) {
  const grant = { noLock: true, limits: { allowDevices: false, allowChown: false, memoryBytes } };
  return run(RSYNC, ['-e', RSH, ...args], {
    env: { RRSYNCD_TEST_ROOT: root, RRSYNCD_TEST_GRANT: JSON.stringify(grant), NODE_OPTIONS: '' },
    timeoutMs: 240_000,
  });
}

const dir = mkdtempSync(join(tmpdir(), 'memory-budget-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a pull whose block sums pass the budget', async (t) => {
  const root = join(dir, 'sums-root');
  mkdirSync(join(root, 'src'), { recursive: true });
  const data = Buffer.alloc(BASIS);
  for (let i = 0; i < BASIS; i += 4096) data.writeUInt32LE(i * 2654435761 >>> 0, i);
  writeFileSync(join(root, 'src', 'big'), data);
  for (const protocol of [29, 31, 32]) {
    const dest = join(dir, `sums-dest-${protocol}`);
    mkdirSync(dest);
    const basis = Buffer.from(data);
    basis[100] ^= 1; // the client has a basis that differs: it sends block sums
    writeFileSync(join(dest, 'big'), basis);
    utimesSync(join(dest, 'big'), 1_000_000, 1_000_000);
    // about 2 900 blocks: some 50 KiB of sums, over a 32 KiB budget
    const small = await rsync(root, 32 * 1024, ['-a', '--no-W', `--protocol=${protocol}`, 'x:src/', dest + '/']);
    // below 31 there is no MSG_ERROR_EXIT: the client sees the connection end (12)
    t.equal(small.code, protocol >= 31 ? 22 : 12, `protocol ${protocol}: exit ${protocol >= 31 ? '22 (RERR_MALLOC)' : 12}`);
    t.match(small.stderr, /rrsyncd: session memory budget exceeded: the block sums of big/, 'the reason reaches the client');
    t.ok(readFileSync(join(dest, 'big')).equals(basis), 'the basis is untouched');
    const ok = await rsync(root, undefined, ['-a', '--no-W', `--protocol=${protocol}`, 'x:src/', dest + '/']);
    t.equal(ok.code, 0, `protocol ${protocol}: the same pull under the default budget works (${ok.stderr})`);
    t.ok(readFileSync(join(dest, 'big')).equals(data), 'and delivers the file');
  }
});

t.test('a 200 000-entry list without incremental recursion', async (t) => {
  const tree = join(dir, 'tree');
  for (let d = 0; d < 200; d++) {
    mkdirSync(join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < 1000; f++) writeFileSync(join(tree, `d${d}`, `f${f}`), '');
  }
  const budget = 16 * 1024 * 1024; // 200 000 entries need some 50 MiB
  await t.test('push', async (t) => {
    const root = join(dir, 'push-root');
    mkdirSync(root);
    const r = await rsync(root, budget, ['-r', '--no-inc-recursive', tree + '/', 'x:dst/']);
    t.equal(r.code, 22, 'exit 22');
    t.match(r.stderr, /rrsyncd: session memory budget exceeded: the file list needs/);
  });
  await t.test('pull', async (t) => {
    const root = join(dir, 'pull-root');
    mkdirSync(root);
    rmSync(join(root, 'src'), { force: true });
    const r0 = await run('/bin/mv', [tree, join(root, 'src')]);
    t.equal(r0.code, 0);
    const r = await rsync(root, budget, ['-r', '--no-inc-recursive', 'x:src/', join(dir, 'pulled') + '/']);
    t.equal(r.code, 22, 'exit 22');
    t.match(r.stderr, /rrsyncd: session memory budget exceeded: the file list needs/);
  });
});
