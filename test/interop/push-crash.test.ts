// A server that dies in the middle of a push (SIGKILL: no cleanup code runs) leaves nothing of a
// new file behind: it was being written as an unnamed (O_TMPFILE) inode, which the kernel frees.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../helpers/server.js';

t.test('a server killed in the middle of a push of a new file leaves no temp file and no partial file', async (t) => {
  const srv = await startServer();
  t.teardown(() => srv.cleanup());
  const src = await mkdtemp(join(tmpdir(), 'rrsyncd-crash-'));
  t.teardown(() => rm(src, { recursive: true, force: true }));
  await writeFile(join(src, 'new.bin'), randomBytes(32 << 20));
  // 2 MiB/s: the 32 MiB file takes ~16 s, the server dies after about one.
  const push = srv.rsync(['-a', '--bwlimit=2048', src + '/', srv.remote('dst/')], { timeoutMs: 60_000 });
  const dst = join(srv.root, 'dst');
  for (let i = 0; i < 100 && !existsSync(dst); i++) await new Promise((r) => setTimeout(r, 50));
  t.ok(existsSync(dst), 'the push started (the server made dst/)');
  await new Promise((r) => setTimeout(r, 1000));
  await srv.stop('SIGKILL');
  const r = await push;
  t.not(r.code, 0, 'the client sees the transfer fail');
  t.same(await readdir(dst), [], 'dst/ is empty: no .new.bin.XXXXXX, no partial new.bin');
});
