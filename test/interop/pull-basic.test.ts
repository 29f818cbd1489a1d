// Pull interop, basic matrix (see lib/cases-basic.ts): rsync <args> -e <engine> x:src/ dst/,
// compared with the same command against a stock rsync server (lib/interop.ts); plus the
// pull-only cases: --list-only output and --remove-source-files.
import t from 'tap';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { engineTransport, newCase, runAndCompare, listing, standardTree, oddNamesTree, file, noise, SLOW_RSH, type Transport } from './lib/interop.js';
import { basicCases, hardLinkTree, inDir } from './lib/cases-basic.js';

// Two cases at a time: each case mostly waits on rsync processes, and tap runs files one at a time
// on a 2-CPU machine.
t.jobs = 2;
let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});
basicCases(t, 'pull', () => tr);

for (const args of [[], ['-a'], ['-a', '--protocol=29'], ['-r', '--protocol=27'], ['-aH', '--protocol=31']]) {
  t.test(`--list-only: rsync ${args.join(' ')} x:src/ (no destination) lists like a stock server`, async (t) => {
    const c = await newCase(t, tr, 'pull', [...standardTree(), ...inDir('odd', oddNamesTree()), ...hardLinkTree().map((n) => ({ ...n, path: `hl/${n.path}`, target: n.type === 'hardlink' ? `hl/${n.target}` : n.target }))]);
    const r = await c.run(args, { dst: null });
    c.sameExit(t, r, 0);
    const got = listing(r.remote.stdout);
    const want = listing(r.local.stdout);
    t.ok(want.length > 5, `the reference listed entries (${want.length})`);
    t.same(got, want, 'listing lines (perms, size, date, name) match', c.describe(r));
    // the raw lines too: same columns, same order
    t.same(r.remote.stdout.split('\n').filter((l) => l !== ''), r.local.stdout.split('\n').filter((l) => l !== ''), 'raw listing output matches');
  });
}

t.test('--list-only of a single file and of a missing path', async (t) => {
  const c = await newCase(t, tr, 'pull');
  const r = await c.run(['-a'], { srcs: ['src/a.txt'], dst: null });
  c.sameExit(t, r, 0);
  t.same(listing(r.remote.stdout), listing(r.local.stdout), 'single file listing', c.describe(r));
  const m = await c.run(['-a'], { srcs: ['src/nope'], dst: null });
  c.sameExit(t, m, 23);
});

for (const p of [29, 32]) {
  t.test(`--remove-source-files removes what was sent --protocol=${p}`, async (t) => {
    const c = await newCase(t, tr, 'pull', [...standardTree(), file('unchanged.txt', 'same\n', { mtime: { sec: 1_500_000_000 } })]);
    await c.seedDst([file('unchanged.txt', 'same\n', { mtime: { sec: 1_500_000_000 } })]);
    const r = await runAndCompare(t, c, ['-a', '-i', '--remove-source-files', `--protocol=${p}`], { expectCode: 0 });
    // files were removed from the source dirs, so their mtimes are "now" on both sides
    await c.compareSources(t, { ignoreDirMtimes: true });
    t.ok(r.remote.stdout.includes('a.txt'));
  });
}

t.test('--remove-source-files is refused by a no-delete grant', async (t) => {
  const c = await newCase(t, tr, 'pull');
  const r = await c.runRemote(['-a', '--remove-source-files'], { grant: { noDelete: true } });
  t.not(r.code, 0, 'refused');
  await c.compareDirs(t, c.src, c.remoteSrc, {}, 'source untouched');
});

t.test('a file that vanishes during the pull: exit 24 and "file has vanished", like a stock server', async (t) => {
  const c = await newCase(t, tr, 'pull', [file('a-big.bin', noise(2_500_000, 5)), file('b-vanishes.txt', 'b\n'), file('c.txt', 'c\n')]);
  // The server->client stream is slowed to ~1 MB/s: b-vanishes.txt is in the file list but is only
  // opened after a-big.bin's data went out; delete it as soon as a-big.bin's temp file shows up.
  const vanishDuring = async (srcDir: string, dstDir: string, run: Promise<unknown>) => {
    let done = false;
    void run.finally(() => (done = true));
    while (!done) {
      const names = await readdir(dstDir).catch(() => [] as string[]);
      if (names.some((n) => n.startsWith('.a-big.bin.'))) {
        await rm(join(srcDir, 'b-vanishes.txt'));
        return true;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  };
  const args = ['-a', '-i'];
  await c.syncSources();
  const remote = c.runRemote(args, { keepSources: true, rshWrap: [SLOW_RSH] });
  t.ok(await vanishDuring(c.remoteSrc, c.remoteDst(), remote), 'deleted b-vanishes.txt during our run');
  const ref = c.runLocal(args, { keepSources: true, rshWrap: [SLOW_RSH] });
  t.ok(await vanishDuring(c.localSrc, c.localDst(), ref), 'deleted b-vanishes.txt during the reference run');
  const r = { remote: await remote, local: await ref, remoteArgs: (await remote).args, localArgs: (await ref).args };
  c.sameExit(t, r, 24);
  c.sameItemize(t, r);
  c.sameMessages(t, r);
  t.match(r.remote.stderr, /file has vanished: .*b-vanishes\.txt/, 'vanished warning');
  await c.compare(t);
});
