// Push receiver options, part 1: --partial, --partial-dir (relative/absolute, resume with the
// partial file as basis, CF_INPLACE_PARTIAL_DIR), interrupted transfers, --delay-updates, --temp-dir.
// Each case runs the real client against rrsyncd and against a stock rsync server (the reference).
import t from 'tap';
import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { engineTransport, newCase, file, dir, noise, text, stats, statNum, type Transport, type Node } from './lib/interop.js';
import { compareRun as runAndCompare, exists, interrupted, modeOf, names, sizeOf, waitFor } from './push-opts.helpers.js';

let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const BIG = noise(600_000, 21);
const OLD = { sec: 1_500_000_000, nsec: 123_000 };
const srcTree = (): Node[] => [file('big.bin', BIG), file('a.txt', 'a\n'), file('sub/s.txt', text(20))];

for (const p of [29, 32]) {
  t.test(`--partial-dir=.pd resumes from the partial file (--protocol=${p})`, async (t) => {
    const c = await newCase(t, tr, 'push', srcTree());
    // an interrupted earlier run left the first half in the partial dir; the file itself is absent
    await c.seedDst([dir('.pd', { mode: 0o700 }), file('.pd/big.bin', BIG.subarray(0, 300_000), { mode: 0o600 }), file('a.txt', 'a\n')]);
    const r = await runAndCompare(t, c, ['-a', '-i', '--stats', '--partial-dir=.pd', `--protocol=${p}`]);
    const s = stats(r.remote.stdout);
    t.ok(statNum(s, 'Matched data') >= 290_000, 'the partial file was the basis', s);
    t.equal(statNum(s, 'Matched data'), statNum(stats(r.local.stdout), 'Matched data'), 'matched data as the reference');
    t.notOk(await exists(c.remoteDst('dst/.pd')), 'the emptied partial dir is removed');
  });
}

t.test('--partial-dir: an existing (older) file and a partial file: the partial file is the basis', async (t) => {
  const c = await newCase(t, tr, 'push', srcTree());
  const older = Buffer.from(BIG);
  older.write('an older version', 100);
  await c.seedDst([file('big.bin', older, { mtime: OLD }), dir('.pd'), file('.pd/big.bin', BIG.subarray(0, 500_000))]);
  const r = await runAndCompare(t, c, ['-a', '-i', '--stats', '--partial-dir=.pd']);
  t.equal(statNum(stats(r.remote.stdout), 'Matched data'), statNum(stats(r.local.stdout), 'Matched data'), 'matched data as the reference');
});

t.test('--partial-dir: a stale partial file of an up-to-date file is removed', async (t) => {
  const c = await newCase(t, tr, 'push', [file('big.bin', BIG, { mtime: OLD }), file('a.txt', 'a\n', { mtime: OLD })]);
  await c.seedDst([file('big.bin', BIG, { mtime: OLD }), file('a.txt', 'a\n', { mtime: OLD }), dir('.pd'), file('.pd/big.bin', 'stale')]);
  await runAndCompare(t, c, ['-a', '-i', '--partial-dir=.pd']);
  t.notOk(await exists(c.remoteDst('dst/.pd/big.bin')), 'stale partial file removed');
});

t.test('--partial-dir=/abs (root-relative, flat): used as basis, kept as a directory', async (t) => {
  const c = await newCase(t, tr, 'push', srcTree());
  await c.seedDst([file('big.bin', BIG.subarray(0, 200_000))], 'pd');
  const r = await runAndCompare(t, c, ['-a', '-i', '--stats'], {
    remoteOnly: ['--partial-dir=/pd'],
    localOnly: [`--partial-dir=${c.localDst('pd')}`],
  });
  t.ok(statNum(stats(r.remote.stdout), 'Matched data') >= 190_000, 'absolute partial dir basis used');
  await c.compare(t, { ignoreDirMtimes: true }, 'pd');
  t.same(await names(c.remoteDst('pd')), [], 'partial file consumed');
});

t.test('--partial-dir outside the root is refused', async (t) => {
  const c = await newCase(t, tr, 'push', srcTree());
  const r = await c.runRemote(['-a', '--partial-dir=../x']);
  t.not(r.code, 0, 'refused');
  t.match(r.stderr, /outside the allowed directory/);
});

// ---- interrupted transfers (the client is killed while a bandwidth-limited file is in flight) ----

const SLOW = noise(3_000_000, 5);
const slowTree = (): Node[] => [file('a.txt', 'a\n'), file('z-slow.bin', SLOW)];
const SLOW_ARGS = ['-a', '--bwlimit=400'];
const KILL_MS = 3000;

t.test('interrupted with --partial-dir=.pd: partial data kept in a 0700 dir, then a resume uses it', async (t) => {
  const c = await newCase(t, tr, 'push', slowTree());
  await interrupted(c, [...SLOW_ARGS, '--partial-dir=.pd'], KILL_MS);
  const part = c.remoteDst('dst/.pd/z-slow.bin');
  t.ok(await waitFor(() => exists(part)), 'partial file kept in the partial dir');
  t.ok(await exists(c.localDst('dst/.pd/z-slow.bin')), '(the reference kept one too)');
  const size = await sizeOf(part);
  t.ok(size > 0 && size < SLOW.length, `partial size ${size} is between 0 and ${SLOW.length}`);
  t.equal(await modeOf(c.remoteDst('dst/.pd')), 0o700, 'partial dir created 0700');
  t.notOk(await exists(c.remoteDst('dst/z-slow.bin')), 'no file under the final name');
  t.same((await names(c.remoteDst('dst'))).filter((n) => n.startsWith('.z-slow')), [], 'no temp file left');
  const r = await c.run(['-a', '--stats', '--partial-dir=.pd'], { keepSources: true });
  c.sameExit(t, r, 0);
  await c.compare(t);
  t.ok(statNum(stats(r.remote.stdout), 'Matched data') >= Math.min(size, 100_000) - 20_000, 'resume matched the partial data', stats(r.remote.stdout));
});

t.test('interrupted with --partial: the partial file takes the final name with mtime 0', async (t) => {
  const c = await newCase(t, tr, 'push', slowTree());
  await interrupted(c, [...SLOW_ARGS, '--partial'], KILL_MS);
  const part = c.remoteDst('dst/z-slow.bin');
  t.ok(await waitFor(() => exists(part)), 'partial file kept under its name');
  t.ok(await exists(c.localDst('dst/z-slow.bin')), '(the reference kept it too)');
  const st = await lstat(part);
  t.ok(st.size > 0 && st.size < SLOW.length, `partial size ${st.size}`);
  const ref = await lstat(c.localDst('dst/z-slow.bin'));
  t.equal(Math.floor(st.mtimeMs / 1000), 0, 'mtime seconds set to 0 (not mistaken for a complete file)');
  t.equal(Math.floor(ref.mtimeMs / 1000), 0, '(the reference does it too)');
  t.equal(st.mtimeMs, ref.mtimeMs, 'the nanoseconds stay, as in the reference');
  const r = await c.run(['-a', '--partial'], { keepSources: true });
  c.sameExit(t, r, 0);
  await c.compare(t);
});

t.test('interrupted without --partial: nothing of the file remains', async (t) => {
  const c = await newCase(t, tr, 'push', slowTree());
  await interrupted(c, SLOW_ARGS, KILL_MS);
  t.ok(await waitFor(async () => (await names(c.remoteDst('dst'))).every((n) => !n.includes('z-slow'))), 'no partial or temp file');
  t.same((await names(c.localDst('dst'))).filter((n) => n.includes('z-slow')), [], '(nor in the reference)');
});

t.test('interrupted with --delay-updates: the partial data waits in .~tmp~', async (t) => {
  const c = await newCase(t, tr, 'push', slowTree());
  await interrupted(c, [...SLOW_ARGS, '--delay-updates'], KILL_MS);
  t.ok(await waitFor(() => exists(c.remoteDst('dst/.~tmp~/z-slow.bin'))), 'partial data in .~tmp~');
  t.ok(await exists(c.localDst('dst/.~tmp~/z-slow.bin')), '(the reference too)');
  t.notOk(await exists(c.remoteDst('dst/z-slow.bin')), 'not under the final name');
});

// ---- --delay-updates and --temp-dir ----

const changingTree = (): Node[] => [
  file('a.txt', 'a new\n'),
  file('big.bin', BIG),
  file('d/x.txt', text(30, 'x')),
  file('d/e/y.txt', 'y\n'),
];
const changingDst = (): Node[] => [
  file('a.txt', 'a old\n', { mtime: OLD }),
  file('big.bin', Buffer.concat([BIG.subarray(0, 400_000), Buffer.from('tail differs')]), { mtime: OLD }),
  file('d/x.txt', 'x\n', { mtime: OLD }),
  file('extra', 'extra\n'),
];

for (const extra of [[], ['--protocol=28'], ['--protocol=30'], ['-H'], ['--delete'], ['-v']]) {
  t.test(`--delay-updates ${extra.join(' ')}`, async (t) => {
    const c = await newCase(t, tr, 'push', changingTree());
    await c.seedDst(changingDst());
    await runAndCompare(t, c, ['-a', '-i', '--delay-updates', ...extra]);
    t.notOk(await exists(c.remoteDst('dst/.~tmp~')), '.~tmp~ removed');
    t.notOk(await exists(c.remoteDst('dst/d/.~tmp~')), 'd/.~tmp~ removed');
  });
}

// An earlier partial file in .~tmp~ is the basis; from protocol 30 (CF_INPLACE_PARTIAL_DIR) it is
// updated in place, so the delayed rename has nothing to move.
for (const p of [29, 31, 32]) {
  t.test(`--delay-updates over an existing .~tmp~/NAME (--protocol=${p})`, async (t) => {
    const c = await newCase(t, tr, 'push', changingTree());
    await c.seedDst([...changingDst(), dir('.~tmp~'), file('.~tmp~/big.bin', BIG.subarray(0, 300_000)), file('.~tmp~/a.txt', 'old partial\n')]);
    const r = await runAndCompare(t, c, ['-a', '-i', '--stats', '--delay-updates', `--protocol=${p}`]);
    t.equal(statNum(stats(r.remote.stdout), 'Matched data'), statNum(stats(r.local.stdout), 'Matched data'), 'matched data as the reference');
    t.notOk(await exists(c.remoteDst('dst/.~tmp~')), '.~tmp~ removed');
  });
}

t.test('--delay-updates with hard links: the links follow the delayed file', async (t) => {
  const c = await newCase(t, tr, 'push', [file('h/one', 'linked\n'), { path: 'h/two', type: 'hardlink', target: 'h/one' }, file('z', 'z\n')]);
  await runAndCompare(t, c, ['-a', '-H', '-i', '--delay-updates']);
  const a = await lstat(c.remoteDst('dst/h/one'));
  const b = await lstat(c.remoteDst('dst/h/two'));
  t.equal(a.ino, b.ino, 'hard-linked');
});

for (const [name, remote, local] of [
  ['relative (inside the destination)', ['--temp-dir=tmp'], ['--temp-dir=tmp']],
  ['absolute (root-relative)', ['--temp-dir=/tmpd'], null],
] as Array<[string, string[], string[] | null]>) {
  t.test(`--temp-dir ${name}`, async (t) => {
    const c = await newCase(t, tr, 'push', changingTree());
    await c.seedDst([...changingDst(), dir('tmp')]);
    await mkdir(c.remoteDst('tmpd'), { recursive: true });
    await mkdir(c.localDst('tmpd'), { recursive: true });
    await runAndCompare(t, c, ['-a', '-i'], { remoteOnly: remote, localOnly: local ?? [`--temp-dir=${c.localDst('tmpd')}`], compare: { ignoreDirMtimes: true } });
    t.same(await names(c.remoteDst('dst/tmp')), [], 'temp dir left empty');
    t.same(await names(c.remoteDst('tmpd')), [], 'absolute temp dir left empty');
  });
}

t.test('--temp-dir that does not exist: error as the reference', async (t) => {
  const c = await newCase(t, tr, 'push', changingTree());
  const r = await c.run(['-a', '--temp-dir=nope']);
  t.not(r.remote.code, 0, 'fails');
  t.not(r.local.code, 0, '(the reference fails too)');
  void join;
});
