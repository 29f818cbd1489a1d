// The sandbox's unnamed files as an unprivileged user (systemd runs rrsyncd as one): without
// CAP_DAC_READ_SEARCH, linkat(AT_EMPTY_PATH) is refused and the /proc/self/fd way must be used.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { tmpDir } from './sandbox-helpers.js';

const NOBODY = 65534;
const TSX_LOADER = path.resolve('node_modules/tsx/dist/loader.mjs');

/** Why the test cannot run here, or false: it needs root, and a checkout nobody can read. */
function cannotRun(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to switch to nobody';
  if (process.env.RRSYNCD_NATIVE === 'off') return 'unnamed files need the native addon (RRSYNCD_NATIVE=off)';
  const probe = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(TSX_LOADER)}, 4)`], {
    uid: NOBODY,
    gid: NOBODY,
    env: { PATH: process.env.PATH ?? '' },
  });
  return probe.status === 0 ? false : `nobody cannot read this checkout (${path.resolve('.')})`;
}

t.test('unnamed files are created and named by a user without privileges', { skip: cannotRun() }, async (t) => {
  const dir = tmpDir(t, 'sbx-nobody-');
  fs.chownSync(dir, NOBODY, NOBODY);
  const work = path.join(dir, 'root');
  fs.mkdirSync(path.join(work, 'd'), { recursive: true });
  fs.chownSync(work, NOBODY, NOBODY);
  fs.chownSync(path.join(work, 'd'), NOBODY, NOBODY);
  const script = `
    import { Sandbox } from ${JSON.stringify(path.resolve('src/sandbox/sandbox.ts'))};
    const sb = Sandbox.open(${JSON.stringify(work)});
    const fd = sb.createAnonymous('d', 0o644);
    if (fd === null) throw new Error('no O_TMPFILE');
    sb.write(fd, Buffer.from('made by nobody'), 0, 14, 0);
    const first = sb.linkAnonymous(fd, 'd/a');
    const again = sb.linkAnonymous(fd, 'd/a');
    const temp = sb.nameAnonymous(fd, 'd', 'b');
    sb.close(fd);
    console.log(JSON.stringify({ uid: process.getuid(), first, again, temp }));
  `;
  const tsx = pathToFileURL(TSX_LOADER).href;
  const r = spawnSync(process.execPath, ['--import', tsx, '--input-type=module', '-e', script], {
    uid: NOBODY,
    gid: NOBODY,
    encoding: 'utf8',
    cwd: dir,
  });
  // (tap's process hooks follow the child and complain that nobody cannot write under .tap/)
  t.equal(r.status, 0, 'the child ran', { stderr: r.stderr });
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { uid: number; first: boolean; again: boolean; temp: string };
  t.equal(out.uid, NOBODY, 'ran as nobody');
  t.equal(out.first, true, 'named');
  t.equal(out.again, false, 'an existing name is not replaced');
  t.match(out.temp, /^d\/\.b\.[A-Za-z0-9]{6}$/);
  t.equal(fs.readFileSync(path.join(work, 'd', 'a'), 'utf8'), 'made by nobody');
  t.equal(fs.statSync(path.join(work, 'd', 'a')).uid, NOBODY, 'owned by the user that made it');
});
