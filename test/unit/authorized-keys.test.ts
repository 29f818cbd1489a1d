import t from 'tap';
import ssh2 from 'ssh2';
import {
  addressMatchesFrom,
  fromListProblem,
  grantFromRrsyncCommand,
  KeyRing,
  parseAuthorizedKeys,
  parseAuthorizedKeysLine,
  parseExpiryTime,
  parseKeyOptions,
} from '../../src/ssh/authorized-keys.js';

import { generateEd25519 } from '../../src/ssh/host-keys.js';

// ssh2's own generator makes an unparseable key one time in 256 (see generateEd25519)
const pub = generateEd25519('me@host').public.trim();
const other = generateEd25519().public.trim();
const ctx = { source: 'ak', defaultRoot: '/srv/default' };

t.test('command="rrsync -ro DIR" becomes a read-only grant on DIR', async (t) => {
  const e = parseAuthorizedKeysLine(`restrict,command="rrsync -ro /srv/pub" ${pub}`, ctx)!;
  t.equal(e.unusable, undefined);
  t.equal(e.grant!.root, '/srv/pub');
  t.equal(e.grant!.readOnly, true);
  t.equal(e.grant!.writeOnly, false);
  t.equal(e.grant!.noDelete, true, '-ro implies -no-del');
  t.equal(e.grant!.noLock, true, '-ro implies -no-lock');
  t.equal(e.comment, 'me@host');
  t.match(e.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
});

t.test('all rrsync flags, /path/to/rrsync and relative DIR', async (t) => {
  const g = grantFromRrsyncCommand('/usr/bin/rrsync -wo -munge -no-del -no-lock -no-overwrite -absolute backups/host1', '/srv/default');
  t.same(
    { root: g.root, ro: g.readOnly, wo: g.writeOnly, munge: g.munge, nd: g.noDelete, nl: g.noLock, no: g.noOverwrite, abs: g.absolute },
    { root: '/srv/default/backups/host1', ro: false, wo: true, munge: true, nd: true, nl: true, no: true, abs: true },
  );
  t.throws(() => grantFromRrsyncCommand('rrsync -ro -wo /x', '/'), /mutually exclusive/);
  t.throws(() => grantFromRrsyncCommand('rrsync -ro', '/'), /exactly one DIR/);
  t.throws(() => grantFromRrsyncCommand('rrsync -bogus /x', '/'), /not supported/);
  t.throws(() => grantFromRrsyncCommand('/bin/sh -c "rrsync /x"', '/'), /not an rrsync command/);
});

t.test('a line without command= gets the default root read-write', async (t) => {
  const e = parseAuthorizedKeysLine(pub, ctx)!;
  t.equal(e.grant!.root, '/srv/default');
  t.equal(e.grant!.readOnly, false);
  t.equal(e.grant!.writeOnly, false);
});

t.test('other command= values and unknown options make the key unusable', async (t) => {
  const shell = parseAuthorizedKeysLine(`command="/bin/bash" ${pub}`, ctx)!;
  t.match(shell.unusable, /not an rrsync command/);
  t.equal(shell.grant, undefined);
  t.match(parseAuthorizedKeysLine(`frobnicate ${pub}`, ctx)!.unusable, /unsupported option frobnicate/);
  t.match(parseAuthorizedKeysLine(`cert-authority ${pub}`, ctx)!.unusable, /cert-authority/);
  const ok = parseAuthorizedKeysLine(`no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc,permitopen="h:1" ${pub}`, ctx)!;
  t.equal(ok.unusable, undefined, 'the usual restriction options are accepted');
});

t.test('option syntax: quoted values with commas, blanks and escaped quotes', async (t) => {
  const p = parseKeyOptions('from="10.0.0.0/8,!10.0.0.9",command="rrsync -ro \\"/srv/my dir\\"" ssh-ed25519 AAAA');
  t.same(p.options, [['from', '10.0.0.0/8,!10.0.0.9'], ['command', 'rrsync -ro "/srv/my dir"']]);
  t.equal(p.rest, 'ssh-ed25519 AAAA');
  t.throws(() => parseKeyOptions('command="unterminated ssh-ed25519 AAAA'), /missing closing quote/);
});

t.test('a file: comments, blank lines, bad lines reported with file:line', async (t) => {
  const text = ['# comment', '', `command="rrsync -wo /in" ${pub}`, 'ssh-ed25519 not-base64!', `from="127.0.0.1" ${other}`].join('\n');
  const r = parseAuthorizedKeys(text, { source: '/etc/keys', defaultRoot: '/d' });
  t.equal(r.entries.length, 2);
  t.equal(r.entries[0]!.source, '/etc/keys:3');
  t.equal(r.entries[1]!.source, '/etc/keys:5');
  t.equal(r.problems.length, 1);
  t.match(r.problems[0], /^\/etc\/keys:4: /);
});

t.test('from= matching like sshd', async (t) => {
  t.ok(addressMatchesFrom('127.0.0.1', '127.0.0.1'));
  t.ok(addressMatchesFrom('127.0.0.1', '::ffff:127.0.0.1'), 'v4-mapped addresses match v4 patterns');
  t.notOk(addressMatchesFrom('10.0.0.1', '127.0.0.1'));
  t.ok(addressMatchesFrom('10.*,127.0.0.?', '127.0.0.5'));
  t.ok(addressMatchesFrom('192.168.0.0/16', '192.168.44.1'));
  t.notOk(addressMatchesFrom('192.168.0.0/16', '192.169.0.1'));
  t.notOk(addressMatchesFrom('10.0.0.0/8,!10.0.0.9', '10.0.0.9'), 'negation wins');
  t.ok(addressMatchesFrom('10.0.0.0/8,!10.0.0.9', '10.0.0.8'));
  t.notOk(addressMatchesFrom('!10.0.0.9', '10.0.0.8'), 'a negation alone allows nothing');
  t.ok(addressMatchesFrom('::1', '::1'));
  t.ok(addressMatchesFrom('fd00::/8', 'fd12::1'));
});

t.test('an invalid from= CIDR makes the key unusable, with the reason (sshd refuses it too)', async (t) => {
  for (const [list, why] of [
    ['127.0.0.1/33', /bad mask length/],
    ['10.0.0.1/8', /bits set beyond the mask/],
    ['10.0.0.0/8,!fe80::1/10', /bits set beyond the mask/],
    ['nohost/24', /not an address/],
    ['::1/129', /bad mask length/],
  ] as const) {
    t.match(fromListProblem(list), why, list);
    const e = parseAuthorizedKeysLine(`from="${list}" ${pub}`, ctx)!;
    t.match(e.unusable, why, `${list}: unusable`);
    const d = new KeyRing([e]).decide(e.blob, 'u', '127.0.0.1');
    t.match(!d.ok && d.reason, /key unusable: from=/, `${list}: refused at login with the reason`);
  }
  for (const ok of ['127.0.0.1/32', '0.0.0.0/0', '10.0.0.0/8,!10.0.0.9', 'fe80::/10', '::ffff:10.0.0.0/104', '*.example.com,10.*']) {
    t.equal(fromListProblem(ok), undefined, ok);
  }
});

t.test('expiry-time', async (t) => {
  t.equal(parseExpiryTime('20270101Z').toISOString(), '2027-01-01T00:00:00.000Z');
  t.equal(parseExpiryTime('202701021530Z').toISOString(), '2027-01-02T15:30:00.000Z');
  t.throws(() => parseExpiryTime('2027'), /bad expiry-time/);
});

t.test('KeyRing.decide: first matching line, pins, from, expiry, unusable', async (t) => {
  const blob = ssh2.utils.parseKey(pub) as ssh2.ParsedKey;
  const data = blob.getPublicSSH();
  const ring = new KeyRing(
    parseAuthorizedKeys([`from="10.1.1.1",command="rrsync /a" ${pub}`, `command="rrsync -ro /b" ${pub}`].join('\n'), ctx).entries,
  );
  t.equal(ring.decide(Buffer.from('nope'), 'u', '127.0.0.1').ok, false);
  const d1 = ring.decide(data, 'u', '10.1.1.1');
  t.ok(d1.ok && d1.entry.grant!.root === '/a', 'the first line matches from its address');
  const d2 = ring.decide(data, 'u', '127.0.0.1');
  t.ok(d2.ok && d2.entry.grant!.root === '/b' && d2.entry.grant!.readOnly, 'other addresses fall to the second line');

  const fromOnly = new KeyRing(parseAuthorizedKeys(`from="10.1.1.1" ${pub}`, ctx).entries);
  const d3 = fromOnly.decide(data, 'u', '127.0.0.1');
  t.equal(d3.ok, false);
  t.match(!d3.ok && d3.reason, /does not match from=/);

  const pinned = new KeyRing(parseAuthorizedKeys(pub, { ...ctx, users: ['alice'] }).entries);
  t.equal(pinned.decide(data, 'bob', '127.0.0.1').ok, false);
  t.equal(pinned.decide(data, 'alice', '127.0.0.1').ok, true);

  const expired = new KeyRing(parseAuthorizedKeys(`expiry-time="20200101Z" ${pub}`, ctx).entries);
  t.match(expired.decide(data, 'u', '127.0.0.1'), { ok: false, reason: /expired/ });

  const unusable = new KeyRing(parseAuthorizedKeys([`command="sh" ${pub}`, pub].join('\n'), ctx).entries);
  t.match(unusable.decide(data, 'u', '127.0.0.1'), { ok: false, reason: /unusable/ }, 'an unusable first match does not fall through');
});
