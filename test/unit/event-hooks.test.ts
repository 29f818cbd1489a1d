// The event hooks runner (src/ops/event-hooks.ts) and the webhook (src/ops/webhook.ts): verify
// vetoes with the hook's first stderr line, the JSON event on stdin, RRSYNCD_* variables and cwd,
// a hook that ignores SIGTERM killed after its timeout, output kept to 4 KiB, a webhook that
// fails then succeeds, and sessionEnd fired by the operations side for a plain session.
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { AddressInfo } from 'node:net';
import { createEventHooks } from '../../src/ops/event-hooks.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogSink } from '../../src/log.js';
import { Operations } from '../../src/ops/operations.js';
import type { HooksConfig } from '../../src/config/schema.js';
import type { RevisionEvent } from '../../src/revisions/layout.js';

async function tmp(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-hooks-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

function memoryLog(): { log: pino.Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), records };
}

function hooksConfig(over: Partial<HooksConfig> = {}): HooksConfig {
  return { verify: [], published: [], sessionEnd: [], timeoutSeconds: 30, webhook: { url: '', timeoutSeconds: 5, retries: 3 }, ...over };
}

const EVENT: RevisionEvent = {
  event: 'revision.staged',
  tenant: 'acme',
  keyFingerprint: 'SHA256:abc',
  mode: 'publish',
  revision: '2026-12-07T101500Z',
  revisionPath: 'revisions/2026-12-07T101500Z',
  root: '/srv/acme',
  files: 3,
  bytes: 1234,
  exitCode: 0,
};

t.test('verify: exit 0 lets through, a non-zero exit vetoes with the first stderr line or "exit N"', async (t) => {
  const d = await tmp(t);
  const { log, records } = memoryLog();
  const sh = (script: string) => createEventHooks(hooksConfig({ verify: ['/bin/sh', '-c', script] }), log);
  t.equal(await sh('exit 0').verify!(EVENT, d), null);
  t.equal(await sh('echo "  " >&2; echo "index.html is missing" >&2; echo more >&2; exit 3').verify!(EVENT, d), 'index.html is missing');
  t.equal(await sh('exit 4').verify!(EVENT, d), 'exit 4');
  t.equal(await createEventHooks(hooksConfig({ verify: ['/nonexistent/hook'] }), log).verify!(EVENT, d), 'verify hook could not run (ENOENT)');
  t.equal(createEventHooks(hooksConfig(), log).verify, undefined, 'no verify hook configured: nothing to ask');
  t.ok(records.some((r) => r.event === 'hook' && r.hook === 'verify' && r.code === 3));
});

t.test('a hook gets the event on stdin, RRSYNCD_* variables, and runs in the staged revision', async (t) => {
  const d = await tmp(t);
  const staged = join(d, 'staged');
  await mkdir(staged);
  const { log } = memoryLog();
  const script = `cat > ${d}/stdin.json; env | grep ^RRSYNCD_ | sort > ${d}/env.txt; pwd > ${d}/cwd.txt`;
  const h = createEventHooks(hooksConfig({ verify: ['/bin/sh', '-c', script] }), log);
  t.equal(await h.verify!(EVENT, staged), null);
  t.same(JSON.parse(await readFile(join(d, 'stdin.json'), 'utf8')), EVENT);
  const env = await readFile(join(d, 'env.txt'), 'utf8');
  for (const line of [
    'RRSYNCD_EVENT=revision.staged', 'RRSYNCD_TENANT=acme', 'RRSYNCD_KEY_FINGERPRINT=SHA256:abc', 'RRSYNCD_REVISION=2026-12-07T101500Z',
    'RRSYNCD_REVISION_PATH=/srv/acme/revisions/2026-12-07T101500Z', 'RRSYNCD_EXIT_CODE=0', 'RRSYNCD_FILES=3', 'RRSYNCD_BYTES=1234', 'RRSYNCD_MODE=publish',
  ]) t.match(env, `${line}\n`, line);
  t.equal((await readFile(join(d, 'cwd.txt'), 'utf8')).trim(), staged);
});

t.test('a hook that ignores SIGTERM is killed after the timeout, with what it started', async (t) => {
  const d = await tmp(t);
  const { log, records } = memoryLog();
  // the hook starts a grandchild that keeps the output pipe open: the whole group must go
  const script = `trap '' TERM; (trap '' TERM; sleep 30; echo late > ${d}/late) & sleep 30`;
  const h = createEventHooks(hooksConfig({ verify: ['/bin/sh', '-c', script], timeoutSeconds: 1 }), log, { killGraceMs: 300 });
  const started = Date.now();
  t.equal(await h.verify!(EVENT, d), 'verify hook timed out');
  const took = Date.now() - started;
  t.ok(took >= 1000 && took < 10_000, `ended after ${took} ms`);
  const rec = records.find((r) => r.event === 'hook');
  t.equal(rec?.signal, 'SIGKILL');
  t.equal(rec?.timedOut, true);
});

t.test('only the first 4 KiB of output is kept', async (t) => {
  const { log, records } = memoryLog();
  const h = createEventHooks(hooksConfig({ sessionEnd: ['/usr/bin/perl', '-e', 'print "x" x 100000; print STDERR "e" x 5000; exit 1'] }), log);
  h.sessionEnd({ event: 'session.end', exitCode: 0 });
  await h.settled();
  const rec = records.find((r) => r.event === 'hook' && r.hook === 'sessionEnd')!;
  t.equal(rec.stdout, `${'x'.repeat(4096)}… (95904 more bytes)`);
  t.equal(rec.stderr, `${'e'.repeat(4096)}… (904 more bytes)`);
  t.equal(rec.for, 'session.end');
  t.equal(rec.level, 40, 'a failing hook is a warning');
});

t.test('session-end hooks of many sessions run at most 8 at a time, all of them', async (t) => {
  const d = await tmp(t);
  await mkdir(join(d, 'running'));
  const { log } = memoryLog();
  const script = `mkdir ${d}/running/$$; ls ${d}/running | wc -l >> ${d}/counts; sleep 0.3; rmdir ${d}/running/$$`;
  const h = createEventHooks(hooksConfig({ sessionEnd: ['/bin/sh', '-c', script] }), log);
  for (let i = 0; i < 20; i++) h.sessionEnd({ event: 'session.end', exitCode: 0 });
  await h.settled();
  const counts = (await readFile(join(d, 'counts'), 'utf8')).trim().split('\n').map(Number);
  t.equal(counts.length, 20, 'every hook ran');
  t.ok(Math.max(...counts) <= 8, `at most 8 at once (saw ${Math.max(...counts)})`);
  t.ok(Math.max(...counts) > 1, 'and more than one at a time');
});

async function webhookServer(t: Test, statuses: number[]): Promise<{ url: string; bodies: unknown[] }> {
  const bodies: unknown[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      bodies.push(JSON.parse(body));
      res.statusCode = statuses[Math.min(bodies.length - 1, statuses.length - 1)]!;
      res.end('thanks');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, bodies };
}

t.test('webhook: retried after failures with backoff, bounded', async (t) => {
  const { log, records } = memoryLog();
  const ok = await webhookServer(t, [500, 503, 200]);
  const h = createEventHooks(hooksConfig({ webhook: { url: ok.url, timeoutSeconds: 5, retries: 3 } }), log, { webhookBackoffMs: 20 });
  h.published({ ...EVENT, event: 'revision.published' });
  await h.settled();
  t.equal(ok.bodies.length, 3, 'two failures, then delivered');
  t.same(ok.bodies[2], { ...EVENT, event: 'revision.published' });
  t.notOk(records.some((r) => r.event === 'revision.published'), 'the revision record is the publisher\'s (revisions/publish.ts), not logged twice');
  t.ok(records.some((r) => r.event === 'webhook' && r.attempts === 3 && r.status === 200));

  const bad = await webhookServer(t, [500]);
  const h2 = createEventHooks(hooksConfig({ webhook: { url: bad.url, timeoutSeconds: 5, retries: 2 } }), log, { webhookBackoffMs: 20 });
  h2.sessionEnd({ event: 'session.end', exitCode: 23 });
  await h2.settled();
  t.equal(bad.bodies.length, 3, '1 + 2 retries, no more');
  t.ok(records.some((r) => r.event === 'webhook' && r.msg === 'webhook failed' && r.attempts === 3 && r.status === 500));
});

t.test('the operations side fires sessionEnd for every exec summary', async (t) => {
  const d = await tmp(t);
  const cfgFile = join(d, 'rrsyncd.json');
  await writeFile(
    cfgFile,
    JSON.stringify({
      stateDir: join(d, 'state'),
      root: d,
      log: { destination: join(d, 'log.json') },
      hooks: { sessionEnd: ['/bin/sh', '-c', `cat > ${d}/event.json`] },
    }),
  );
  const config = loadConfig({ file: cfgFile });
  const ops = new Operations({ config, load: { file: cfgFile }, logSink: createLogSink(config.log) });
  ops.hooks().execEnded!({
    role: 'receiver', exitCode: 0, bytesIn: 500, bytesOut: 20, files: 2, durationMs: 1500,
    tenant: 'acme', fingerprint: 'SHA256:k', root: '/srv/acme', argv: ['rsync', '--server', '.', 'x'],
  });
  await ops.hooksSettled();
  const e = JSON.parse(await readFile(join(d, 'event.json'), 'utf8')) as RevisionEvent;
  t.match(e, { event: 'session.end', tenant: 'acme', keyFingerprint: 'SHA256:k', exitCode: 0, bytes: 500, files: 2, root: '/srv/acme' });
  t.equal(Date.parse(e.end!) - Date.parse(e.start!), 1500);
  t.equal(await ops.revisionHooks.verify!(EVENT, d), null, 'no verify hook: every revision may be published');
});

t.test('config validation of hooks', async (t) => {
  const d = await tmp(t);
  const bad = async (hooks: unknown) => {
    const f = join(d, `c${Math.random()}.json`);
    await writeFile(f, JSON.stringify({ stateDir: join(d, 's'), hooks }));
    try {
      loadConfig({ file: f });
      return '';
    } catch (err) {
      return ((err as { problems?: string[] }).problems ?? [(err as Error).message]).join('\n');
    }
  };
  t.match(await bad({ verify: ['relative/prog'] }), /hooks\.verify.*absolute path/);
  t.match(await bad({ published: 'not a list' }), /hooks\.published/);
  t.match(await bad({ webhook: { url: 'ftp://x' } }), /hooks\.webhook\.url/);
  t.match(await bad({ webhook: { url: 'http://x/', retries: 99 } }), /hooks\.webhook\.retries.*0 to 10/);
  t.equal(await bad({ verify: ['/usr/bin/test', '-f', 'index.html'], timeoutSeconds: 5 }), '');
});
