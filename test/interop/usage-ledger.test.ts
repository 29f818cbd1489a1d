// The usage ledger with the real rsync client, every session in this process (engine host), so
// that concurrent sessions share one ledger per root as they do in a server: symlinks and hard
// links are charged, concurrent -no-lock pushes stay within the quota together, a -b replacement
// frees nothing while its backup stays, and the first session of a large root does not stall
// other tenants (the walk yields to the event loop).
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startEngineHost, type EngineHost } from './lib/engine-host.js';
import { diskUsage } from '../helpers/usage.js';
import { usageLedgers } from '../../src/usage/registry.js';
import { measureSubtree } from '../../src/usage/walk.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import type { ChangePolicy } from '../../src/gateway/index.js';

interface Run {
  code: number;
  stderr: string;
}

function push(host: EngineHost, root: string, src: string, dest: string, grant: object, extra: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn('rsync', ['-a', ...extra, '-e', host.rsh, `${src}/`, `x:${dest}/`], {
      env: { ...process.env, ...host.env, RRSYNCD_TEST_ROOT: root, RRSYNCD_TEST_GRANT: JSON.stringify(grant) },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

const quota = (limits: object, extra: object = {}) => ({ ...extra, limits: { allowDevices: false, allowChown: false, ...limits } });

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'rrsyncd-ledger-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function dirs(t: Test, ...names: string[]): string[] {
  const top = tempDir(t);
  return names.map((n) => {
    mkdirSync(join(top, n));
    return join(top, n);
  });
}

let host: EngineHost;
t.before(async () => {
  host = await startEngineHost();
});
t.teardown(() => host.close());

t.test('3000 symlinks with 4000-byte targets against 100000 bytes / 20 entries: refused once full', async (t) => {
  const [src, root] = dirs(t, 'src', 'root');
  for (let i = 0; i < 3000; i++) symlinkSync(`${'t'.repeat(3990)}-${String(i).padStart(5, '0')}`, join(src!, `l${i}`));
  const r = await push(host, root!, src!, 'dst', quota({ quotaBytes: 100_000, quotaFiles: 20 }));
  t.equal(r.code, 11, r.stderr);
  t.match(r.stderr, /quota exceeded/);
  const u = diskUsage(root!);
  t.ok(u.entries <= 20 && u.bytes <= 100_000, `the root holds ${u.entries} entries, ${u.bytes} bytes`);
  t.same(ledgerOf(root!), u, 'the ledger agrees with the disk');
});

t.test('hard-link followers are entries; their data is charged once', async (t) => {
  const [src, root] = dirs(t, 'src', 'root');
  writeFileSync(join(src!, 'data'), randomBytes(10_000));
  for (let i = 0; i < 29; i++) linkSync(join(src!, 'data'), join(src!, `link${i}`));
  const refused = await push(host, root!, src!, 'dst', quota({ quotaFiles: 10 }), ['-H']);
  t.equal(refused.code, 11, refused.stderr);
  t.ok(diskUsage(root!).entries <= 10, `30 names do not fit 10 entries (${diskUsage(root!).entries} made)`);
  t.same(ledgerOf(root!), diskUsage(root!), 'the ledger agrees with the disk');
  const [root2] = dirs(t, 'root2');
  const ok = await push(host, root2!, src!, 'dst', quota({ quotaFiles: 31, quotaBytes: 15_000 }), ['-H']);
  t.equal(ok.code, 0, `30 links of one 10000-byte file (and dst/) fit 31 entries and 15000 bytes: ${ok.stderr}`);
  t.same(ledgerOf(root2!), { bytes: 10_000, entries: 31 }, 'the ledger counts 31 entries, 10000 bytes');
  t.same(diskUsage(root2!), { bytes: 10_000, entries: 31 }, 'as the disk does');
});

t.test('8 concurrent -no-lock pushes end within the quota together', async (t) => {
  const top = tempDir(t);
  const root = join(top, 'root');
  mkdirSync(root);
  // The highest committed + reserved total any change saw (the recorder runs after the quota).
  let peak = 0;
  const track = () => {
    const l = usageLedgers.peek(root);
    if (l) peak = Math.max(peak, l.bytes + l.reservedBytes);
  };
  const recorder: ChangePolicy = { before: track, after: track };
  const own = await startEngineHost({ changePolicies: [recorder] });
  t.teardown(() => own.close());
  const LIMIT = 1_000_000;
  const srcs = Array.from({ length: 8 }, (_, i) => {
    const s = join(top, `src${i}`);
    mkdirSync(s);
    for (let f = 0; f < 4; f++) writeFileSync(join(s, `f${f}`), randomBytes(150_000));
    return s;
  });
  const runs = await Promise.all(srcs.map((s, i) => push(own, root, s, `dst${i}`, quota({ quotaBytes: LIMIT }, { noLock: true }))));
  const codes = runs.map((r) => r.code);
  t.ok(codes.every((c) => c === 0 || c === 11), `exit codes ${codes.join(' ')}`);
  t.ok(codes.includes(11), 'the pushes that did not fit were refused');
  const u = diskUsage(root);
  t.ok(u.bytes <= LIMIT, `the root holds ${u.bytes} bytes of ${LIMIT} (4.8 MB were pushed)`);
  t.ok(u.bytes >= LIMIT - 2 * 150_000, `and the quota was used (${u.bytes} bytes)`);
  t.ok(peak <= LIMIT, `committed + reserved never passed the quota (peak ${peak})`);
  const l = usageLedgers.peek(root)!;
  t.same({ bytes: l.bytes, entries: l.entries }, u, 'the ledger agrees with the disk');
  t.equal(l.reservedBytes, 0, 'every reservation was released');
  t.equal(l.sessions, 0, 'no session holds the ledger');
});

for (const backup of [['-b'], ['--backup-dir=old']]) {
  t.test(`a ${backup[0]} replacement does not free the backup's bytes`, async (t) => {
    const [src, root] = dirs(t, 'src', 'root');
    mkdirSync(join(root!, 'dst'));
    writeFileSync(join(root!, 'dst', 'big'), randomBytes(100_000));
    utimesSync(join(root!, 'dst', 'big'), 1_500_000_000, 1_500_000_000);
    writeFileSync(join(src!, 'big'), randomBytes(100_000));
    const grant = quota({ quotaBytes: 150_000 });
    const r = await push(host, root!, src!, 'dst', grant, [...backup, '-W']);
    t.equal(r.code, 11, `old + new data need 200000 bytes: ${r.stderr}`);
    t.match(r.stderr, /quota exceeded: more than 150000 bytes/);
    const u = diskUsage(root!);
    t.ok(u.bytes <= 150_000, `the root holds ${u.bytes} bytes`);
    t.same(ledgerOf(root!), u, 'the ledger agrees with the disk');
    // refused while the data is written (old + temp would pass the quota), so no backup is made
    // for data that never lands, as rsync on a full disk
    const leftBackup = join(root!, 'dst', backup[0] === '-b' ? 'big~' : 'old/big');
    t.notOk(existsSync(leftBackup), `no backup left for a refused replacement (${backup[0]})`);
    // the same replacement without a backup, in a fresh copy of the destination, fits
    const [root2] = dirs(t, 'root2');
    mkdirSync(join(root2!, 'dst'));
    writeFileSync(join(root2!, 'dst', 'big'), randomBytes(100_000));
    utimesSync(join(root2!, 'dst', 'big'), 1_500_000_000, 1_500_000_000);
    const plain = await push(host, root2!, src!, 'dst', grant, ['-W']);
    t.equal(plain.code, 0, `without a backup the replacement fits: ${plain.stderr}`);
    t.same(ledgerOf(root2!), diskUsage(root2!), 'the ledger agrees with the disk');
  });
}

t.test('the ledger agrees with the disk after pushes with each way of writing a file', async (t) => {
  const ways = [[], ['--inplace'], ['--append'], ['--partial-dir=.p'], ['--delay-updates'], ['-b', '--no-W'], ['--delete', '-H'], ['-W', '--sparse']];
  for (const way of ways) {
    const [src, root] = dirs(t, 'src', 'root');
    mkdirSync(join(root!, 'dst', 'gone'), { recursive: true });
    const old = randomBytes(120_000);
    writeFileSync(join(root!, 'dst', 'grow'), old.subarray(0, 50_000));
    writeFileSync(join(root!, 'dst', 'shrink'), old);
    writeFileSync(join(root!, 'dst', 'gone', 'x'), old.subarray(0, 7_000));
    for (const f of ['grow', 'shrink']) utimesSync(join(root!, 'dst', f), 1_500_000_000, 1_500_000_000);
    writeFileSync(join(src!, 'grow'), Buffer.concat([old.subarray(0, 50_000), randomBytes(90_000)]));
    writeFileSync(join(src!, 'shrink'), old.subarray(0, 30_000));
    writeFileSync(join(src!, 'new'), Buffer.alloc(64_000));
    linkSync(join(src!, 'new'), join(src!, 'new-link'));
    symlinkSync('grow', join(src!, 'sym'));
    const r = await push(host, root!, src!, 'dst', quota({ quotaBytes: 10_000_000 }), way);
    t.equal(r.code, 0, `${way.join(' ')}: ${r.stderr}`);
    t.same(ledgerOf(root!), diskUsage(root!), `${way.join(' ') || 'default'}: the ledger agrees with the disk`);
    t.equal(usageLedgers.peek(root!)!.reservedBytes, 0, 'nothing stays reserved');
  }
});

t.test('a pull with --remove-source-files frees what it removes', async (t) => {
  const [root, dst] = dirs(t, 'root', 'dst');
  mkdirSync(join(root!, 'out'));
  for (let i = 0; i < 5; i++) writeFileSync(join(root!, 'out', `f${i}`), randomBytes(10_000));
  const r = await new Promise<Run>((resolve) => {
    const child = spawn('rsync', ['-a', '--remove-source-files', '-e', host.rsh, 'x:out/', `${dst}/`], {
      env: { ...process.env, ...host.env, RRSYNCD_TEST_ROOT: root, RRSYNCD_TEST_GRANT: JSON.stringify(quota({ quotaBytes: 1_000_000 })) },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
  t.equal(r.code, 0, r.stderr);
  t.same(diskUsage(root!), { bytes: 0, entries: 1 }, 'only out/ is left');
  t.same(ledgerOf(root!), diskUsage(root!), 'the ledger agrees with the disk');
});

t.test("a large tenant's first session does not stall another tenant's push", async (t) => {
  const [src, big, small] = dirs(t, 'src', 'big', 'small');
  writeFileSync(join(src!, 'f'), 'small push\n');
  // 60 000 entries (a smaller count than the 300 000 of the report: creating them is slow on a shared machine)
  for (let d = 0; d < 120; d++) {
    mkdirSync(join(big!, `d${d}`));
    for (let i = 0; i < 499; i++) symlinkSync(`target-${d}-${i}`, join(big!, `d${d}`, `l${i}`));
  }
  const grant = quota({ quotaBytes: 1_000_000_000 });
  t.equal((await push(host, small!, src!, 'warm', grant)).code, 0, 'engine warmed up');
  // how long the synchronous walk of the big root takes: what a session start used to block
  const sb = Sandbox.open(big!);
  const t0 = performance.now();
  t.equal(measureSubtree(sb, '').entries, 60_001);
  const syncMs = performance.now() - t0;
  sb.close();

  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  const bigPush = push(host, big!, src!, 'new', grant);
  const started = performance.now();
  const smallPush = await push(host, small!, src!, 'other', grant);
  const smallMs = performance.now() - started;
  const bigDone = await bigPush;
  h.disable();
  t.equal(smallPush.code, 0, smallPush.stderr);
  t.equal(bigDone.code, 0, bigDone.stderr);
  const maxMs = h.max / 1e6;
  t.ok(maxMs < syncMs / 2, `longest event-loop stall ${maxMs.toFixed(0)} ms, a synchronous walk takes ${syncMs.toFixed(0)} ms (the other push took ${smallMs.toFixed(0)} ms)`);
  t.same(ledgerOf(big!), diskUsage(big!), 'the walk measured the big root');
});

function ledgerOf(root: string): { bytes: number; entries: number } | undefined {
  const l = usageLedgers.peek(root);
  return l && { bytes: l.bytes, entries: l.entries };
}
