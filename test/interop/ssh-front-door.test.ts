// The front door against the stock OpenSSH client and raw TCP sockets: authentication attempts,
// early drop of unauthenticated connections, host key and signature algorithms, exec bytes.
import t from 'tap';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeKey, run, startServer, type TestServer } from '../helpers/server.js';

async function tmp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-door-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

async function server(t: { teardown(fn: () => unknown): void }, opts: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const srv = await startServer(opts);
  t.teardown(() => srv.cleanup());
  return srv;
}

/** ssh with these identities tried first (in order), then the server's authorized test key. */
function sshWithKeys(srv: TestServer, keys: string[], command = 'true') {
  const extra = ['-o', 'LogLevel=INFO', ...keys.flatMap((k) => ['-i', k])];
  return srv.ssh(command, extra, { timeoutMs: 30_000 });
}

t.test('maxAuthTries: the 6th refused key ends the connection, as sshd MaxAuthTries', async (t) => {
  const srv = await server(t);
  const dir = await tmp(t);
  const strangers: string[] = [];
  for (let i = 0; i < 6; i++) strangers.push(await makeKey(join(dir, `stranger${i}`)));

  const five = await sshWithKeys(srv, strangers.slice(0, 5));
  t.equal(five.code, 0, `five refused keys, then the right one: in\n${five.stderr}`);

  const six = await sshWithKeys(srv, strangers);
  t.equal(six.code, 255, 'six refused keys: the seventh (authorized) key is never tried');
  t.match(six.stderr, /Too many authentication failures/);
  const rec = await srv.waitForLog((r) => r.event === 'connection' && typeof r.reason === 'string' && r.reason.startsWith('too many authentication failures'));
  t.equal(rec.auth, 'failed');
  t.match(rec.reason, /\(6; last: unknown key\)/);
});

t.test('maxAuthTries is configurable', async (t) => {
  const srv = await server(t, { config: { limits: { maxAuthTries: 2 } } });
  const dir = await tmp(t);
  const strangers = [await makeKey(join(dir, 's0')), await makeKey(join(dir, 's1'))];
  t.equal((await sshWithKeys(srv, strangers.slice(0, 1))).code, 0);
  const r = await sshWithKeys(srv, strangers);
  t.equal(r.code, 255);
  t.match(r.stderr, /Too many authentication failures/);
});

/** Opens `n` TCP connections from `localAddress` that never speak; resolves once all are connected. */
async function silentSockets(t: { teardown(fn: () => unknown): void }, port: number, n: number, localAddress = '127.0.0.1'): Promise<Socket[]> {
  const socks: Socket[] = [];
  t.teardown(() => {
    for (const s of socks) s.destroy();
  });
  for (let i = 0; i < n; i++) {
    const s = connect({ port, host: '127.0.0.1', localAddress });
    s.on('error', () => undefined);
    socks.push(s);
    await once(s, 'connect');
  }
  return socks;
}

/** How many of the sockets the server has closed after `ms`. */
async function closedAfter(socks: Socket[], ms: number): Promise<number> {
  await new Promise((r) => setTimeout(r, ms));
  return socks.filter((s) => s.destroyed || s.readableEnded).length;
}

t.test('silent connections from one address cannot lock others out (maxStartupsPerSource)', async (t) => {
  // Without a per-source limit these 40 sockets would hold every slot of maxConnections (30)
  // until the handshake timeout, and the real client below would be refused.
  const srv = await server(t, { config: { limits: { maxConnections: 30, maxStartupsPerSource: 5, handshakeTimeoutMs: 120_000 } } });
  const socks = await silentSockets(t, srv.port, 40);
  t.equal(await closedAfter(socks, 2000), 35, 'all but 5 dropped at once');

  const started = Date.now();
  const other = await srv.ssh('true', ['-o', 'BindAddress=127.0.0.2', '-o', 'ConnectTimeout=20'], { timeoutMs: 30_000 });
  t.equal(other.code, 0, `a client from 127.0.0.2 gets in\n${other.stderr}`);
  t.ok(Date.now() - started < 15_000, 'promptly, not after the handshake timeout');
  const drop = await srv.waitForLog((r) => r.msg === 'connection dropped');
  t.match(drop.reason, /too many unauthenticated connections from this source \(maxStartupsPerSource 5\)/);

  const same = await srv.ssh('true', [], { timeoutMs: 30_000 });
  t.equal(same.code, 255, 'from the flooding address itself, new connections are dropped');
  for (const s of socks) s.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const after = await srv.ssh('true', [], { timeoutMs: 30_000 });
  t.equal(after.code, 0, `once the silent sockets are gone, 127.0.0.1 gets in again\n${after.stderr}`);
});

t.test('maxStartups start:rate:full drops new unauthenticated connections at random, all past full', async (t) => {
  const srv = await server(t, { config: { limits: { maxStartups: '4:50:8', maxStartupsPerSource: 1000, handshakeTimeoutMs: 120_000 } } });
  const socks = await silentSockets(t, srv.port, 30);
  const held = socks.length - (await closedAfter(socks, 2000));
  t.ok(held >= 4 && held <= 8, `between start and full are kept (${held})`);
  const drops = srv.logRecords().filter((r) => r.msg === 'connection dropped');
  t.equal(drops.length, 30 - held);
  t.match(drops[drops.length - 1]!.reason, /dropped past maxStartups 4:50:8/);
});

t.test('host keys: only the configured algorithms are offered (no ssh-rsa SHA-1 for an RSA key)', async (t) => {
  const dir = await tmp(t);
  const rsaHost = join(dir, 'host_rsa');
  t.equal((await run('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', rsaHost])).code, 0);
  const srv = await server(t, { extraArgs: ['--host-key', rsaHost] });
  const sha2 = await srv.ssh('true', ['-o', 'HostKeyAlgorithms=rsa-sha2-256']);
  t.equal(sha2.code, 0, `rsa-sha2-256 with the RSA host key\n${sha2.stderr}`);
  const sha1 = await srv.ssh('true', ['-o', 'HostKeyAlgorithms=ssh-rsa', '-o', 'LogLevel=INFO']);
  t.equal(sha1.code, 255);
  t.match(sha1.stderr, /no matching host key type found/);
});

t.test('client signatures: ssh-rsa (SHA-1) is refused by default, rsa-sha2 accepted; configurable', async (t) => {
  const dir = await tmp(t);
  const rsaKey = join(dir, 'client_rsa');
  t.equal((await run('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', rsaKey])).code, 0);
  const pub = (await readFile(`${rsaKey}.pub`, 'utf8')).trim();
  const tenant = { name: 'rsa', keys: [pub] };
  const withRsa = (s: TestServer, algos: string) => s.ssh('true', ['-i', rsaKey, '-o', `PubkeyAcceptedAlgorithms=${algos}`]);

  const srv = await server(t, { config: { tenants: [tenant] } });
  await mkdir(join(srv.root, 'rsa'));
  t.equal((await withRsa(srv, 'rsa-sha2-512,rsa-sha2-256')).code, 0, 'rsa-sha2 signatures are accepted');
  // ssh2's own server-sig-algs named ssh-rsa and ssh-dss and ran "nistp521rsa-sha2-512" together
  const only512 = await srv.ssh('true', ['-o', 'LogLevel=DEBUG1', '-i', rsaKey, '-o', 'PubkeyAcceptedAlgorithms=rsa-sha2-512']);
  t.equal(only512.code, 0, `a client limited to rsa-sha2-512 signs with it\n${only512.stderr}`);
  t.match(
    only512.stderr,
    'server-sig-algs=<ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256>',
    'server-sig-algs lists algorithms.pubkey (no ssh-rsa, no ssh-dss)',
  );
  const sha1 = await withRsa(srv, 'ssh-rsa');
  t.not(sha1.code, 0, 'an ssh-rsa (SHA-1) signature is refused');
  // server-sig-algs does not name ssh-rsa, so OpenSSH does not even try it (a client that ignores
  // the list is refused with "ssh-rsa signatures are not accepted")
  const refused = await srv.waitForLog((r) => r.event === 'connection' && r.auth !== 'ok');
  t.equal(refused.execs, 0, 'the ssh-rsa-only client ran nothing');

  const legacy = await server(t, { config: { tenants: [tenant], algorithms: { pubkey: ['ssh-ed25519', 'ssh-rsa'] } } });
  t.equal((await withRsa(legacy, 'ssh-rsa')).code, 0, 'accepted when algorithms.pubkey lists ssh-rsa');
});

t.test('exec commands are bytes: push and pull of a name with byte 0xff', async (t) => {
  const srv = await server(t);
  const local = await tmp(t);
  await mkdir(join(srv.root, 'src'));
  await writeFile(Buffer.from(join(srv.root, 'src', 'n\xff'), 'latin1'), 'pulled\n');
  await writeFile(Buffer.from(join(local, 'm\xfe'), 'latin1'), 'pushed\n');
  const sh = (script: string) => run('/bin/bash', ['-c', script], { env: { RSH: srv.rsh, L: local }, timeoutMs: 60_000 });

  const pull = await sh(`/usr/bin/rsync -e "$RSH" test@127.0.0.1:$'src/n\\xff' "$L/"`);
  t.equal(pull.code, 0, pull.stderr);
  t.equal(await readFile(Buffer.from(join(local, 'n\xff'), 'latin1'), 'utf8'), 'pulled\n');

  const push = await sh(`/usr/bin/rsync -e "$RSH" "$L/m"$'\\xfe' test@127.0.0.1:$'src/o\\xfd'`);
  t.equal(push.code, 0, push.stderr);
  const names = (await readdir(Buffer.from(join(srv.root, 'src'), 'latin1'), { encoding: 'buffer' })).map((b) => b.toString('latin1')).sort();
  t.same(names, ['n\xff', 'o\xfd'], 'the pushed file has exactly the name asked for');
});

t.test('control bytes in a refused command are escaped on stderr', async (t) => {
  const srv = await server(t);
  const r = await srv.ssh('ls \x1b[2J\x07');
  t.equal(r.code, 1);
  t.equal(r.stderr, 'rrsyncd: command not allowed: ls \\x1b[2J\\x07\n');
});
