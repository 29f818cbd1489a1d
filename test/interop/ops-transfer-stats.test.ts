// Pull-side counters and the per-file transfer log: a pull of known files and a delta pull show
// their files, literal and matched bytes in the exec summary record and in /metrics, as a push
// does; `log.transfers` writes one `transfer.file` record per file sent, received or deleted.
import t, { type Test } from 'tap';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type TestServer } from '../helpers/server.js';

type LogRecord = Record<string, unknown>;

/** The value of one sample line of /metrics (0 when absent). */
function sample(body: string, series: string): number {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function start(t: Test, config: object = {}): Promise<TestServer & { metrics: () => Promise<string> }> {
  const srv = await startServer({ config, extraArgs: ['--metrics-listen', '127.0.0.1:0'] });
  t.teardown(() => srv.cleanup());
  const port = (await srv.waitForLog((l) => l.event === 'metrics')).port as number;
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Object.assign(srv, { metrics });
}

async function scratch(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-xfer-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** a.txt (6 bytes), sub/b.bin (100 000 bytes), c.txt (6 bytes) under dir. */
async function knownFiles(dir: string): Promise<void> {
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'a.txt'), 'alpha\n');
  await writeFile(join(dir, 'sub', 'b.bin'), Buffer.alloc(100_000, 7));
  await writeFile(join(dir, 'c.txt'), 'gamma\n');
}

/** b.bin with one byte changed and a later mtime (so the quick check cannot skip it). */
async function changeOneByte(path: string): Promise<void> {
  const b = Buffer.alloc(100_000, 7);
  b[50_000] = 1;
  await writeFile(path, b);
  const later = Date.now() / 1000 + 60;
  await utimes(path, later, later);
}

/** The nth (1-based) exec summary record of a role, once it is logged. */
async function nthExec(srv: TestServer, role: string, n: number): Promise<LogRecord> {
  const recs = (): LogRecord[] => srv.logRecords().filter((l) => l.event === 'exec' && l.role === role);
  await srv.waitForLog(() => recs().length >= n);
  return recs()[n - 1]!;
}

/** The transfer log records of an exec (each rsync run here is its own connection). */
function transfersOf(srv: TestServer, exec: LogRecord): LogRecord[] {
  return srv.logRecords().filter((l) => l.event === 'transfer.file' && l.conn === exec.conn);
}

t.test('a pull counts files, literal and matched bytes (summary record and /metrics)', async (t) => {
  const srv = await start(t);
  const d = await scratch(t);
  await knownFiles(join(srv.root, 'src'));

  const r = await srv.rsync(['-a', srv.remote('src/'), 'got/'], { cwd: d });
  t.equal(r.code, 0, r.stderr);
  const rec = await nthExec(srv, 'sender', 1);
  t.equal(rec.files, 3, 'three files sent');
  t.equal(rec.literalBytes, 100_000 + 12, 'all of it literal');
  t.equal(rec.matchedBytes, 0);
  t.equal(rec.deletions, undefined, 'a sender deletes nothing');

  // The client keeps the old b.bin; the server's copy differs in one byte: a delta pull.
  await changeOneByte(join(srv.root, 'src', 'sub', 'b.bin'));
  const delta = await srv.rsync(['-a', '--no-W', srv.remote('src/'), 'got/'], { cwd: d });
  t.equal(delta.code, 0, delta.stderr);
  const drec = await nthExec(srv, 'sender', 2);
  t.equal(drec.files, 1, 'one file sent');
  const matched = drec.matchedBytes as number;
  const literal = drec.literalBytes as number;
  t.ok(matched > 90_000 && literal < 10_000 && matched + literal === 100_000, `a delta: matched ${matched}, literal ${literal}`);

  const m = await srv.metrics();
  t.equal(sample(m, 'rrsyncd_files_transferred_total{tenant="",role="sender"}'), 4);
  t.equal(sample(m, 'rrsyncd_literal_bytes_total{tenant="",role="sender"}'), 100_012 + literal);
  t.equal(sample(m, 'rrsyncd_matched_bytes_total{tenant="",role="sender"}'), matched);
  t.equal(sample(m, 'rrsyncd_files_transferred_total{tenant="",role="receiver"}'), 0, 'nothing counted for pushes');
  t.equal(srv.logRecords().filter((l) => l.event === 'transfer.file').length, 0, 'no transfer log unless asked');
});

t.test('the counters at protocols 29 and 30 (no varint flist, no inc-recurse at 29)', async (t) => {
  const srv = await start(t);
  const d = await scratch(t);
  await knownFiles(join(srv.root, 'src'));
  for (const [i, protocol] of [29, 30].entries()) {
    const r = await srv.rsync(['-a', `--protocol=${protocol}`, srv.remote('src/'), `got${protocol}/`], { cwd: d });
    t.equal(r.code, 0, r.stderr);
    const rec = await nthExec(srv, 'sender', i + 1);
    t.same([rec.files, rec.literalBytes, rec.matchedBytes], [3, 100_012, 0], `protocol ${protocol}`);
  }
});

t.test('log.transfers: one record per file received, deleted and sent', async (t) => {
  const srv = await start(t, { log: { transfers: true } });
  const d = await scratch(t);
  const src = join(d, 'src');
  await knownFiles(src);
  // A name with a newline: the log shows it escaped.
  await writeFile(join(src, 'odd\nname'), 'x');

  const push = await srv.rsync(['-a', 'src/', srv.remote('dest/')], { cwd: d });
  t.equal(push.code, 0, push.stderr);
  const recv = transfersOf(srv, await nthExec(srv, 'receiver', 1));
  t.same(
    recv.map((l) => [l.op, l.path, l.length, l.literal, l.matched, l.itemize]).sort(),
    [
      ['recv', 'dest/a.txt', 6, 6, 0, '>f+++++++++'],
      ['recv', 'dest/c.txt', 6, 6, 0, '>f+++++++++'],
      ['recv', 'dest/odd\\x0aname', 1, 1, 0, '>f+++++++++'],
      ['recv', 'dest/sub/b.bin', 100_000, 100_000, 0, '>f+++++++++'],
    ],
    'each new file, root-relative and printable',
  );
  t.ok(recv.every((l) => l.level === 'info' && typeof l.exec === 'number'), 'info records of the exec');
  t.equal(srv.logRecords().filter((l) => l.event === 'transfer.file').length, 4, 'nothing else logged');

  await rm(join(src, 'c.txt'));
  await changeOneByte(join(src, 'sub', 'b.bin'));
  const again = await srv.rsync(['-a', '--delete', '--no-W', 'src/', srv.remote('dest/')], { cwd: d });
  t.equal(again.code, 0, again.stderr);
  const second = transfersOf(srv, await nthExec(srv, 'receiver', 2));
  t.same(second.map((l) => [l.op, l.path, l.itemize]).sort(), [
    ['del', 'dest/c.txt', '*deleting'],
    ['recv', 'dest/sub/b.bin', '>f..t......'],
  ]);
  const b = second.find((l) => l.op === 'recv')!;
  t.ok((b.matched as number) > 90_000 && (b.literal as number) + (b.matched as number) === 100_000, 'the delta in the record');

  const pull = await srv.rsync(['-a', srv.remote('dest/sub/'), 'back/'], { cwd: d });
  t.equal(pull.code, 0, pull.stderr);
  const sent = transfersOf(srv, await nthExec(srv, 'sender', 1));
  t.same(sent.map((l) => [l.op, l.path, l.length, l.literal, l.matched, l.itemize]), [['send', 'dest/sub/b.bin', 100_000, 100_000, 0, '<f+++++++++']]);
});
