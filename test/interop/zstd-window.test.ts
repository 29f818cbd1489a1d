/**
 * The zstd decoder's window against the session memory budget, with the stock client through the
 * pipe harness: at --compress-level=22 rsync's compressor declares a 128 MiB window (the decoder's
 * limit), which the default budget holds, so such pushes work at every protocol and level; under
 * a 64 MiB budget the same push ends with exit 22 (at protocol 31+) and "session memory budget exceeded" before
 * the decoder reserves the window, leaving no file or temp file behind.
 */
import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, RSYNC, REPO_ROOT } from '../helpers/server.js';
import { compareTrees, snapshotTree } from '../helpers/tree.js';

const RSH = join(REPO_ROOT, 'test', 'pipe', 'rsh.sh');

function push(root: string, memoryBytes: number | undefined, args: string[]) {
  const grant = { noLock: true, limits: { allowDevices: false, allowChown: false, memoryBytes } };
  return run(RSYNC, ['-e', RSH, '-a', '-z', '--compress-choice=zstd', ...args, `${src}/`, 'x:dst/'], {
    env: { RRSYNCD_TEST_ROOT: root, RRSYNCD_TEST_GRANT: JSON.stringify(grant), NODE_OPTIONS: '' },
    timeoutMs: 240_000,
  });
}

const dir = mkdtempSync(join(tmpdir(), 'zstd-window-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const src = join(dir, 'src');
mkdirSync(src);
let seed = 1;
const noise = Buffer.alloc(300_000);
for (let i = 0; i < noise.length; i++) noise[i] = 97 + ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 27);
writeFileSync(join(src, 'text'), noise);
writeFileSync(join(src, 'lines'), Array.from({ length: 50_000 }, (_, i) => `${i}\n`).join(''));

t.test('stock pushes at any level work under the default budget', async (t) => {
  const cases: Array<[number, number]> = [[22, 29], [22, 30], [22, 31], [22, 32], [19, 32], [1, 32], [-5, 32]];
  for (const [level, protocol] of cases) {
    const root = join(dir, `ok-${level}-${protocol}`);
    mkdirSync(root);
    const r = await push(root, undefined, [`--compress-level=${level}`, `--protocol=${protocol}`]);
    t.equal(r.code, 0, `level ${level}, protocol ${protocol}: exit 0 (${r.stderr.trim()})`);
    const diffs = compareTrees(await snapshotTree(src), await snapshotTree(join(root, 'dst')), { ignoreRoot: true, mtimeSecondsOnly: protocol < 31 });
    t.same(diffs, [], `level ${level}, protocol ${protocol}: trees equal`);
  }
});

t.test('a window above the budget ends the push with exit 22 and leaves nothing', async (t) => {
  for (const protocol of [29, 32]) {
    const root = join(dir, `small-${protocol}`);
    mkdirSync(root);
    const r = await push(root, 64 * 1024 * 1024, ['--compress-level=22', `--protocol=${protocol}`]);
    // Below 31 there is no MSG_ERROR_EXIT: the sending client may see the connection end first (12).
    t.ok(r.code === 22 || (protocol < 31 && r.code === 12), `protocol ${protocol}: exit ${r.code}, 22 (RERR_MALLOC)${protocol < 31 ? ' or 12' : ''}`);
    t.match(r.stderr, /rrsyncd: session memory budget exceeded: the zstd decompression window needs 128\.3 MiB more/);
    t.notMatch(r.stderr, new RegExp(root), 'no server path shown');
    const left = readdirSync(join(root, 'dst'));
    t.same(left, [], `protocol ${protocol}: no file or temp file left (${left.join(' ')})`);
    const level3 = await push(root, 64 * 1024 * 1024, ['--compress-level=3', `--protocol=${protocol}`]);
    t.equal(level3.code, 0, `protocol ${protocol}: the default level (a 2 MiB window here) fits the same budget`);
  }
});
