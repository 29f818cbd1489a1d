/**
 * Option, filter and deletion cases, shared by push-options/pull-options and push-delete: each
 * runs against an existing destination (the "scenario") and compares the outcome (tree, itemized
 * changes, exit code, selected --stats lines) with the same command against a stock rsync server.
 */
import type { Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  newCase,
  runAndCompare,
  standardTree,
  file,
  dir,
  slink,
  noise,
  text,
  stats,
  statNum,
  pickStats,
  REF_DELTA,
  type Case,
  type Direction,
  type Transport,
  type Node,
  type Mtime,
  type TreeCompareOpts,
} from './interop.js';

const M_SAME: Mtime = { sec: 1_550_000_000, nsec: 111_222_333 };
const M_OLD: Mtime = { sec: 1_400_000_000, nsec: 5_000 };
const M_NEWER: Mtime = { sec: 1_700_000_000, nsec: 7_000 };
const BIG = noise(300_000, 11);
const bigEdited = (): Buffer => {
  const b = Buffer.from(BIG);
  b.write('dst-side edit', 1000);
  b.write('another edit', 250_000);
  return b;
};

/** Source side of the scenario. */
const scenarioSrc = (): Node[] => [
  file('same.txt', 'same\n', { mtime: M_SAME }),
  file('changed.txt', 'new content\n'),
  file('dst-newer.txt', 'src version\n', { mtime: { sec: 1_500_000_000 } }),
  file('same-size.txt', 'AAAA\n', { mtime: M_SAME }),
  file('new.txt', 'new\n'),
  file('newdir/n.txt', 'n\n'),
  file('big.bin', BIG),
  file('grow.log', text(200, 'log')),
  file('mode.sh', '#!/bin/sh\n', { mode: 0o755, mtime: M_SAME }),
  slink('link', 'same.txt'),
];

/** Destination side of the scenario (seeded identically for our run and the reference run). */
const scenarioDst = (): Node[] => [
  file('same.txt', 'same\n', { mtime: M_SAME }),
  file('changed.txt', 'old\n', { mtime: M_OLD }),
  file('dst-newer.txt', 'dst version, newer\n', { mtime: M_NEWER }),
  file('same-size.txt', 'BBBB\n', { mtime: M_SAME }),
  file('big.bin', bigEdited(), { mtime: M_OLD }),
  file('grow.log', text(150, 'log'), { mtime: M_OLD }),
  file('mode.sh', '#!/bin/sh\n', { mode: 0o644, mtime: M_SAME }),
  file('extra.txt', 'extra\n'),
  file('extradir/x', 'x\n'),
  slink('link', 'other-target'),
];

async function scenario(t: Test, tr: Transport, D: Direction): Promise<Case> {
  const c = await newCase(t, tr, D, scenarioSrc());
  await c.seedDst(scenarioDst());
  return c;
}

/** A file in the case dir and its copy in the reference's cwd (for --files-from, --exclude-from). */
async function sideFile(c: Case, name: string, data: string | Buffer): Promise<void> {
  await writeFile(join(c.dir, name), data);
  await writeFile(join(c.localBase, name), data);
}

export function optionCases(t: Test, D: Direction, getTransport: () => Transport): void {
  // [name, args, tree comparison options (times that are "now" on both sides are not compared)]
  const OPTION_SETS: Array<[string, string[], TreeCompareOpts?]> = [
    ['-a against an existing destination', []],
    ['--existing', ['--existing']],
    ['--ignore-existing', ['--ignore-existing']],
    ['--update', ['--update']],
    ['--size-only', ['--size-only']],
    ['-I (--ignore-times)', ['-I']],
    ['--checksum', ['--checksum']],
    ['-W (whole file)', ['-W']],
    ['--append', ['--append']],
    ['--append-verify', ['--append-verify']],
    ['--backup', ['--backup']],
    ['--backup --backup-dir=bak --suffix=.old', ['--backup', '--backup-dir=bak', '--suffix=.old']],
    ['--delay-updates', ['--delay-updates']],
    ['--inplace --no-W', ['--inplace']],
    ['--chmod=D750,F640', ['--chmod=D750,F640']],
    ['--chmod=u+x,g-r --executability', ['--chmod=u+x,g-r', '--executability']],
    ['-O (omit dir times) -J (omit link times)', ['-O', '-J'], { ignoreDirMtimes: true, ignoreSymlinkMtimes: true }],
    ['--min-size=10 --max-size=100K', ['--min-size=10', '--max-size=100K']],
    ['--modify-window=2 --numeric-ids', ['--modify-window=2', '--numeric-ids']],
    ['--no-perms --no-times', ['--no-p', '--no-t'], { ignoreMtimes: true }],
    ['-c --protocol=29', ['-c', '--protocol=29']],
    ['--update --protocol=27', ['--update', '--protocol=27']],
  ];
  for (const [name, args, cmp] of OPTION_SETS) {
    t.test(`${name}`, async (t) => {
      const c = await scenario(t, getTransport(), D);
      // backups land in the dirs after their times were set: those times are "now" on both sides
      const compare = { ...(args.includes('--backup') ? { ignoreDirMtimes: true } : {}), ...cmp };
      const r = await runAndCompare(t, c, ['-a', '-i', '--stats', ...args], { localOnly: REF_DELTA, compare });
      const s = stats(r.remote.stdout);
      const ls = stats(r.local.stdout);
      t.same(pickStats(s), pickStats(ls), 'stats match the reference');
      if (!REF_DELTA.length) {
        t.equal(statNum(s, 'Literal data'), statNum(ls, 'Literal data'), 'Literal data matches the reference', { remote: s, reference: ls });
        t.equal(statNum(s, 'Matched data'), statNum(ls, 'Matched data'), 'Matched data matches the reference');
      }
      if (args.includes('-W')) t.equal(statNum(s, 'Matched data'), 0, '-W: no matched data');
    });
  }

  t.test('--files-from (and --from0) with -R implied by it', async (t) => {
    const c = await newCase(t, getTransport(), D, [...standardTree(), file('x/y/z.txt', 'z\n'), file('x/other.txt', 'o\n')]);
    await sideFile(c, 'list', 'a.txt\nd1/b.txt\nx/y/z.txt\nsub dir/with space.txt\nemptydir\n');
    // "." is not in the list: the destination dir just gets created
    const compare = { ignoreRootMtime: true };
    await runAndCompare(t, c, ['-a', '-i', '--files-from=list'], { compare });
    await sideFile(c, 'list0', 'd1/d2/d3/deep.txt\0x/other.txt\0');
    await runAndCompare(t, c, ['-a', '-i', '--from0', '--files-from=list0'], { dst: 'dst0/', compare });
    await runAndCompare(t, c, ['-a', '-i', '-r', '--no-R', '--files-from=list'], { dst: 'dst1/', compare });
  });

  // Options that follow symlinks are refused below a grant root of "/" (src/policy/restrict.ts)
  // whenever the client forwards them to our side: then we expect exit 1 and that message.
  const refusedHere = (args: string[]): string | undefined => {
    const forwarded = D === 'push' ? { '--copy-unsafe-links': 'copy-unsafe-links', '-K': 'keep-dirlinks' } : { '-L': 'copy-links', '--copy-unsafe-links': 'copy-unsafe-links', '-k': 'copy-dirlinks' };
    for (const a of args) if (a in forwarded) return forwarded[a as keyof typeof forwarded];
    return undefined;
  };
  const runOrRefused = async (t: Test, c: Case, args: string[], dst: string, compare: TreeCompareOpts = {}) => {
    const refused = refusedHere(args);
    if (!refused) return runAndCompare(t, c, ['-a', '-i', ...args], { dst: `${dst}/`, compare });
    const r = await c.runRemote(['-a', '-i', ...args], { dst: `${dst}/` });
    // the server exits 1; the client, cut off before the protocol started, reports 12
    t.not(r.code, 0, `${args.join(' ')}: refused`, { stderr: r.stderr });
    t.match(r.stderr, new RegExp(`option --${refused} is not allowed here`), `${args.join(' ')}: refusal message`);
    return undefined;
  };

  t.test('symlink options: -L, --copy-unsafe-links, --safe-links, -k, --no-l, -K', async (t) => {
    const safe: Node[] = [
      file('real.txt', 'real\n'),
      file('realdir/inner.txt', 'inner\n'),
      slink('in-link', 'real.txt'),
      slink('dir-link', 'realdir'),
      slink('sub/up-in', '../real.txt'),
      slink('dangling', 'nothing-here'),
    ];
    const c = await newCase(t, getTransport(), D, safe);
    for (const [i, args] of [['-L'], ['--copy-unsafe-links'], ['--safe-links'], ['-k'], ['--no-l'], ['-r', '--links']].entries()) {
      await runOrRefused(t, c, args, `dst${i}`);
    }
    // -K: a symlink to a dir on the receiving side is kept and followed
    await c.seedDst([dir('realdir-elsewhere'), slink('realdir', 'realdir-elsewhere')], 'dstK');
    await runOrRefused(t, c, ['-K'], 'dstK', { ignoreDirMtimes: true });
  });

  t.test('unsafe symlinks (absolute, escaping the tree): -l, --safe-links, -L, --copy-unsafe-links', async (t) => {
    const c = await newCase(t, getTransport(), D, [file('real.txt', 'r\n'), slink('abs-link', '/etc/hostname'), slink('up-link', '../outside.txt'), slink('d/up2', '../../x')]);
    for (const [i, args] of [['-l'], ['--safe-links'], ['-L'], ['--copy-unsafe-links']].entries()) {
      await runOrRefused(t, c, args, `dst${i}`);
    }
  });
}

export function filterCases(t: Test, D: Direction, getTransport: () => Transport): void {
  const filterTree = (): Node[] => [
    file('a.c', 'c\n'),
    file('a.o', 'o\n'),
    file('keep.o', 'keep\n'),
    file('b.txt', 'b\n'),
    file('core', 'core\n'),
    file('CVS/Entries', 'e\n'),
    file('.git/config', 'g\n'),
    file('x.bak', 'bak~\n'),
    file('x~', 'tilde\n'),
    file('d/x.c', 'x\n'),
    file('d/x.o', 'xo\n'),
    file('d/sub/y.o', 'yo\n'),
    file('d/sub/keep.txt', 'k\n'),
    file('d/sub/deeper/tmp/t.txt', 't\n'),
    file('build/out.bin', 'bin\n'),
    file('notbuild/build', 'file named build\n'),
    file('logs/1.log', 'l\n'),
    file('logs/keep.txt', 'k\n'),
    file('sub dir/a.c', 'c\n'),
    dir('only-o/inner'),
    file('only-o/inner/z.o', 'z\n'),
    file('.rsync-filter', '- *.log\n- /b.txt\n'),
    file('d/.rsync-filter', '- keep.txt\n+ *.c\n'),
  ];
  const FILTERS: Array<[string, string[]]> = [
    ["--exclude='*.o'", ['--exclude=*.o']],
    ['anchored and dir-only: --exclude=/d/ --exclude=build/ --exclude="sub dir"', ['--exclude=/d/', '--exclude=build/', '--exclude=sub dir']],
    ["--include='*/' --include='*.c' --exclude='*' -m", ['--include=*/', '--include=*.c', '--exclude=*', '-m']],
    ["--include='*/' --include='*.c' --exclude='*' (no -m)", ['--include=*/', '--include=*.c', '--exclude=*']],
    ["--filter='+ keep.o' --filter='- *.o'", ['--filter=+ keep.o', '--filter=- *.o']],
    ["--filter='- *.o'", ['--filter=- *.o']],
    ['-C (cvs exclude)', ['-C']],
    ['-F (.rsync-filter dir-merge)', ['-F']],
    ['-FF (and exclude the merge files)', ['-FF']],
    ["--exclude='**/tmp/**' --exclude='d/**/*.o'", ['--exclude=**/tmp/**', '--exclude=d/**/*.o']],
    ["-f 'merge' of an --exclude-from file", ['--exclude-from=excl']],
    ['-F --protocol=29', ['-F', '--protocol=29']],
    ["--exclude='*.o' --protocol=27", ['--exclude=*.o', '--protocol=27']],
  ];
  for (const [name, args] of FILTERS) {
    t.test(`filter ${name}`, async (t) => {
      const c = await newCase(t, getTransport(), D, filterTree());
      await sideFile(c, 'excl', '# comment\n*.o\n/logs/\n');
      await runAndCompare(t, c, ['-a', '-i', ...args]);
    });
  }

  t.test('filters protect destination files from --delete; --delete-excluded removes them', async (t) => {
    const c = await newCase(t, getTransport(), D, filterTree());
    const dstExtra = (): Node[] => [
      file('extra.o', 'excluded extra\n'),
      file('extra.txt', 'plain extra\n'),
      file('d/sub/stale.o', 's\n'),
      file('d/sub/stale.c', 's\n'),
      file('logs/old.log', 'old\n'),
      file('protected.keep', 'p\n'),
    ];
    for (const [i, args] of [
      ['--delete', '--exclude=*.o'],
      ['--delete', '--delete-excluded', '--exclude=*.o'],
      ['--delete', '-F'],
      ['--delete', '--filter=P *.keep', '--exclude=*.o'],
      ['--delete', '--filter=- *.o', '--filter=R extra.o'],
      ['--delete-after', '--delete-excluded', '-F'],
    ].entries()) {
      await c.seedDst(dstExtra(), `dst${i}`);
      await runAndCompare(t, c, ['-a', '-i', ...args], { dst: `dst${i}/` });
    }
  });
}

export function deleteCases(t: Test, D: Direction, getTransport: () => Transport, protocols: number[] = [27, 29, 30, 32]): void {
  const src = (): Node[] => [
    file('a.txt', 'a\n'),
    file('d/b.txt', 'b\n'),
    file('d/e/c.txt', 'c\n'),
    dir('empty'),
    slink('l', 'a.txt'),
  ];
  const dst = (): Node[] => [
    file('a.txt', 'old a\n', { mtime: M_OLD }),
    file('gone.txt', 'g\n'),
    file('d/gone2.txt', 'g\n'),
    file('d/e/gone3.txt', 'g\n'),
    file('d/x/y/z/deep.txt', 'deep\n'),
    dir('d/x/emptysub'),
    slink('d/gone-link', 'nowhere'),
    file('olddir/f1', '1\n'),
    file('olddir/f2', '2\n'),
    file('empty/stale', 's\n'),
    file('l', 'file where a link goes\n'),
  ];
  const MODES: string[][] = [['--delete'], ['--delete-before'], ['--delete-during'], ['--delete-delay'], ['--delete-after'], ['--del']];
  for (const mode of MODES) {
    for (const p of mode[0] === '--delete' ? protocols : [32]) {
      t.test(`${mode.join(' ')} --protocol=${p}`, async (t) => {
        const c = await newCase(t, getTransport(), D, src());
        await c.seedDst(dst());
        const r = await runAndCompare(t, c, ['-a', '-i', '--stats', ...mode, `--protocol=${p}`]);
        t.same(pickStats(stats(r.remote.stdout), ['Number of deleted files']), pickStats(stats(r.local.stdout), ['Number of deleted files']), 'Number of deleted files matches');
        // below 29 a stock server itemizes deletions as "*deleting  " without the name (log_delete quirk)
        if (p >= 29) t.match(r.remote.stdout, /\*deleting +gone\.txt/, 'deletion itemized');
      });
    }
  }

  t.test('--delete -n: deletions itemized, nothing deleted', async (t) => {
    const c = await newCase(t, getTransport(), D, src());
    await c.seedDst(dst());
    const r = await runAndCompare(t, c, ['-a', '-i', '-n', '--delete']);
    t.match(r.remote.stdout, /\*deleting +gone\.txt/);
  });

  for (const [n, code] of [[2, 25], [0, 25], [100, 0]] as const) {
    t.test(`--max-delete=${n} (exit ${code})`, async (t) => {
      const c = await newCase(t, getTransport(), D, src());
      await c.seedDst(dst());
      // dirs whose deletions were cut short have "now" mtimes on both sides
      const r = await runAndCompare(t, c, ['-a', '-i', '--delete', `--max-delete=${n}`], { expectCode: code, compare: { ignoreDirMtimes: code === 25 } });
      if (code === 25) {
        t.match(r.remote.stderr + r.remote.stdout, /Deletions stopped due to --max-delete limit \(\d+ skipped\)/, 'limit message');
        t.equal(
          (r.remote.stderr + r.remote.stdout).match(/\((\d+) skipped\)/)?.[1],
          (r.local.stderr + r.local.stdout).match(/\((\d+) skipped\)/)?.[1],
          'same number skipped as the reference',
        );
      }
    });
  }

  for (const mode of ['--delete', '--delete-after', '--delete-before']) {
    t.test(`${mode} with a missing source arg: exit 23, deletions as the reference does them`, async (t) => {
      const c = await newCase(t, getTransport(), D, src());
      await c.seedDst(dst());
      const r = await runAndCompare(t, c, ['-a', '-i', mode], { srcs: ['src/', 'src/nope'], expectCode: 23 });
      const skip = /IO error encountered -- skipping file deletion/;
      t.equal(skip.test(r.remote.stdout + r.remote.stderr), skip.test(r.local.stdout + r.local.stderr), '"IO error encountered -- skipping file deletion" iff the reference says it');
      await c.seedDst(dst(), 'dst-ign');
      await runAndCompare(t, c, ['-a', '-i', mode, '--ignore-errors'], { srcs: ['src/', 'src/nope'], dst: 'dst-ign/', expectCode: 23 });
    });
  }

  t.test('--delete -v --protocol=27/28 (deletions reported as "deleting x" info lines)', async (t) => {
    for (const p of [27, 28]) {
      const c = await newCase(t, getTransport(), D, src());
      await c.seedDst(dst());
      const r = await runAndCompare(t, c, ['-a', '-v', '--delete', `--protocol=${p}`]);
      const dels = (s: string) => s.split('\n').filter((l) => /^deleting /.test(l)).sort();
      t.same(dels(r.remote.stdout), dels(r.local.stdout), `protocol ${p}: deleting lines match`);
    }
  });

  t.test('--delete --force replaces a non-empty dir with a file', async (t) => {
    const c = await newCase(t, getTransport(), D, [file('was-dir', 'now a file\n'), file('keep', 'k\n')]);
    await c.seedDst([file('was-dir/a/b', 'b\n'), file('was-dir/c', 'c\n'), file('keep', 'k\n')]);
    await runAndCompare(t, c, ['-a', '-i', '--delete', '--force']);
  });

  t.test('--delete of a single file transfer does not delete siblings', async (t) => {
    const c = await newCase(t, getTransport(), D, src());
    await c.seedDst(dst());
    await runAndCompare(t, c, ['-a', '-i', '--delete'], { srcs: ['src/a.txt'] });
  });

  t.test('--delete with -R and a/./b: only inside the transferred dirs', async (t) => {
    const c = await newCase(t, getTransport(), D, src());
    await c.seedDst(dst());
    await runAndCompare(t, c, ['-a', '-i', '-R', '--delete'], { srcs: ['src/./d/e'] });
  });

  t.test('--delete-missing-args', async (t) => {
    const c = await newCase(t, getTransport(), D, src());
    await c.seedDst(dst());
    await runAndCompare(t, c, ['-a', '-i', '-R', '--delete-missing-args'], { srcs: ['src/./a.txt', 'src/./gone.txt', 'src/./olddir'] });
  });
}
