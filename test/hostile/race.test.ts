/**
 * The race test with the REAL client (issue 5): stock `rsync -a` pushes a small tree into
 * root/d/ through test/pipe/rsh.sh in a loop for a few seconds, while another process flips
 * root/d between a real directory and a symlink to a directory outside the root thousands of
 * times. Afterwards the outside directory must be exactly as it was: same entries, same
 * content, same mtimes. (The sandbox resolves every parent with O_NOFOLLOW from pinned
 * directory fds, so a flip makes an operation fail, never follow.)
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { arena, RSH, sleep } from './client.js';
import { snapshotTreeSync } from '../helpers/tree.js';

const RACE_MS = Number(process.env.HOSTILE_RACE_MS ?? 5000);

const FLIPPER = `
const fs = require('fs');
const d = process.env.FLIP_D, saved = process.env.FLIP_SAVED, target = process.env.FLIP_TARGET;
let flips = 0, errors = 0;
// until the test says stop (its loops may need longer than RACE_MS on a loaded machine), at most 2 min
const stopFile = process.env.FLIP_STOP, deadline = Date.now() + 120000;
const exists = (p) => { try { fs.lstatSync(p); return true; } catch { return false; } };
while (!exists(stopFile) && Date.now() < deadline) {
  try {
    let st = null;
    try { st = fs.lstatSync(d); } catch {}
    if (st === null) {
      if (exists(saved)) fs.renameSync(saved, d); else fs.mkdirSync(d);
    } else if (st.isSymbolicLink()) {
      fs.unlinkSync(d);
      if (exists(saved)) fs.renameSync(saved, d); else fs.mkdirSync(d);
    } else {
      if (exists(saved)) fs.rmSync(saved, { recursive: true, force: true });
      fs.renameSync(d, saved);
      fs.symlinkSync(target, d);
    }
    flips++;
  } catch (e) { errors++; }
  // hold each state ~1 ms so a push can get past its destination check and race the writes
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.env.FLIP_HOLD_MS));
}
process.stdout.write(JSON.stringify({ flips, errors }));
`;

function runRsync(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('rsync', args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('latin1')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const haveRsync = spawnSync('rsync', ['--version']).status === 0;

t.test('a directory flipped to an outside symlink while real pushes run', haveRsync ? {} : { skip: 'no rsync binary' }, async (t) => {
  const a = arena('hostile-race-');
  try {
    // The source tree uses the outside dir's names, so any write through the link would show.
    const src = join(a.top, 'src');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'secret'), 'PWNED secret\n');
    writeFileSync(join(src, 'x'), 'PWNED x\n');
    writeFileSync(join(src, 'sub', 'f'), 'PWNED sub/f\n');
    writeFileSync(join(src, 'new-file'), 'PWNED new\n');
    for (let i = 0; i < 20; i++) writeFileSync(join(src, `n${i}`), `PWNED ${i}\n`.repeat(i * 50));
    utimesSync(join(src, 'secret'), 1234567, 1234567);
    mkdirSync(join(a.root, 'd'));

    const flipper = spawn(process.execPath, ['-e', FLIPPER], {
      env: { ...process.env, FLIP_D: join(a.root, 'd'), FLIP_SAVED: join(a.root, '.d-saved'), FLIP_TARGET: a.outside, FLIP_STOP: join(a.top, 'stop-flipping'), FLIP_HOLD_MS: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let flipOut = '';
    flipper.stdout!.on('data', (b: Buffer) => (flipOut += b.toString()));
    const flipperDone = new Promise<void>((r) => flipper.on('close', () => r()));

    // noLock: the push and pull loops below run concurrently on the same root
    const env = { ...process.env, RRSYNCD_TEST_ROOT: a.root, RRSYNCD_TEST_GRANT: JSON.stringify({ noLock: true }) };
    const results: Array<{ code: number | null; stderr: string }> = [];
    const pulls: Array<{ code: number | null; stderr: string }> = [];
    // RACE_MS of flips, and at least two pushes and two pulls while they happen
    const stop = Date.now() + RACE_MS;
    const pushLoop = (async () => {
      for (let i = 0; Date.now() < stop || i < 2; i++) {
        const dest = i % 2 ? 'x:d/sub2/' : 'x:d/';
        results.push(await runRsync(['-a', ...(i % 2 ? [] : ['--delete']), '-e', RSH, `${src}/`, dest], env));
      }
    })();
    // Meanwhile pulls of the same flipping directory must never return outside content.
    const pulled = join(a.top, 'pulled');
    mkdirSync(pulled);
    const pullLoop = (async () => {
      for (let i = 0; Date.now() < stop || i < 2; i++) {
        pulls.push(await runRsync(['-a', '-e', RSH, 'x:d/', `${pulled}/${i}/`], env));
      }
    })();
    await Promise.all([pushLoop, pullLoop]);
    writeFileSync(join(a.top, 'stop-flipping'), '');
    await flipperDone;
    await sleep(50);
    const { flips, errors } = JSON.parse(flipOut || '{"flips":0,"errors":0}') as { flips: number; errors: number };
    t.comment(`${results.length} pushes, ${flips} flips (${errors} flip errors), exit codes ${[...new Set(results.map((r) => r.code))].join(',')}`);
    t.ok(flips > 1000, `the flipper really flipped (${flips} times)`);
    t.ok(results.length >= 2, 'pushes ran during the flips');
    t.same(a.outsideChanges(), [], 'the outside directory is unchanged: same entries, content and mtimes');
    t.comment(`${pulls.length} concurrent pulls, exit codes ${[...new Set(pulls.map((r) => r.code))].join(',')}`);
    if (process.env.HOSTILE_VERBOSE) for (const r of [...results, ...pulls]) t.comment(`${r.code}: ${r.stderr.trim().split('\n').slice(0, 4).join(' | ')}`);
    const leaked = [...snapshotTreeSync(pulled).entries].filter(([, e]) => e.type === 'file').filter(([p]) => /TOP-SECRET|outside/.test(readFileSync(join(pulled, p), 'latin1')));
    t.same(leaked.map(([p]) => p), [], 'no pull returned outside content');
    for (const r of pulls) {
      if (![0, 3, 11, 12, 23, 24].includes(r.code ?? -1) || /\n\s+at .+:\d+:\d+\)?\n/.test(r.stderr)) {
        t.fail('a pull ended badly', { code: r.code, stderr: r.stderr.slice(0, 1500) });
      }
    }
    for (const r of results) {
      // 0: the push saw a directory; 23/3/12: it saw a symlink (refused cleanly) or the dir vanished mid-run
      if (![0, 3, 11, 12, 23, 24].includes(r.code ?? -1) || /\n\s+at .+:\d+:\d+\)?\n/.test(r.stderr)) {
        t.fail('a push ended badly', { code: r.code, stderr: r.stderr.slice(0, 1500) });
      }
    }
  } finally {
    a.cleanup();
  }
});
