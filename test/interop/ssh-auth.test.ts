// Authentication against a real OpenSSH client: keys, passwords, from=, unusable command=.
import t from 'tap';
import ssh2 from 'ssh2';
import { join } from 'node:path';
import { makeKey, run, sshOptionArgs, startServer } from '../helpers/server.js';

t.test('the authorized key is accepted; `true` exits 0 (rrsync compatibility)', async (t) => {
  const srv = await startServer();
  t.teardown(() => srv.cleanup());
  const r = await srv.ssh('true');
  t.equal(r.code, 0, r.stderr);
  const conn = await srv.waitForLog((l) => l.event === 'connection');
  t.equal(conn.auth, 'ok');
  t.equal(conn.user, 'test');
  t.match(conn.fingerprint, /^SHA256:/);
  t.equal(conn.remote, '127.0.0.1');

  await t.test('an unknown key is refused', async (t) => {
    const otherKey = await makeKey(join(srv.dir, 'other_ed25519'));
    const r = await run('ssh', [...sshOptionArgs(srv.port, otherKey), 'test@127.0.0.1', 'true']);
    t.equal(r.code, 255);
    t.match(r.stderr, /Permission denied \(publickey\)/);
  });

  await t.test('password authentication is refused and only publickey is offered', async (t) => {
    // OpenSSH asks for a password only if the server offers it; it must not
    const r = await srv.ssh('true', ['-o', 'BatchMode=no', '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password,keyboard-interactive']);
    t.equal(r.code, 255);
    t.match(r.stderr, /Permission denied \(publickey\)/);
    // a client that sends a password and keyboard-interactive anyway is refused too
    const err = await new Promise<Error>((resolve) => {
      const c = new ssh2.Client();
      c.on('error', resolve).on('ready', () => {
        c.end();
        resolve(new Error('logged in'));
      });
      c.connect({ host: '127.0.0.1', port: srv.port, username: 'test', password: 'hunter2', tryKeyboard: true, hostVerifier: () => true });
    });
    t.match(err.message, /All configured authentication methods failed/);
    const conn = await srv.waitForLog((l) => l.event === 'connection' && (l.authMethods as string[]).includes('password'));
    t.equal(conn.auth, 'none', 'nobody logged in');
    t.match(conn.reason, /(password|keyboard-interactive) authentication is not accepted/);
  });
});

t.test('from= that does not match the client address refuses the key', async (t) => {
  const srv = await startServer({ authorizedKeysOptions: 'from="10.9.9.9,192.168.0.0/16"' });
  t.teardown(() => srv.cleanup());
  const r = await srv.ssh('true');
  t.equal(r.code, 255);
  t.match(r.stderr, /Permission denied/);
  const conn = await srv.waitForLog((l) => l.event === 'connection');
  t.equal(conn.auth, 'failed');
  t.match(conn.reason, /does not match from=/);
});

t.test('from= that matches lets the key in', async (t) => {
  const srv = await startServer({ authorizedKeysOptions: 'restrict,from="10.0.0.0/8,127.0.0.*"' });
  t.teardown(() => srv.cleanup());
  const r = await srv.ssh('true');
  t.equal(r.code, 0, r.stderr);
});

t.test('a command= that is not rrsync makes the key unusable, never a shell', async (t) => {
  const srv = await startServer({ authorizedKeysOptions: 'command="/bin/sh -c id"' });
  t.teardown(() => srv.cleanup());
  const r = await srv.ssh('true');
  t.equal(r.code, 255);
  t.notMatch(r.stdout, /uid=/);
  t.match(srv.logs(), /unusable/);
});
