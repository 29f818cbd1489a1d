import t from 'tap';
import { dropPercent, sourceKey, StartupGate } from '../../src/ssh/front-door.js';
import { parseMaxStartups } from '../../src/config/max-startups.js';
import { checkHostKeyAlgorithms, signatureAlgorithm } from '../../src/ssh/algorithms.js';
import { parseExecRequest } from '../../src/ssh/ssh2-internals.js';
import type { HostKey } from '../../src/ssh/host-keys.js';

t.test('maxStartups syntax and sshd drop curve', async (t) => {
  t.same(parseMaxStartups('10:30:100'), { start: 10, rate: 30, full: 100 });
  t.same(parseMaxStartups('7'), { start: 7, rate: 100, full: 7 });
  for (const bad of ['', '0', '10:0:100', '10:101:100', '10:30:5', '1:2', 'x:y:z', '10:30:100:1']) t.throws(() => parseMaxStartups(bad), bad);
  const l = parseMaxStartups('10:30:100');
  t.same([0, 9, 10, 55, 99, 100, 500].map((n) => dropPercent(n, l)), [0, 0, 30, 65, 99, 100, 100]);
  t.same([2, 3, 4].map((n) => dropPercent(n, parseMaxStartups('3'))), [0, 100, 100]);
});

t.test('per-source keys: IPv4 as is (also v4-mapped), IPv6 by /64', async (t) => {
  t.equal(sourceKey('127.0.0.1'), '127.0.0.1');
  t.equal(sourceKey('::ffff:10.1.2.3'), '10.1.2.3');
  t.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.equal(sourceKey('2001:db8:1:2:bbbb:1:2:3'), '2001:db8:1:2::/64');
  t.equal(sourceKey('::1'), '0:0:0:0::/64');
});

t.test('StartupGate: per-source limit, random drop between start and full, leave() once', async (t) => {
  let draws = 0;
  const gate = new StartupGate(parseMaxStartups('3:50:5'), 2, (p) => (draws++, p >= 100));
  const a1 = gate.admit('10.0.0.1');
  const a2 = gate.admit('10.0.0.1');
  const a3 = gate.admit('10.0.0.1');
  t.ok(a1.ok && a2.ok);
  t.match(a3, { ok: false, reason: /maxStartupsPerSource 2/ });
  t.ok(gate.admit('10.0.0.2').ok);
  t.equal(draws, 0, 'below start nothing is drawn');
  t.ok(gate.admit('10.0.0.3').ok, 'at start: a draw of 50 % (kept here)');
  t.equal(draws, 1);
  t.ok(gate.admit('10.0.0.4').ok, '75 %, kept');
  t.match(gate.admit('10.0.0.5'), { ok: false, reason: /dropped past maxStartups 3:50:5/ }, 'at full: always');
  t.equal(gate.unauthenticated, 5);
  if (a1.ok) {
    a1.leave();
    a1.leave();
  }
  t.equal(gate.unauthenticated, 4, 'leave() counts once');
  t.ok(gate.admit('10.0.0.1').ok, 'the source has room again');
});

t.test('signature algorithms and host key checks', async (t) => {
  t.equal(signatureAlgorithm('ssh-rsa', 'sha512'), 'rsa-sha2-512');
  t.equal(signatureAlgorithm('ssh-rsa', 'sha256'), 'rsa-sha2-256');
  t.equal(signatureAlgorithm('ssh-rsa', undefined), 'ssh-rsa');
  t.equal(signatureAlgorithm('ssh-ed25519', undefined), 'ssh-ed25519');
  const key = (type: string) => ({ path: `/k/${type}`, key: { type } }) as unknown as HostKey;
  t.doesNotThrow(() => checkHostKeyAlgorithms([key('ssh-ed25519'), key('ssh-rsa')], ['ssh-ed25519', 'rsa-sha2-256']));
  t.throws(() => checkHostKeyAlgorithms([key('ssh-dss')], ['ssh-ed25519', 'rsa-sha2-256']), /\/k\/ssh-dss \(ssh-dss\) has no algorithm/);
  t.throws(() => checkHostKeyAlgorithms([key('ssh-rsa')], ['ssh-ed25519']), /ssh-rsa/);
});

t.test('exec requests are parsed with the command as bytes', async (t) => {
  const cmd = Buffer.from('rsync --server --sender . n\xff', 'latin1');
  const packet = (type: string, body: Buffer, extra = 0) => {
    const b = Buffer.alloc(1 + 4 + 4 + type.length + 1 + 4 + body.length + extra);
    b[0] = 98;
    b.writeUInt32BE(7, 1);
    b.writeUInt32BE(type.length, 5);
    b.write(type, 9, 'latin1');
    b[9 + type.length] = 1;
    b.writeUInt32BE(body.length, 10 + type.length);
    body.copy(b, 14 + type.length);
    return b;
  };
  t.same(parseExecRequest(packet('exec', cmd)), { recipient: 7, wantReply: true, command: 'rsync --server --sender . n\xff' });
  t.equal(parseExecRequest(packet('exec', cmd, 1)), undefined, 'trailing bytes: left to ssh2 (malformed)');
  t.equal(parseExecRequest(packet('exec', cmd).subarray(0, 20)), undefined, 'truncated: left to ssh2');
  t.equal(parseExecRequest(packet('env!', cmd)), undefined, 'other requests: left to ssh2');
  t.equal(parseExecRequest(packet('subsystem', cmd)), undefined);
});
