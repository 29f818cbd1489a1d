// Snapshot mode behind real ssh: a `command="rrsync -snapshot DIR"` key makes revisions whose
// manifests name the key; a push killed mid-file leaves latest unchanged and no staging behind;
// staging left by a crash is removed at server start.
import t from 'tap';
import { mkdtemp, rm, writeFile, readFile, readlink, mkdir } from 'node:fs/promises';
import { lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../helpers/server.js';
import { noise } from './lib/interop.js';
import { revisionNames, stagingLeft, fingerprint } from './lib/revisions.js';

t.test('snapshot key over ssh: revisions, manifest, killed push', async (t) => {
  const top = await mkdtemp(join(tmpdir(), 'rrsyncd-rev-ssh-'));
  t.teardown(() => rm(top, { recursive: true, force: true }));
  const root = join(top, 'backups');
  const src = join(top, 'src');
  await mkdir(root);
  await mkdir(src);
  await writeFile(join(src, 'a.txt'), 'a\n');
  await writeFile(join(src, 'b.txt'), 'b\n');
  // what a crashed server left behind is removed at start
  await mkdir(join(root, '.rrsyncd-staging/2000-01-01T000000Z/half'), { recursive: true });
  const srv = await startServer({ authorizedKeysOptions: `command="rrsync -snapshot -wo ${root}"` });
  t.teardown(() => srv.cleanup());
  await srv.waitForLog((r) => r.event === 'revision.discarded' && r.stale === true);
  t.same(stagingLeft(root), [], 'stale staging removed at start');

  const first = await srv.rsync(['-a', `${src}/`, srv.remote('')]);
  t.equal(first.code, 0, first.stderr);
  await writeFile(join(src, 'b.txt'), 'b changed\n');
  const second = await srv.rsync(['-a', `${src}/`, srv.remote('')]);
  t.equal(second.code, 0, second.stderr);
  const [ra, rb] = revisionNames(root);
  t.ok(ra && rb, 'two revisions');
  const ino = (p: string): number => lstatSync(p).ino;
  t.equal(ino(join(root, 'snapshots', ra!, 'a.txt')), ino(join(root, 'snapshots', rb!, 'a.txt')), 'unchanged: shared inode');
  t.not(ino(join(root, 'snapshots', ra!, 'b.txt')), ino(join(root, 'snapshots', rb!, 'b.txt')), 'changed: new inode');
  const manifest = JSON.parse(await readFile(join(root, 'snapshots', `${rb}.manifest.json`), 'utf8')) as Record<string, unknown>;
  t.match(manifest.keyFingerprint, /^SHA256:/, 'the manifest names the key');
  t.match(manifest.argv, ['rsync', '--server'], 'and the client command line');
  const published = await srv.waitForLog((r) => r.event === 'revision.published' && r.revision === rb);
  t.equal(published.keyFingerprint, manifest.keyFingerprint, 'one pino record per published revision');

  const pull = await srv.rsync(['-a', srv.remote('latest/'), join(top, 'out')]);
  t.not(pull.code, 0, '-wo: no pulls, also from a revisions root');

  // A push killed mid-file: the client is SIGKILLed while a slow transfer runs.
  const before = fingerprint(join(root, 'snapshots', rb!));
  await writeFile(join(src, 'big.bin'), noise(4 << 20, 3));
  const killed = await srv.rsync(['-a', '--bwlimit=200', `${src}/`, srv.remote('')], { timeoutMs: 4000 });
  t.equal(killed.code, -1, 'the client was killed mid-transfer');
  await srv.waitForLog((r) => r.event === 'revision.discarded' && r.stale === undefined, 30_000);
  t.equal(await readlink(join(root, 'latest')), `snapshots/${rb}`, 'latest unchanged');
  t.same(revisionNames(root), [ra, rb], 'no new revision');
  t.same(stagingLeft(root), [], 'no staging left');
  t.same(fingerprint(join(root, 'snapshots', rb!)), before, 'the latest revision is untouched');
});
