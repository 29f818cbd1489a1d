// A vetoed push of a few thousand files: its staging is removed while the event loop keeps
// running (other sessions are served meanwhile), and the root lock is held until it is gone, so
// the client's exit and the next push never meet a half-removed staging.
import t from 'tap';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEngineHost } from './lib/engine-host.js';
import { pusher, revisionNames, stagingLeft } from './lib/revisions.js';
import { lockRoot } from '../../src/sandbox/lock.js';

const DIRS = 4;
const FILES_PER_DIR = 600;

t.test('a vetoed push: staging removed in turns, under the root lock', async (t) => {
  const top = await mkdtemp(join(tmpdir(), 'rrsyncd-rev-discard-'));
  t.teardown(() => rm(top, { recursive: true, force: true }));
  const root = join(top, 'root');
  const src = join(top, 'src');
  await mkdir(root);
  for (let d = 0; d < DIRS; d++) {
    await mkdir(join(src, `d${d}`), { recursive: true });
    for (let f = 0; f < FILES_PER_DIR; f++) await writeFile(join(src, `d${d}`, `f${f}`), `${d}/${f}\n`);
  }
  // From the veto on, every turn of the event loop looks at the root.
  let watching = false;
  let discarding = 0;
  let unlockedWithStaging = 0;
  const watch = (): void => {
    if (!watching) return;
    const lock = lockRoot(root);
    lock?.release();
    if (stagingLeft(root).length > 0) {
      if (lock) unlockedWithStaging++;
      else discarding++;
    }
    setImmediate(watch);
  };
  let veto: string | null = 'not today';
  const host = await startEngineHost({
    revisionHooks: {
      verify: async () => {
        if (veto !== null) {
          watching = true;
          setImmediate(watch);
        }
        return veto;
      },
    },
  });
  t.teardown(() => host.close());
  const push = pusher(host, root, { revisions: { mode: 'snapshot' } });

  const vetoed = await push(['-a', `${src}/`, 'x:']);
  watching = false;
  t.equal(vetoed.code, 1, 'exit 1');
  t.match(vetoed.stderr, /^rrsyncd: revision refused by verify hook: not today$/m);
  t.same(stagingLeft(root), [], 'the staging is gone when the client has its exit status');
  t.same(revisionNames(root), [], 'nothing published');
  t.ok(discarding >= 3, `the event loop ran ${discarding} times while the staging was removed`);
  t.equal(unlockedWithStaging, 0, 'the root lock was held until the staging was gone');

  veto = null;
  const ok = await push(['-a', `${src}/`, 'x:']);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(revisionNames(root).length, 1, 'the next push publishes');
});
