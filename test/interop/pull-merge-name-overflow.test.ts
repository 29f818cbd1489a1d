// exclude.c parse_merge_name()/push_local_filters(): when a per-directory merge name joined to the
// scanned directory's absolute path reaches MAXPATHLEN, the sender prints "merge-file name
// overflows: …" and "cannot add local filter rules in long-named directory: …", names a rule that
// came from a file only by where it came from, skips that merge file and ends with exit 23 (and a
// receiver then skips --delete). The window depends on the absolute source path, as in rsync's own
// test (filter-merge-content-echo), so each side's name is padded relative to its own path.
import { existsSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { file, newCase, PIPE_RSH, type Case, type Transport } from './lib/interop.js';

const tr: Transport = { kind: 'pipe', rsh: PIPE_RSH, host: 'x', env: {} };
const MAXPATHLEN = 4096;
const SECRET = 'DEFERRED-SECRET-';

/** -r keeps no mtimes, and each side's rule file is padded to its own path length. */
const COMPARE = { ignoreMtimes: true, exclude: (p: string) => p === '.rsync-filter' };

const tree = () => [file('sub/f', 'x\n'), file('.rsync-filter', '- nothing\n')];

/** Writes into `srcDir` a ": sub/NAME" rule whose NAME is `slack` bytes short of the boundary. */
function writeRule(srcDir: string, slack: number): void {
  const pad = MAXPATHLEN - realpathSync(srcDir).length - slack;
  writeFileSync(join(srcDir, '.rsync-filter'), `: sub/${SECRET}${'Q'.repeat(pad)}\n`);
}

async function runAt(c: Case, args: string[], slack: number, local: boolean) {
  await c.syncSources();
  writeRule(c.remoteSrc, slack);
  writeRule(c.localSrc, slack);
  const remote = await c.runRemote(args, { keepSources: true });
  const ref = local ? await c.runLocal(args, { keepSources: true }) : { code: 0, stdout: '', stderr: '', args: [] };
  return { remote, local: ref, remoteArgs: remote.args, localArgs: ref.args };
}

t.test('-F pull: the overflow window is found as rsync finds it, and the name is never echoed', async (t) => {
  const c = await newCase(t, tr, 'pull', tree());
  let found = -1;
  for (let slack = 12; slack < 80 && found < 0; slack += 4) {
    const r = await runAt(c, ['-r', '-F'], slack, false);
    const out = r.remote.stdout + r.remote.stderr;
    t.notOk(out.includes(SECRET), `slack ${slack}: the over-long name is not echoed`, c.describe(r));
    if (out.includes('merge-file name overflows')) found = slack;
  }
  t.ok(found >= 0, 'some length reached the merge-name overflow');
  // Just past the window (the reference's name fits once the directory is prepended): no message.
  const after = await runAt(c, ['-r', '-F'], 24, true);
  c.sameExit(t, after, 0);
  c.sameMessages(t, after);
  await c.compare(t, COMPARE);
});

for (const protocol of [29, 30, 32]) {
  t.test(`-F --delete pull inside the window: messages, exit 23, no deletion --protocol=${protocol}`, async (t) => {
    const c = await newCase(t, tr, 'pull', tree());
    await c.seedDst([file('stale', 's\n'), file('sub/f', 'old\n')]);
    const r = await runAt(c, ['-r', '-F', '--delete', `--protocol=${protocol}`], 16, true);
    c.sameExit(t, r, 23);
    c.sameMessages(t, r);
    const msgs = c.messages(r.remote);
    t.ok(msgs.includes('merge-file name overflows: <rule from a file read earlier>'), 'the overflow is reported by where the rule came from', c.describe(r));
    t.ok(msgs.includes('cannot add local filter rules in long-named directory: <rule from a file read earlier>'), 'the skipped merge file is reported');
    t.notOk(r.remote.stdout.includes(SECRET) || r.remote.stderr.includes(SECRET), 'the name is never echoed');
    await c.compare(t, COMPARE);
    t.ok(existsSync(join(c.remoteDst(), 'stale')), 'the I/O error made the client skip --delete');
    t.ok(existsSync(join(c.remoteDst(), '.rsync-filter')), 'the rule file itself was transferred');
  });
}
