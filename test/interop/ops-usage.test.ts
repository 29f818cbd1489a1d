// `rrsyncd usage` and the quota gauges read the usage ledger: after a randomised sequence of
// pushes (files, symlinks, hard links, deletions, backups) they agree with a fresh walk of the
// tenant's root; the ledger survives a restart (its state file) and a reconcile corrects what
// was changed behind the server's back.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startServer, type TestServer } from '../helpers/server.js';
import { grantAsTenant } from '../helpers/tenant.js';
import { diskUsage } from '../helpers/usage.js';
import type { UsageView } from '../../src/ops/usage.js';
import { prng } from '../helpers/prng.js';

const LIMITS = { quotaBytes: 50_000_000, quotaFiles: 10_000 };

async function usage(stateDir: string): Promise<UsageView> {
  const r = await runCli(['usage', '--json', '--tenant', 'test', '--socket', join(stateDir, 'control.sock')]);
  if (r.code !== 0) throw new Error(`rrsyncd usage: ${r.stderr}`);
  return (JSON.parse(r.stdout) as UsageView[])[0]!;
}

async function metric(port: number, series: string): Promise<number | undefined> {
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : undefined;
}

/** One random change of the source tree: a new file, a symlink, a hard link, a removal or a rewrite. */
function mutate(src: string, rnd: (n: number) => number, step: number): void {
  const files = readdirSync(src, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  const dir = join(src, `d${rnd(4)}`);
  mkdirSync(dir, { recursive: true });
  const name = join(dir, `n${step}`);
  switch (files.length === 0 ? 0 : rnd(5)) {
    case 0:
      return writeFileSync(name, randomBytes(rnd(200_000)));
    case 1:
      return symlinkSync('x'.repeat(1 + rnd(3000)), name);
    case 2:
      return linkSync(files[rnd(files.length)]!, name);
    case 3:
      return unlinkSync(files[rnd(files.length)]!);
    default:
      return writeFileSync(files[rnd(files.length)]!, randomBytes(rnd(100_000)));
  }
}

const seed = Number(process.env.RRSYNCD_USAGE_SEED ?? Math.floor(Math.random() * 2 ** 31));

t.test(`usage agrees with a fresh walk after random pushes (seed ${seed}), and survives a restart`, async (t) => {
  const top = mkdtempSync(join(tmpdir(), 'rrsyncd-usage-'));
  t.teardown(() => rmSync(top, { recursive: true, force: true }));
  const [root, stateDir, src] = ['root', 'state', 'src'].map((d) => join(top, d));
  for (const d of [root!, stateDir!, src!]) mkdirSync(d);
  const tenantRoot = join(root!, 'test');
  const start = async (reconcileSeconds: number): Promise<TestServer> => {
    const srv = await startServer({
      root,
      stateDir,
      config: {},
      extraArgs: ['--metrics-listen', '127.0.0.1:0'],
      env: { RRSYNCD_USAGE_RECONCILE_SECONDS: String(reconcileSeconds) },
    });
    t.teardown(() => srv.cleanup());
    await grantAsTenant(srv, '', { limits: LIMITS });
    return srv;
  };

  const srv = await start(0);
  const rnd = prng(seed);
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 6; i++) mutate(src!, rnd, round * 10 + i);
    const args = ['-aH', '--delete', ...(round % 2 ? ['-b'] : []), 'src/', srv.remote('dst/')];
    const r = await srv.rsync(args, { cwd: top });
    t.equal(r.code, 0, `round ${round}: ${r.stderr}`);
  }
  const disk = diskUsage(tenantRoot);
  const u = await usage(stateDir!);
  t.same({ bytes: u.bytes, entries: u.entries }, disk, 'rrsyncd usage --json counts what a fresh walk counts');
  t.equal(u.quotaBytes, LIMITS.quotaBytes);
  t.equal(u.reservedBytes, 0);
  t.ok(u.measuredAt !== null);
  const port = (await srv.waitForLog((l) => l.event === 'metrics')).port as number;
  t.equal(await metric(port, 'rrsyncd_quota_used_bytes{tenant="test"}'), disk.bytes, 'gauge: bytes used');
  t.equal(await metric(port, 'rrsyncd_quota_used_files{tenant="test"}'), disk.entries, 'gauge: entries used');
  t.equal(await metric(port, 'rrsyncd_quota_limit_bytes{tenant="test"}'), LIMITS.quotaBytes, 'gauge: byte quota');
  t.equal(await metric(port, 'rrsyncd_quota_limit_files{tenant="test"}'), LIMITS.quotaFiles, 'gauge: entry quota');
  const table = await runCli(['usage', '--socket', join(stateDir!, 'control.sock')]);
  t.match(table.stdout, new RegExp(`^test  ${disk.bytes} bytes  ${disk.entries} entries  quota 50000000 bytes, 10000 files`, 'm'));
  const unknown = await runCli(['usage', '--tenant', 'nobody', '--socket', join(stateDir!, 'control.sock')]);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no tenant "nobody"/);

  t.equal(await srv.stop(), 0);
  t.ok(existsSync(join(stateDir!, 'usage')) && readdirSync(join(stateDir!, 'usage')).some((f) => f.endsWith('.json')), 'the ledger was saved');
  writeFileSync(join(tenantRoot, 'behind-the-back'), randomBytes(5000));

  await start(0); // reconciled once, when the ledger is first opened
  const loaded = await usage(stateDir!);
  t.same({ bytes: loaded.bytes, entries: loaded.entries, measuredAt: loaded.measuredAt }, { ...disk, measuredAt: u.measuredAt }, 'after a restart: the saved ledger, not a walk');
  let fixed = loaded;
  for (let i = 0; i < 60 && fixed.drift === null; i++) {
    await new Promise((r) => setTimeout(r, 500));
    fixed = await usage(stateDir!);
  }
  t.same(fixed.drift && { bytes: fixed.drift.bytes, entries: fixed.drift.entries }, { bytes: 5000, entries: 1 }, 'the reconcile at first use found the file added behind its back');
  t.same({ bytes: fixed.bytes, entries: fixed.entries }, diskUsage(tenantRoot), 'and corrected the ledger');
});
