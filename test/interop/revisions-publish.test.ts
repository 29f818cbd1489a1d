// Publish mode with the real client (in-process engine host): a reader looping over current/
// during 20 publishes never sees a mixed tree; older revisions beyond `keep` are removed after
// the grace period, never the one current names.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, utimes, mkdir, readlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEngineHost } from './lib/engine-host.js';
import { pusher, revisionNames, stagingLeft } from './lib/revisions.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { verifyManifestChain } from '../../src/revisions/manifest.js';

const FILES = 10;
const PUBLISHES = 20;

async function writeVersion(src: string, n: number): Promise<void> {
  for (let i = 0; i < FILES; i++) {
    const p = join(src, `f${i}`);
    await writeFile(p, `v${n}\n`);
    await utimes(p, 1_600_000_000 + n, 1_600_000_000 + n);
  }
}

t.test('a reader of current/ sees whole trees only; old revisions go after the grace period', async (t) => {
  const host = await startEngineHost();
  t.teardown(() => host.close());
  const top = await mkdtemp(join(tmpdir(), 'rrsyncd-pub-'));
  t.teardown(() => rm(top, { recursive: true, force: true }));
  const root = join(top, 'root');
  const src = join(top, 'src');
  await mkdir(root);
  await mkdir(src);
  const push = pusher(host, root, { revisions: { mode: 'publish', keep: 3, graceSeconds: 600 } });

  // The reader resolves current once per pass (cd), then reads every file of that tree.
  const stop = join(top, 'stop');
  const files = Array.from({ length: FILES }, (_, i) => `f${i}`).join(' ');
  const reader = spawn('sh', ['-c', `cd "${root}" && while [ ! -e "${stop}" ]; do (cd current 2>/dev/null && cat ${files} | tr '\\n' ' ' && echo); done`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let errors = '';
  reader.stdout.on('data', (c: Buffer) => (out += c.toString()));
  reader.stderr.on('data', (c: Buffer) => (errors += c.toString()));
  const exited = new Promise<void>((r) => reader.on('close', () => r()));
  t.teardown(() => reader.kill('SIGKILL'));

  for (let n = 1; n <= PUBLISHES; n++) {
    await writeVersion(src, n);
    const r = await push(['-a', '--delete', `${src}/`, 'x:']);
    t.equal(r.code, 0, `publish ${n}: ${r.stderr}`);
  }
  await writeFile(stop, '');
  await exited;

  const passes = out.split('\n').filter((l) => l.trim() !== '');
  const mixed = passes.filter((l) => new Set(l.trim().split(' ')).size !== 1 || l.trim().split(' ').length !== FILES);
  t.ok(passes.length > PUBLISHES, `the reader made ${passes.length} passes`);
  t.same(mixed.slice(0, 5), [], 'no pass saw a mixed or partial tree');
  t.equal(errors, '', 'the reader never failed to read');
  const versions = new Set(passes.map((l) => l.trim().split(' ')[0]));
  t.ok(versions.size > 1, `the reader saw ${versions.size} versions`);

  const names = revisionNames(root, 'revisions');
  t.equal(names.length, PUBLISHES, 'within the grace period every revision is kept');
  t.equal(await readlink(join(root, 'current')), `revisions/${names.at(-1)}`);

  // A publish with no grace removes all but `keep` before the one published.
  await writeVersion(src, PUBLISHES + 1);
  const last = await push(['-a', `${src}/`, 'x:'], { revisions: { mode: 'publish', keep: 3, graceSeconds: 0 } });
  t.equal(last.code, 0, last.stderr);
  const left = revisionNames(root, 'revisions');
  t.equal(left.length, 4, 'current and the 3 before it');
  t.equal(await readlink(join(root, 'current')), `revisions/${left.at(-1)}`);
  t.notOk(existsSync(join(root, 'revisions', `${names[0]}.manifest.json`)), 'manifests of removed revisions go too');
  t.same(stagingLeft(root), []);
  const sandbox = Sandbox.open(root);
  try {
    t.same(verifyManifestChain(sandbox, 'publish').problems, [], 'the chain of what is left verifies');
  } finally {
    sandbox.close();
  }
});
