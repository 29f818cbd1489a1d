// Publish-mode retention run by its timer: old revisions removed under the root lock while the
// event loop keeps running; a root that vanished is logged, never an unhandled rejection.
import t from 'tap';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { scheduleRetention } from '../../src/revisions/retention.js';
import { lockRoot } from '../../src/sandbox/lock.js';
import { countTurns, tmpDir } from './sandbox-helpers.js';

const NAMES = ['2026-12-01T100000Z', '2026-12-02T100000Z', '2026-12-03T100000Z', '2026-12-04T100000Z'];

/** A logger whose records land in `records`. */
function recordingLog(): { log: pino.Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, records };
}

async function until(what: () => boolean, ms = 20_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

t.test('the grace timer removes old revisions and their manifests, with the root lock held', async (t) => {
  const root = tmpDir(t);
  for (const name of NAMES) {
    const dir = join(root, 'revisions', name);
    mkdirSync(join(dir, 'd'), { recursive: true });
    for (let i = 0; i < 1000; i++) writeFileSync(join(dir, 'd', `f${i}`), '');
    writeFileSync(join(root, 'revisions', `${name}.manifest.json`), '{}');
  }
  symlinkSync(`revisions/${NAMES[3]}`, join(root, 'current'));
  const { log, records } = recordingLog();
  const removedBoth = (): boolean => records.filter((r) => r.event === 'revision.removed').length === 2;
  // each turn of the event loop during the wait: is the root locked (by the retention run)?
  const { turns, probed: lockedDuring } = await countTurns(
    async () => {
      await scheduleRetention(root, { mode: 'publish', keep: 1 }, NAMES[3]!, log, 1);
      t.ok(await until(removedBoth), 'two revisions removed');
    },
    () => {
      const probe = lockRoot(root);
      probe?.release();
      return probe === null;
    },
  );
  t.same(readdirSync(join(root, 'revisions')).sort(), [NAMES[2], `${NAMES[2]}.manifest.json`, NAMES[3], `${NAMES[3]}.manifest.json`]);
  t.ok(lockedDuring > 0, `the root was locked while other work ran (${lockedDuring} of ${turns} event-loop turns)`);
  const free = lockRoot(root);
  t.ok(free, 'the lock is released afterwards');
  free?.release();
});

t.test('a root gone before the timer fires: logged, no unhandled rejection', async (t) => {
  const root = tmpDir(t);
  mkdirSync(join(root, 'revisions', NAMES[0]!), { recursive: true });
  const { log, records } = recordingLog();
  await scheduleRetention(root, { mode: 'publish', keep: 0 }, NAMES[0]!, log, 1);
  rmSync(root, { recursive: true });
  t.ok(await until(() => records.some((r) => r.msg === 'removing old revisions failed')), 'the failure is logged');
  t.notOk(existsSync(root));
});
