// The sessionEnd hook and webhook fire for plain sessions of a real server behind ssh: the
// server's exec summary reaches ops/event-hooks.ts with the tenant-less key's fingerprint,
// argv, exit code and byte counts.
import t from 'tap';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startServer } from '../helpers/server.js';
import type { RevisionEvent } from '../../src/revisions/layout.js';

async function until<T>(get: () => Promise<T | undefined>, ms = 30_000): Promise<T | undefined> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    const v = await get();
    if (v !== undefined) return v;
  }
  return undefined;
}

t.test('sessionEnd hook and webhook after a push and after a refused session', async (t) => {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-hooks-it-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  const posted: RevisionEvent[] = [];
  const http = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      posted.push(JSON.parse(body) as RevisionEvent);
      res.end();
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => http.close(() => r())));
  const events = join(d, 'events.jsonl');
  const srv = await startServer({
    config: {
      hooks: {
        sessionEnd: ['/bin/sh', '-c', `{ cat; echo "$RRSYNCD_EXIT_CODE $RRSYNCD_KEY_FINGERPRINT"; } >> ${events}`],
        webhook: { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/e` },
      },
    },
  });
  t.teardown(() => srv.cleanup());
  await writeFile(join(d, 'f.txt'), 'hello hooks\n');
  const push = await srv.rsync(['f.txt', srv.remote('f.txt')], { cwd: d });
  t.equal(push.code, 0, push.stderr);
  const first = await until(async () => {
    const l = existsSync(events) ? (await readFile(events, 'utf8')).split('\n').filter(Boolean) : [];
    return l.length >= 2 ? l : undefined;
  });
  const e = JSON.parse(first![0]!) as RevisionEvent;
  t.match(e, { event: 'session.end', exitCode: 0, files: 1 });
  t.ok((e.bytes ?? 0) > 'hello hooks\n'.length, 'bytes received');
  t.match(e.argv, ['rsync', '--server']);
  t.match(first![1], /^0 SHA256:/, 'RRSYNCD_* variables');

  const refused = await srv.rsync(['-X', 'f.txt', srv.remote('g.txt')], { cwd: d });
  t.not(refused.code, 0);
  const lines = await until(async () => {
    const l = (await readFile(events, 'utf8')).split('\n').filter(Boolean);
    return l.length >= 4 ? l : undefined;
  });
  t.match(JSON.parse(lines![2]!), { event: 'session.end', exitCode: 1 });
  t.ok(await until(async () => (posted.length >= 2 ? true : undefined)), 'the webhook got both');
  t.same(posted.map((p) => p.exitCode), [0, 1]);
});
