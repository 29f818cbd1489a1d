/**
 * The server-wide memory watermark (limits.serverMemoryBytes): above it an rsync session is
 * refused over ssh with "server busy" on stderr and exec exit status 5 (rsync's RERR_STARTCLIENT,
 * as a daemon at its connection limit; the rsync client itself reports the closed connection, 12),
 * the server keeps running, and `true` (no engine) still works.
 */
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer } from '../helpers/server.js';

t.test('sessions are refused above the memory watermark', async (t) => {
  const srv = await startServer({ config: { limits: { serverMemoryBytes: 1 } } });
  t.teardown(() => srv.cleanup());
  const src = join(srv.dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'f'), 'data\n');
  const r = await srv.rsync(['-a', `${src}/`, srv.remote('dst/')]);
  // the client gets no protocol from the server: it reports the connection closing (12)
  t.equal(r.code, 12, 'the rsync client exits 12');
  t.match(r.stderr, /rrsyncd: server busy \(memory in use above its watermark\) -- try again later/);
  const rec = await srv.waitForLog((l) => l.event === 'exec');
  t.equal(rec.refused, 'memory watermark', 'the exec record says why');
  const pull = await srv.rsync(['-a', srv.remote('./'), join(srv.dir, 'pulled/')]);
  t.equal(pull.code, 12, 'a pull is refused too');
  const exec = await srv.ssh('rsync --server --sender -logDtpre.iLsfxCIvu . ./');
  t.equal(exec.code, 5, 'the exec exit status is 5');
  t.match(exec.stderr, /server busy/);
  const probe = await srv.ssh('true');
  t.equal(probe.code, 0, '`true` still answers');
});

t.test('under the watermark sessions run', async (t) => {
  const srv = await startServer({ config: { limits: { serverMemoryBytes: 64 * 1024 * 1024 * 1024 } } });
  t.teardown(() => srv.cleanup());
  const src = join(srv.dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'f'), 'data\n');
  const r = await srv.rsync(['-a', `${src}/`, srv.remote('dst/')]);
  t.equal(r.code, 0, r.stderr);
});
