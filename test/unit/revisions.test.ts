// Revisions: grants and tenant config, the staging guard, retention choices, the manifest chain.
import t from 'tap';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, symlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { grantFromRrsyncCommand } from '../../src/ssh/authorized-keys.js';
import { tenantProblems } from '../../src/config/schema.js';
import { tenantGrant } from '../../src/ssh/key-ring.js';
import { readOnlyGuard, revisionGuard } from '../../src/revisions/guard.js';
import { revisionsToRemove } from '../../src/revisions/retention.js';
import { verifyManifestChain, writeManifest, chainLink, type Manifest } from '../../src/revisions/manifest.js';
import { openStaging, removeStaleStaging } from '../../src/revisions/staging.js';
import { currentRevision, setPointer } from '../../src/revisions/pointer.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';

const silent = pino({ level: 'silent' });

t.test('rrsync -snapshot / -publish grants', async (t) => {
  const g = grantFromRrsyncCommand('rrsync -snapshot -wo backups', '/srv');
  t.same(g.revisions, { mode: 'snapshot' });
  t.equal(g.root, '/srv/backups');
  t.ok(g.writeOnly);
  t.same(grantFromRrsyncCommand('rrsync -publish /site', '/srv').revisions, { mode: 'publish' });
  t.ok(grantFromRrsyncCommand('rrsync -ro -snapshot /b', '/srv').readOnly, '-ro with -snapshot: pulls only');
  t.throws(() => grantFromRrsyncCommand('rrsync -snapshot -no-lock /b', '/srv'), /-no-lock cannot be combined with -snapshot/);
  const tenant = tenantGrant({ name: 'n', keys: [], revisions: { mode: 'publish', keep: 5 } }, '/srv');
  t.same(tenant.revisions, { mode: 'publish', keep: 5 });
  t.same(grantFromRrsyncCommand('rrsync /b', '/srv', tenant).revisions, { mode: 'publish', keep: 5 }, 'a tenant key inherits revisions');
});

t.test('tenant revisions config is validated', async (t) => {
  const at = 'tenants[0]';
  const base = { name: 'n', keys: [] };
  t.same(tenantProblems({ ...base, revisions: { mode: 'snapshot' } }, at), []);
  t.same(tenantProblems({ ...base, revisions: { mode: 'publish', keep: 2, graceSeconds: 0 } }, at), []);
  t.match(tenantProblems({ ...base, revisions: { mode: 'daily' } }, at), [/tenants\[0\]\.revisions\.mode: must be one of snapshot, publish/]);
  t.match(tenantProblems({ ...base, revisions: { mode: 'publish', keep: -1 } }, at), [/revisions\.keep: must be a non-negative integer/]);
  t.match(tenantProblems({ ...base, revisions: { mode: 'publish', every: 1 } }, at), [/revisions\.every: unknown setting/]);
  t.match(tenantProblems({ ...base, noLock: true, revisions: { mode: 'snapshot' } }, at), [/cannot be combined with noLock/]);
  t.match(tenantProblems({ ...base, revisions: 'snapshot' }, at), [/revisions: must be an object/]);
});

t.test('the guard confines a push to its staging revision', async (t) => {
  const g = revisionGuard('.rrsyncd-staging/R2', 'snapshots/R1');
  const ok = (c: Parameters<NonNullable<typeof g.before>>[0]): void => {
    g.before!(c);
    g.after!(c);
  };
  ok({ op: 'mkdir', path: '.rrsyncd-staging/R2/d', purpose: 'entry' });
  ok({ op: 'link', path: '.rrsyncd-staging/R2/d/same', from: 'snapshots/R1/d/same', purpose: 'copy' });
  for (const c of [
    { op: 'delete', path: 'snapshots/R1/d/same', purpose: 'delete' },
    { op: 'attrs', path: 'snapshots/R1', purpose: 'entry' },
    { op: 'create', path: 'snapshots/R1/d', purpose: 'temp' },
    { op: 'rename', path: 'latest', from: '.rrsyncd-staging/R2/x', purpose: 'entry' },
    { op: 'rename', path: '.rrsyncd-staging/R2/x', from: 'snapshots/R1/x', purpose: 'entry' },
    { op: 'link', path: '.rrsyncd-staging/R2/x', from: 'snapshots/R0/x', purpose: 'copy' },
    { op: 'delete', path: '.rrsyncd-staging/R2', purpose: 'delete' },
    { op: 'attrs', path: '.rrsyncd-staging/R2/d/same', purpose: 'entry' },
    { op: 'modify', path: '.rrsyncd-staging/R2/d/same', purpose: 'entry' },
    { op: 'truncate', path: '.rrsyncd-staging/R2/d/same', purpose: 'entry' },
  ] as const) {
    t.throws(() => g.before!({ ...c }), { code: 'EPERM' }, `${c.op} ${c.path}${'from' in c ? ` from ${c.from}` : ''}`);
  }
  // a shared name moved with its directory stays shared; once replaced, it is the push's own
  ok({ op: 'rename', path: '.rrsyncd-staging/R2/e', from: '.rrsyncd-staging/R2/d', purpose: 'entry' });
  t.throws(() => g.before!({ op: 'attrs', path: '.rrsyncd-staging/R2/e/same', purpose: 'entry' }), { code: 'EPERM' });
  ok({ op: 'rename', path: '.rrsyncd-staging/R2/e/same', from: '.rrsyncd-staging/R2/e/.same.XXXXXX', purpose: 'entry' });
  ok({ op: 'attrs', path: '.rrsyncd-staging/R2/e/same', purpose: 'entry' });
  t.throws(() => readOnlyGuard().before!({ op: 'delete', path: 'snapshots/R1/x', purpose: 'remove-source' }), { code: 'EPERM' });
});

t.test('retention: keep the newest N before the published one, never current', async (t) => {
  const names = ['2026-01-01T000000Z', '2026-01-02T000000Z', '2026-01-02T000000Z-2', '2026-01-03T000000Z', '2026-01-04T000000Z'];
  t.same(revisionsToRemove(names, '2026-01-04T000000Z', '2026-01-04T000000Z', 2), ['2026-01-01T000000Z', '2026-01-02T000000Z']);
  t.same(revisionsToRemove(names, '2026-01-04T000000Z', '2026-01-01T000000Z', 2), ['2026-01-02T000000Z'], 'a rolled-back current stays');
  t.same(revisionsToRemove(names, '2026-01-03T000000Z', null, 0), ['2026-01-01T000000Z', '2026-01-02T000000Z', '2026-01-02T000000Z-2'], 'never a newer one');
  t.same(revisionsToRemove(names, '2026-01-09T000000Z', null, 0), [], 'unknown: nothing');
});

t.test('staging names, stale staging, the pointer, and the manifest chain', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'rrsyncd-rev-unit-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const sandbox = Sandbox.open(root);
  t.teardown(() => sandbox.close());
  const at = new Date(Date.UTC(2026, 11, 7, 10, 15, 0));
  const a = openStaging(sandbox, 'snapshot', at);
  const b = openStaging(sandbox, 'snapshot', at);
  t.equal(a.name, '2026-12-07T101500Z');
  t.equal(b.name, '2026-12-07T101500Z-2', 'unique against the staging place');
  t.equal(a.previousRel, null);
  t.same((await removeStaleStaging(sandbox, silent)).sort(), [a.name, b.name]);
  t.notOk(existsSync(join(root, '.rrsyncd-staging', a.name)));

  mkdirSync(join(root, 'snapshots/2026-12-07T101500Z'));
  symlinkSync('snapshots/2026-12-07T101500Z', join(root, 'latest'));
  t.equal(currentRevision(sandbox, 'snapshot'), '2026-12-07T101500Z');
  t.equal(openStaging(sandbox, 'snapshot', at).name, '2026-12-07T101500Z-2', 'unique against published revisions');
  mkdirSync(join(root, 'snapshots/2026-12-06T101500Z'));
  setPointer(sandbox, 'snapshot', '2026-12-06T101500Z');
  t.equal(currentRevision(sandbox, 'snapshot'), '2026-12-06T101500Z', 'switched back (a rollback)');
  t.same(readdirSync(root).filter((n) => n.startsWith('.latest')), [], 'no temp symlink left');
  rmSync(join(root, 'snapshots/2026-12-06T101500Z'), { recursive: true });
  rmSync(join(root, 'latest'));
  symlinkSync('../elsewhere', join(root, 'latest'));
  t.equal(currentRevision(sandbox, 'snapshot'), null, 'a pointer out of snapshots/ is no basis');

  const manifest = (revision: string): Manifest => ({
    version: 1, mode: 'snapshot', revision, basis: null, ...chainLink(sandbox, 'snapshot', revision), argv: ['rsync'], files: 0, entries: 0,
    bytes: 0, newBytes: 0, start: 's', end: 'e',
  });
  const names = ['2026-12-07T101500Z', '2026-12-07T101600Z', '2026-12-07T101700Z'];
  for (const n of names) {
    mkdirSync(join(root, 'snapshots', n), { recursive: true });
    writeManifest(sandbox, manifest(n));
  }
  t.same(verifyManifestChain(sandbox, 'snapshot'), { ok: true, checked: names, problems: [] });
  const middle = join(root, 'snapshots', `${names[1]}.manifest.json`);
  writeFileSync(middle, readFileSync(middle, 'utf8').replace('"files": 0', '"files": 1'));
  const edited = verifyManifestChain(sandbox, 'snapshot');
  t.notOk(edited.ok, 'an edited manifest breaks the chain');
  t.match(edited.problems, [/2026-12-07T101700Z: does not chain to 2026-12-07T101600Z/]);
  rmSync(middle);
  t.match(verifyManifestChain(sandbox, 'snapshot').problems, [/101700Z: does not chain to 2026-12-07T101500Z/, /101600Z: no manifest/], 'a removed one too');
});
