// rrsyncd relay against a real OpenSSH sshd executing the stock rsync (test/helpers/openssh.ts),
// through the real ssh client: sshd → rrsyncd (behind real ssh, startServer), rrsyncd → sshd with
// a delta update and --delete, and sshd on both sides with one side held at protocol 29.
// Each destination is compared with a direct local rsync.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { buildTree, dir, file, hlink, slink, standardTree } from './lib/interop.js';
import { bytesReadFromSource, onePercentChanged, relay, relayCase, sameAsLocal } from './lib/relay.js';
import { startOpenSsh, sshdMissing, type OpenSsh } from '../helpers/openssh.js';
import { run, startServer, type TestServer } from '../helpers/server.js';

const skip = sshdMissing();
let sshd: OpenSsh | undefined;
if (!skip) {
  sshd = await startOpenSsh();
  t.teardown(() => sshd!.cleanup());
}

/** The relay's stderr, with sshd's log when it failed (an auth or exec problem shows there). */
function why(r: { code: number; stderr: string }): string {
  return r.code === 0 || !sshd ? r.stderr : `${r.stderr}\n--- sshd ---\n${sshd.logs()}`;
}

async function rrsyncd(t: Test): Promise<TestServer> {
  const srv = await startServer();
  t.teardown(() => srv.cleanup());
  return srv;
}

t.test('sshd + stock rsync source, rrsyncd destination: new tree -a', { skip }, async (t) => {
  const srv = await rrsyncd(t);
  const c = await relayCase(t);
  await buildTree(c.src, standardTree());
  const r = await relay(['-a', `--src-rsh=${sshd!.rsh}`, `--dst-rsh=${srv.rsh}`, sshd!.remote(`${c.src}/`), srv.remote('copy/')]);
  t.equal(r.code, 0, why(r));
  await sameAsLocal(t, { ...c, dst: join(srv.root, 'copy') }, ['-a']);
});

t.test('rrsyncd source, sshd + stock rsync destination: 1 % of 16 MiB changed, --delete', { skip }, async (t) => {
  const srv = await rrsyncd(t);
  const c = await relayCase(t);
  const src = join(srv.root, 'src');
  const size = 16 << 20;
  await onePercentChanged(src, c.dst, 'big', size, 8);
  await buildTree(src, [file('kept.txt', 'kept\n'), dir('d'), file('d/new', 'new')]);
  await buildTree(c.dst, [file('stale', 'x'), dir('gone'), file('gone/old', 'o')]);
  const cp = await run('cp', ['-a', c.dst, c.ref]);
  t.equal(cp.code, 0, cp.stderr);
  const r = await relay(['-av', '--delete', '--stats', `--src-rsh=${srv.rsh}`, `--dst-rsh=${sshd!.rsh}`, srv.remote('src/'), sshd!.remote(`${c.dst}/`)]);
  t.equal(r.code, 0, why(r));
  t.match(r.stdout, /^deleting stale$/m);
  t.match(r.stdout, /^deleting gone\/$/m);
  t.match(r.stdout, /Matched data: [1-9][\d,]* bytes/);
  const read = bytesReadFromSource(r.stdout);
  t.ok(read < size / 10, `read ${read} bytes from the source (file: ${size})`);
  await sameAsLocal(t, { ...c, src }, ['-a', '--delete']);
});

const TREE = [...standardTree(), file('h1', 'linked\n'.repeat(500)), hlink('h2', 'h1'), dir('hd'), hlink('hd/h3', 'h1'), slink('hl', 'h1')];

for (const side of ['src', 'dst'] as const) {
  t.test(`sshd + stock rsync on both sides, the ${side === 'src' ? 'source' : 'destination'} at protocol 29: -aHz`, { skip }, async (t) => {
    const c = await relayCase(t);
    await buildTree(c.src, TREE);
    const r = await relay(['-aHz', '-e', sshd!.rsh, `--${side}-rsync-path=rsync --protocol=29`, sshd!.remote(`${c.src}/`), sshd!.remote(`${c.dst}/`)]);
    t.equal(r.code, 0, why(r));
    await sameAsLocal(t, c, ['-aH', '--protocol=29']);
  });
}
