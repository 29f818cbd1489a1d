// Flat memory for a pull with incremental recursion: the server (test/pipe/server.ts, one node
// process per run) pulls a tree of 100,000 tiny files and one of 10,000 (same shape: directories
// of 100 files) from tmpfs. We record the server process's peak RSS (VmHWM) and, from its debug
// log, how many file-list entries it held at once. With lazily built, freed sub-lists the entries
// held stay bounded by the look-ahead however big the tree is, and the peak RSS hardly moves.
// Set RRSYNCD_MEMTEST=0 to skip (it takes ~30 s and ~40 MB of /dev/shm).
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { run, RSYNC } from '../helpers/server.js';
import { PIPE_RSH } from './lib/interop.js';

const SHM = '/dev/shm';
const skip = process.env.RRSYNCD_MEMTEST === '0' ? 'RRSYNCD_MEMTEST=0' : !existsSync(SHM) ? 'no /dev/shm' : false;

const FILES_PER_DIR = 100;

async function makeTree(root: string, dirs: number): Promise<void> {
  for (let d = 0; d < dirs; d++) {
    const p = join(root, `d${String(d).padStart(4, '0')}`);
    await mkdir(p, { recursive: true });
    await Promise.all(Array.from({ length: FILES_PER_DIR }, (_, f) => writeFile(join(p, `f${f}`), 'x')));
  }
}

/** A remote shell that runs the pipe engine and writes its peak RSS (kB) to $HWM_OUT. */
const HWM_RSH = `#!/bin/bash
"$(dirname "${PIPE_RSH}")/rsh.sh" "$@" <&0 &
pid=$!
hwm=0
while kill -0 $pid 2>/dev/null; do
  for c in $(pgrep -P $pid) $pid; do
    v=$(awk '/VmHWM/{print $2}' /proc/$c/status 2>/dev/null)
    [ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
  done
  sleep 0.05
done
wait $pid; rc=$?
echo $hwm > "$HWM_OUT"
exit $rc
`;

interface Measure {
  hwmKb: number;
  maxActive: number;
  maxLists: number;
  samples: number;
  files: number;
}

t.test('peak RSS and list entries held stay flat from 10k to 100k files', { skip }, async (t) => {
  const base = await mkdtemp(join(SHM, 'rrsyncd-mem-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const rsh = join(base, 'hwm-rsh.sh');
  await writeFile(rsh, HWM_RSH);
  await chmod(rsh, 0o755);

  const measure = async (name: string, dirs: number, extra: string[] = []): Promise<Measure> => {
    const root = join(base, name);
    await makeTree(join(root, 'src'), dirs);
    const dst = join(base, `${name}-dst`);
    const hwm = join(base, `${name}.hwm`);
    const log = join(base, `${name}.log`);
    const r = await run(RSYNC, ['-a', ...extra, '-e', rsh, 'x:src/', `${dst}/`], {
      env: { RRSYNCD_TEST_ROOT: root, RRSYNCD_TEST_LOG: log, HWM_OUT: hwm },
      timeoutMs: 300_000,
    });
    t.equal(r.code, 0, `${name}: pull succeeded`, { stderr: r.stderr.slice(-2000) });
    const files = Number((await run('sh', ['-c', `find '${dst}' -type f | wc -l`])).stdout.trim());
    let maxActive = 0;
    let maxLists = 0;
    let samples = 0;
    for (const line of (await readFile(log, 'utf8')).split('\n')) {
      if (!line.includes('"sender memory"')) continue;
      const j = JSON.parse(line) as { activeFiles: number; lists: number };
      maxActive = Math.max(maxActive, j.activeFiles);
      maxLists = Math.max(maxLists, j.lists);
      samples++;
    }
    const m = { hwmKb: Number((await readFile(hwm, 'utf8')).trim()), maxActive, maxLists, samples, files };
    await rm(root, { recursive: true, force: true });
    await rm(dst, { recursive: true, force: true });
    return m;
  };

  const small = await measure('10k', 100);
  const big = await measure('100k', 1000);
  t.comment(`10k files:  peak RSS ${(small.hwmKb / 1024).toFixed(1)} MiB, max entries held ${small.maxActive} in ${small.maxLists} lists`);
  t.comment(`100k files: peak RSS ${(big.hwmKb / 1024).toFixed(1)} MiB, max entries held ${big.maxActive} in ${big.maxLists} lists`);
  t.equal(small.files, 10_000, 'all 10k files arrived');
  t.equal(big.files, 100_000, 'all 100k files arrived');
  t.ok(big.samples > 0, 'the sender logged its memory');
  // Look-ahead: at most MAX_FILECNT_LOOKAHEAD (2,500) plus one directory's list beyond it.
  t.ok(big.maxActive <= 2_500 + FILES_PER_DIR + 1, `entries held at once stay bounded (${big.maxActive})`);
  t.ok(big.hwmKb > 0 && small.hwmKb > 0, 'peak RSS measured');
  // A list of all 100k entries alone would add ~60-90 MiB; allow GC slack, not that.
  t.ok(big.hwmKb - small.hwmKb < 45 * 1024, `peak RSS 100k - 10k = ${((big.hwmKb - small.hwmKb) / 1024).toFixed(1)} MiB (< 45 MiB)`);
});
