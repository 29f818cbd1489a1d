// Pulls arrive intact with every cipher family the server sends with (the AEAD ciphers write from
// pooled packet buffers, aes-ctr from ssh2's own), also when the client rekeys every megabyte.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RSYNC, run, startServer } from '../helpers/server.js';

const CIPHERS = ['chacha20-poly1305@openssh.com', 'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'aes128-ctr'];

t.test('pulls with each cipher, rekeying every MiB, deliver the exact bytes', async (t) => {
  const srv = await startServer();
  t.teardown(() => srv.cleanup());
  const big = randomBytes(6 << 20);
  const small = Array.from({ length: 40 }, (_, i) => randomBytes(i * 97));
  await mkdir(join(srv.root, 'src'));
  await writeFile(join(srv.root, 'src', 'big.bin'), big);
  for (const [i, data] of small.entries()) await writeFile(join(srv.root, 'src', `s${i}`), data);

  for (const cipher of CIPHERS) {
    const dst = await mkdtemp(join(tmpdir(), 'rrsyncd-cipher-'));
    t.teardown(() => rm(dst, { recursive: true, force: true }));
    // The first -o LogLevel wins over the helper's LogLevel=ERROR: debug1 shows each key exchange.
    const rsh = ['ssh', '-o', 'LogLevel=DEBUG1', '-c', cipher, '-o', 'RekeyLimit=1M', ...srv.sshArgs].join(' ');
    const r = await run(RSYNC, ['-e', rsh, '-a', srv.remote('src/'), dst + '/'], { timeoutMs: 60_000 });
    t.equal(r.code, 0, `${cipher}: rsync exits 0`);
    t.ok(r.stderr.includes(`cipher: ${cipher}`), `${cipher}: negotiated`);
    const kexes = r.stderr.split('SSH2_MSG_KEXINIT sent').length - 1;
    t.ok(kexes >= 3, `${cipher}: the keys changed during the pull (${kexes} key exchanges)`);
    t.ok((await readFile(join(dst, 'big.bin'))).equals(big), `${cipher}: big.bin intact`);
    let same = 0;
    for (const [i, data] of small.entries()) if ((await readFile(join(dst, `s${i}`))).equals(data)) same++;
    t.equal(same, small.length, `${cipher}: every small file intact`);
  }
});
