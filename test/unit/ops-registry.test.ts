// The pure parts of operations: the session registry's kick selectors, which key changes close a
// connection on reload, bounded metric labels, and the control socket's request handling.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SessionRegistry, type LiveSession } from '../../src/ops/sessions.js';
import { keyStillGranted } from '../../src/ops/key-changes.js';
import { authFailureReason, refusalReason } from '../../src/ops/metrics.js';
import { ControlSocket, controlRequest } from '../../src/ops/control-socket.js';
import { KeyRing, parseAuthorizedKeys } from '../../src/ssh/authorized-keys.js';

const PUB = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPnLa4WvmAGGY19w3C0hs0vQ7IqkKYXC585+aywjQdBX k1';

function live(id: string, over: Partial<LiveSession>, kicked: string[]): LiveSession {
  return {
    id, fingerprint: 'SHA256:aaa', comment: 'c', address: '10.0.0.1', role: 'receiver', argv: ['rsync', '--server'], startedAt: 0,
    bytes: () => ({ in: 5, out: 6 }), kick: () => kicked.push(id), ...over,
  };
}

t.test('kick selectors', async (t) => {
  const kicked: string[] = [];
  const reg = new SessionRegistry();
  reg.add(live('1.1', { tenant: 'a' }, kicked));
  reg.add(live('2.1', { tenant: 'b', fingerprint: 'SHA256:bbb' }, kicked));
  reg.add(live('2.2', { tenant: 'b', fingerprint: 'SHA256:bbb' }, kicked));
  t.same(reg.kick({}, 'x'), [], 'an empty selector kicks nothing');
  t.same(reg.kick({ id: '9.9' }, 'x'), []);
  t.same(reg.kick({ fingerprint: 'bbb' }, 'x'), ['2.1', '2.2'], 'a fingerprint without its SHA256: prefix');
  t.same(reg.kick({ tenant: 'a' }, 'x'), ['1.1']);
  t.same(kicked, ['2.1', '2.2', '1.1']);
  reg.remove('2.2');
  t.same(reg.list(10).map((s) => [s.id, s.bytesIn, s.bytesOut, s.ageMs]), [['1.1', 5, 6, 10], ['2.1', 5, 6, 10]]);
  t.same([...reg.countByTenant()], [['a', 1], ['b', 1]]);
});

t.test('a reload keeps a connection only while its key logs in the same way', async (t) => {
  const ring = (line: string) => new KeyRing(parseAuthorizedKeys(line, { source: 'f', defaultRoot: '/srv' }).entries);
  const before = parseAuthorizedKeys(`command="rrsync -wo in" ${PUB}`, { source: 'f', defaultRoot: '/srv' }).entries[0]!;
  t.ok(keyStillGranted(before, ring(`# moved down a line\ncommand="rrsync -wo in" ${PUB}`), 'u', '10.0.0.1'), 'same grant on another line');
  t.notOk(keyStillGranted(before, ring(''), 'u', '10.0.0.1'), 'removed');
  t.notOk(keyStillGranted(before, ring(`command="rrsync -ro in" ${PUB}`), 'u', '10.0.0.1'), 'grant changed');
  t.notOk(keyStillGranted(before, ring(`from="192.0.2.1",command="rrsync -wo in" ${PUB}`), 'u', '10.0.0.1'), 'no longer from this address');
});

t.test('metric labels stay bounded', async (t) => {
  t.equal(refusalReason('command not allowed: ls /etc'), 'command not allowed');
  t.equal(authFailureReason('unknown key'), 'unknown key');
  t.equal(authFailureReason('address 10.1.2.3 does not match from="x" (/etc/k:3)'), 'from mismatch');
  t.equal(authFailureReason('user "bob" not allowed for this key (/etc/k:1)'), 'user not allowed');
  t.equal(authFailureReason('something new'), 'unusable key');
});

t.test('control socket: bad requests get an error, a long line is cut off, requests are logged', async (t) => {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-ctl-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
  const path = join(d, 'control.sock');
  const sock = await ControlSocket.start(
    path,
    { sessions: () => [], kick: () => [], reload: () => ({ ok: false, problems: ['p1'] }), tenants: () => [], usage: (tenant) => (tenant === 'nobody' ? null : []), follow: () => () => undefined },
    log,
  );
  t.teardown(() => sock.close());
  t.same(await controlRequest(path, { op: 'sessions', who: 'me' }), { ok: true, sessions: [] });
  t.same(await controlRequest(path, { op: 'reload' }), { ok: false, error: 'reload refused; the old configuration stays', problems: ['p1'] });
  t.match(await controlRequest(path, { op: 'kick' }), { ok: false, error: /kick needs/ });
  t.same(await controlRequest(path, { op: 'usage' }), { ok: true, usage: [] });
  t.same(await controlRequest(path, { op: 'usage', tenant: 'nobody' }), { ok: false, error: 'no tenant "nobody"' });
  t.match(await controlRequest(path, { op: 'nope' as 'sessions' }), { ok: false, error: /unknown op/ });
  const raw = await new Promise<string>((resolve) => {
    const s = connect(path);
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString()));
    s.on('close', () => resolve(out));
    s.write('x'.repeat(70 * 1024));
  });
  t.match(raw, /request too long/);
  t.ok(lines.some((l) => /"event":"control","op":"sessions","who":"me"/.test(l)), 'requests are logged with who asked');
  await t.rejects(ControlSocket.start(path, {} as never, log), /in use by another running server/);
});
