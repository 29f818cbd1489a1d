// Metrics and health: /metrics counters move with a real push and a refusal, /readyz goes 503 on
// SIGTERM while a transfer drains, and the exec summary record has what an operator asks for.
import t, { type Test } from 'tap';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, sshOptionArgs, startServer, type TestServer } from '../helpers/server.js';

async function get(srv: { metricsPort: number }, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${srv.metricsPort}${path}`);
  return { status: res.status, body: await res.text() };
}

/** The value of one sample line, e.g. metric('rrsyncd_sessions_total{tenant="",role="receiver",result="ok"}'). */
function sample(body: string, series: string): number {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function startWithMetrics(t: Test, extra: Parameters<typeof startServer>[0] = {}): Promise<TestServer & { metricsPort: number }> {
  const srv = await startServer({ ...extra, extraArgs: ['--metrics-listen', '127.0.0.1:0', ...(extra.extraArgs ?? [])] });
  t.teardown(() => srv.cleanup());
  const rec = await srv.waitForLog((l) => l.event === 'metrics');
  return Object.assign(srv, { metricsPort: rec.port as number });
}

async function srcTree(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-ops-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  await mkdir(join(d, 'src', 'sub'), { recursive: true });
  await writeFile(join(d, 'src', 'a.txt'), 'alpha\n');
  await writeFile(join(d, 'src', 'sub', 'b.bin'), Buffer.alloc(100_000, 7));
  await writeFile(join(d, 'src', 'c.txt'), 'gamma\n');
  return d;
}

t.test('counters move with a real push, a delete and a refusal', async (t) => {
  const srv = await startWithMetrics(t);
  const d = await srcTree(t);
  t.equal((await get(srv, '/healthz')).status, 200);
  t.equal((await get(srv, '/readyz')).status, 200);
  const before = (await get(srv, '/metrics')).body;
  t.match(before, /rrsyncd_process_resident_memory_bytes/, 'process metrics');
  t.equal(sample(before, 'rrsyncd_active_connections'), 0);

  const r = await srv.rsync(['-a', 'src/', srv.remote('dest/')], { cwd: d });
  t.equal(r.code, 0, r.stderr);
  const rec = await srv.waitForLog((l) => l.event === 'exec' && l.role === 'receiver');
  t.equal(rec.files, 3, 'the summary record counts the files');
  t.equal(rec.keyComment, 'rrsyncd-test', 'and names the key comment');
  t.ok(typeof rec.fingerprint === 'string' && typeof rec.durationMs === 'number');
  t.equal(srv.logRecords().filter((l) => l.event === 'exec').length, 1, 'one summary record per exec');

  t.equal(rec.literalBytes, 100_000 + 12, 'all data literal on a first push');
  t.equal(rec.matchedBytes, 0);

  await rm(join(d, 'src', 'c.txt'));
  const b = Buffer.alloc(100_000, 7);
  b[50_000] = 1;
  await writeFile(join(d, 'src', 'sub', 'b.bin'), b);
  // same size: a later mtime makes the quick check see the change even within the first push's second
  const later = Date.now() / 1000 + 60;
  await utimes(join(d, 'src', 'sub', 'b.bin'), later, later);
  const del = await srv.rsync(['-a', '--delete', '--no-W', 'src/', srv.remote('dest/')], { cwd: d });
  t.equal(del.code, 0, del.stderr);
  const delRec = await srv.waitForLog((l) => l.event === 'exec' && l.deletions === 1);
  t.equal(delRec.files, 1, 'one file updated');
  t.ok((delRec.matchedBytes as number) > 90_000 && (delRec.literalBytes as number) < 10_000, `a delta: ${delRec.matchedBytes}/${delRec.literalBytes}`);

  const refused = await srv.ssh('ls /');
  t.not(refused.code, 0);
  await srv.waitForLog((l) => l.event === 'exec' && typeof l.refused === 'string');

  const m = (await get(srv, '/metrics')).body;
  t.equal(sample(m, 'rrsyncd_sessions_total{tenant="",role="receiver",result="ok"}'), 2);
  t.equal(sample(m, 'rrsyncd_files_transferred_total{tenant="",role="receiver"}'), 4);
  t.equal(sample(m, 'rrsyncd_deletions_total{tenant=""}'), 1);
  t.ok(sample(m, 'rrsyncd_received_bytes_total{tenant=""}') > 100_000, 'bytes received');
  t.equal(sample(m, 'rrsyncd_refusals_total{reason="command not allowed"}'), 1);
  t.equal(sample(m, 'rrsyncd_session_duration_seconds_count{role="receiver"}'), 2);
  t.equal(sample(m, 'rrsyncd_active_sessions'), 0);
});

t.test('an unknown key counts as an auth failure', async (t) => {
  const srv = await startWithMetrics(t);
  const other = await startServer();
  t.teardown(() => other.cleanup());
  const r2 = await run('ssh', [...sshOptionArgs(srv.port, other.keyPath), 'test@127.0.0.1', 'true']);
  t.not(r2.code, 0);
  await srv.waitForLog((l) => l.event === 'connection' && l.auth === 'failed');
  const m = (await get(srv, '/metrics')).body;
  t.ok(sample(m, 'rrsyncd_auth_failures_total{reason="unknown key"}') >= 1);
});

t.test('/readyz answers 503 while draining on SIGTERM', async (t) => {
  const srv = await startWithMetrics(t, { config: { limits: { shutdownGraceMs: 20_000 } } });
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-ops-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  await writeFile(join(d, 'big'), Buffer.alloc(3 << 20, 1));
  // a slow push keeps the server draining for a while
  const push = srv.rsync(['--bwlimit=300', 'big', srv.remote('big')], { cwd: d });
  await srv.waitForLog((l) => l.msg === 'session negotiated');
  srv.child.kill('SIGTERM');
  await srv.waitForLog((l) => l.msg === 'shutting down');
  const ready = await get(srv, '/readyz');
  t.equal(ready.status, 503, 'not ready while draining');
  t.equal((await get(srv, '/healthz')).status, 200, 'still alive');
  const r = await push;
  t.equal(r.code, 0, `the running push finishes: ${r.stderr}`);
  const code = srv.child.exitCode ?? (await new Promise((resolve) => srv.child.once('exit', resolve)));
  t.equal(code, 0, 'and the server exits 0');
});
