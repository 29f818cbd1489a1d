import t from 'tap';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { buildKeyRing, tenantGrant } from '../../src/ssh/key-ring.js';
import { ensureHostKey, fingerprintOf, generateEd25519 } from '../../src/ssh/host-keys.js';

const dir = mkdtempSync(join(tmpdir(), 'rrsyncd-config-'));
const home = join(dir, 'home');
const baseEnv = { HOME: home } as NodeJS.ProcessEnv;

function writeConfig(name: string, data: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof data === 'string' ? data : JSON.stringify(data));
  return p;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

t.test('no config: demo defaults under the state dir', async (t) => {
  const c = loadConfig({ env: baseEnv, cwd: dir });
  t.same(c.listen, ['127.0.0.1:2222']);
  t.equal(c.stateDir, join(home, '.local/state/rrsyncd'));
  t.equal(c.root, join(c.stateDir, 'demo-root'));
  t.same(c.hostKeys, [join(c.stateDir, 'ssh_host_ed25519_key')]);
  t.same(c.demo, { root: true, hostKey: true, keys: true });
});

t.test('file < environment < command line; file paths relative to the file', async (t) => {
  const file = writeConfig('layers.json', { listen: ['0.0.0.0:22'], root: 'data', authorizedKeys: ['keys/ak'], limits: { maxConnections: 5 } });
  const fromFile = loadConfig({ file, env: baseEnv, cwd: '/' });
  t.same(fromFile.listen, ['0.0.0.0:22']);
  t.equal(fromFile.root, join(dir, 'data'));
  t.same(fromFile.authorizedKeys, [join(dir, 'keys/ak')]);
  t.equal(fromFile.limits.maxConnections, 5);
  t.equal(fromFile.demo.keys, false);

  const env = { ...baseEnv, RRSYNCD_LISTEN: '127.0.0.1:1,127.0.0.1:2', RRSYNCD_MAX_CONNECTIONS: '7' };
  const fromEnv = loadConfig({ file, env, cwd: '/' });
  t.same(fromEnv.listen, ['127.0.0.1:1', '127.0.0.1:2']);
  t.equal(fromEnv.limits.maxConnections, 7);

  const fromCli = loadConfig({ file, env, cwd: '/work', overrides: { listen: ['127.0.0.1:0'], root: 'r' } });
  t.same(fromCli.listen, ['127.0.0.1:0']);
  t.equal(fromCli.root, '/work/r', 'CLI paths are relative to the working directory');
});

t.test('errors name the setting and the file', async (t) => {
  const file = writeConfig('bad.json', { listne: ['x'], listen: ['nohost'], limits: { maxConnections: -1 }, log: { level: 'loud' } });
  const problems = problemsOf(() => loadConfig({ file, env: baseEnv }));
  t.ok(problems.some((p) => p.startsWith(`${file}: listne: unknown setting`)), problems.join('\n'));
  t.ok(problems.some((p) => p.startsWith(`${file}: listen:`) && p.includes('HOST:PORT')), problems.join('\n'));
  t.ok(problems.some((p) => p.startsWith(`${file}: limits.maxConnections:`)), problems.join('\n'));
  t.ok(problems.some((p) => p.startsWith(`${file}: log.level:`)), problems.join('\n'));
});

t.test('errors from the environment name the variable', async (t) => {
  const problems = problemsOf(() => loadConfig({ env: { ...baseEnv, RRSYNCD_CIPHERS: 'rot13' } }));
  t.equal(problems.length, 1);
  t.match(problems[0], /^environment RRSYNCD_CIPHERS: algorithms\.cipher: .*unsupported cipher algorithm\(s\): rot13/);
});

t.test('bad JSON and tenant errors', async (t) => {
  const broken = writeConfig('broken.json', '{ "listen": [');
  t.equal(problemsOf(() => loadConfig({ file: broken, env: baseEnv }))[0], `${broken}:1:14: invalid JSON: Unexpected end of JSON input`);
  const file = writeConfig('tenants.json', { tenants: [{ name: 'a', keys: [], mode: 'rx', colour: 'red' }, { keysFile: 'k' }] });
  const problems = problemsOf(() => loadConfig({ file, env: baseEnv }));
  t.ok(problems.includes(`${file}: tenants[0].mode: must be one of rw, ro, wo`), problems.join('\n'));
  t.ok(problems.includes(`${file}: tenants[0].colour: unknown setting`), problems.join('\n'));
  t.ok(problems.includes(`${file}: tenants[1].name: required, a non-empty string`), problems.join('\n'));
  t.match(problemsOf(() => loadConfig({ file: join(dir, 'missing.json'), env: baseEnv }))[0], /cannot read config file/);
});

t.test('JSON errors give line:column, not a character offset', async (t) => {
  const file = writeConfig('trailing.json', '{\n  "listen": ["127.0.0.1:1"],\n  "root": "/srv",\n}\n');
  const [p] = problemsOf(() => loadConfig({ file, env: baseEnv }));
  t.match(p, new RegExp(`^${file}:4:1: invalid JSON: `));
  t.notMatch(p, /position/);
});

t.test('tenant names must be one plain path component', async (t) => {
  const bad = ['../escape', 'a/b', '..', '.hidden', 'nul\u0000byte', 'esc\u001b[31m', 'x'.repeat(256)];
  const file = writeConfig('tenant-names.json', { root: '/srv', tenants: bad.map((name) => ({ name, keys: [] })) });
  const problems = problemsOf(() => loadConfig({ file, env: baseEnv }));
  bad.forEach((_, i) => t.ok(problems.some((p) => p.startsWith(`${file}: tenants[${i}].name: `)), `tenants[${i}] refused\n${problems.join('\n')}`));
  t.ok(problems.includes(`${file}: tenants[0].name: "../escape" must not contain "/"`), problems.join('\n'));
  t.ok(problems.includes(`${file}: tenants[5].name: "esc\\u001b[31m" must not contain control characters`), 'control characters are shown escaped');
  const ok = writeConfig('tenant-names-ok.json', { root: '/srv', tenants: [{ name: 'host-1.example_2', keys: [] }] });
  t.same(problemsOf(() => loadConfig({ file: ok, env: baseEnv })), []);
});

t.test('a relative tenant root may not leave the default root; incomingChmod is parsed at load', async (t) => {
  const file = writeConfig('tenant-roots.json', {
    root: '/srv',
    tenants: [
      { name: 'a', keys: [], root: '../etc' },
      { name: 'b', keys: [], root: 'x/../../y' },
      { name: 'c', keys: [], root: '/elsewhere/c', limits: { incomingChmod: 'u+q' } },
      { name: 'd', keys: [], root: 'sub/../d2', limits: { incomingChmod: 'Fgo-w' } },
    ],
  });
  const problems = problemsOf(() => loadConfig({ file, env: baseEnv }));
  t.ok(problems.some((p) => p.startsWith(`${file}: tenants[0].root: a relative root must stay below`)), problems.join('\n'));
  t.ok(problems.some((p) => p.startsWith(`${file}: tenants[1].root:`)), problems.join('\n'));
  t.ok(problems.includes(`${file}: tenants[2].limits.incomingChmod: invalid chmod item "u+q"`), problems.join('\n'));
  t.equal(problems.length, 3, 'an absolute root and a relative one that stays below are fine');
});

t.test('tenants: keys inline with pinned users and a base grant', async (t) => {
  const pub = generateEd25519().public.trim();
  const file = writeConfig('tenant-ok.json', {
    root: '/srv',
    tenants: [
      { name: 'host1', users: ['backup'], mode: 'wo', noDelete: true, keys: [pub, `command="rrsync -munge sub" ${pub}`], limits: { quotaBytes: 1000 } },
    ],
  });
  const c = loadConfig({ file, env: baseEnv });
  const g = tenantGrant(c.tenants[0]!, c.root);
  t.equal(g.root, '/srv/host1', 'the tenant root defaults to <root>/<name>');
  t.equal(g.writeOnly, true);
  t.equal(g.limits.quotaBytes, 1000);
  const keys = buildKeyRing(c);
  t.same(keys.errors, []);
  t.equal(keys.ring.size, 2);
  const blob = (ssh2.utils.parseKey(pub) as ssh2.ParsedKey).getPublicSSH();
  t.equal(keys.ring.decide(blob, 'root', '127.0.0.1').ok, false, 'user name is pinned');
  const d = keys.ring.decide(blob, 'backup', '127.0.0.1');
  t.ok(d.ok && d.entry.tenant === 'host1' && d.entry.grant!.writeOnly && d.entry.grant!.noDelete);
  const second = keys.ring.entriesFor(blob)[1]!;
  t.equal(second.grant!.root, '/srv/host1/sub', 'relative rrsync DIR resolves against the tenant root');
  t.ok(second.grant!.munge && second.grant!.writeOnly, 'rrsync flags add to the tenant grant');
});

t.test('a missing --authorized-keys file is an error naming it', async (t) => {
  const c = loadConfig({ env: baseEnv, overrides: { authorizedKeys: [join(dir, 'nope')] } });
  t.match(buildKeyRing(c).errors[0], new RegExp(`${join(dir, 'nope')}: cannot read key file: ENOENT`));
});

t.test('host key: generated once with mode 0600, then reused', async (t) => {
  const path = join(dir, 'state', 'hostkey');
  const first = ensureHostKey(path);
  t.equal(first.created, true);
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700);
  const second = ensureHostKey(path);
  t.equal(second.created, false);
  t.equal(second.hostKey.fingerprint, first.hostKey.fingerprint);
  const pubLine = readFileSync(`${path}.pub`, 'utf8').trim();
  const pub = ssh2.utils.parseKey(pubLine) as ssh2.ParsedKey;
  t.equal(fingerprintOf(pub.getPublicSSH()), first.hostKey.fingerprint, '.pub matches the private key');
});
