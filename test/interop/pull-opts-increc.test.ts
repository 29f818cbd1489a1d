// Pull with incremental recursion (sender side): sub-lists per directory, depth-first, announced
// with NDX_FLIST_OFFSET - d, NDX_FLIST_EOF, per-list NDX_DONE. Every case runs the real client
// against rrsyncd and against a stock `rsync --server --sender` and compares exit code, itemized
// output, the destination tree and (with the client's --debug=flist3) the exact sequence of
// sub-lists the client received.
import t, { type Test } from 'tap';
import { engineTransport, newCase, runAndCompare, file, dir, hlink, slink, text, stats, pickStats, type Transport, type Node, type Runs } from './lib/interop.js';

const D = 'pull';
let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

/** ~1,600 entries in 60+ directories: more than the 1,000-file look-ahead, several levels deep. */
function wideDeepTree(dirs = 30, files = 45): Node[] {
  const nodes: Node[] = [file('top.txt', 'top\n'), dir('emptydir'), dir('empty/nested/deeper')];
  for (let d = 0; d < dirs; d++) {
    for (let f = 0; f < files; f++) nodes.push(file(`d${String(d).padStart(2, '0')}/f${f}`, `${d}/${f}\n`));
    nodes.push(file(`d${String(d).padStart(2, '0')}/sub/s.txt`, text(3, `s${d}`)));
  }
  let chain = 'chain';
  for (let i = 0; i < 14; i++) {
    chain += `/c${i}`;
    nodes.push(file(`${chain}/f.txt`, `${i}\n`));
  }
  nodes.push(slink('d00/link-up', '../top.txt'), slink('chain/c0/abs', '/etc/hostname'));
  // hard links whose members live in different sub-lists (arrival indexes across lists)
  nodes.push(file('hl/a/one', 'linked\n'), hlink('hl/b/two', 'hl/a/one'), hlink('d05/three', 'hl/a/one'), hlink('hl/a/four', 'hl/a/one'));
  return nodes;
}

/** The client's `--debug=flist3` lines: which sub-list it received, in order, then EOF. */
function subListSequence(stdout: string): string[] {
  return stdout.split('\n').filter((l) => /^\[receiver\] (receiving flist for dir \d+|flist_eof=1)$/.test(l));
}

function sameSequence(t: Tap, r: Runs, msg = 'the same sub-lists, in the same order, as from a stock server', expectLists = true): void {
  const got = subListSequence(r.remote.stdout);
  const want = subListSequence(r.local.stdout);
  if (expectLists) t.ok(want.length > 0, 'the reference sent sub-lists');
  t.same(got, want, msg);
}

type Tap = Test;

for (const p of [30, 31, 32]) {
  t.test(`-aiH --protocol=${p}: wide and deep tree, look-ahead beyond 1,000 files, sub-list order`, async (t) => {
    const c = await newCase(t, tr, D, wideDeepTree());
    const r = await runAndCompare(t, c, ['-a', '-i', '-H', '--debug=flist3', `--protocol=${p}`], { expectCode: 0 });
    sameSequence(t, r);
    t.match(r.remote.stdout, /receiving flist for dir 6\d/, 'sub-lists for all ~60 directories');
  });
}

t.test('-v: the client reports an incremental list; --no-i-r gives the same tree; --stats agree', async (t) => {
  const c = await newCase(t, tr, D, wideDeepTree());
  const r = await runAndCompare(t, c, ['-a', '-v', '--stats'], { expectCode: 0 });
  t.match(r.remote.stdout, /receiving incremental file list/, 'incremental recursion negotiated');
  t.same(pickStats(stats(r.remote.stdout)), pickStats(stats(r.local.stdout)), 'stats match');
  const n = await runAndCompare(t, c, ['-a', '-v', '--no-i-r'], { expectCode: 0, dst: 'dst-noinc/' });
  t.notMatch(n.remote.stdout, /incremental/, '--no-i-r: one list');
  await c.compareDirs(t, c.remoteDst('dst'), c.remoteDst('dst-noinc'), {}, 'inc and non-inc pulls produce the same tree');
});

t.test('unchanged re-pull: only per-list NDX_DONEs, nothing transferred', async (t) => {
  const c = await newCase(t, tr, D, wideDeepTree());
  await runAndCompare(t, c, ['-a'], { expectCode: 0 });
  const r = await runAndCompare(t, c, ['-a', '-i', '--stats'], { expectCode: 0 });
  t.equal(stats(r.remote.stdout)['Number of regular files transferred'], '0', 'nothing transferred');
});

t.test('arg shapes: src (no slash), one file, duplicate args, src/ twice, an empty dir', async (t) => {
  const c = await newCase(t, tr, D, wideDeepTree(6, 8));
  const cases: Array<[string[], string, boolean]> = [
    [['src'], 'a/', true],
    [['src/top.txt'], 'b/', false],
    [['src/d01', 'src/d01', 'src/d02'], 'c/', true],
    [['src/', 'src/'], 'd/', true],
    [['src/emptydir/'], 'e/', false],
    [['src/chain/c0', 'src/hl'], 'f/', true],
  ];
  for (const [srcs, dst, lists] of cases) {
    const r = await runAndCompare(t, c, ['-a', '-i', '-H', '--debug=flist3'], { srcs, dst, expectCode: 0 });
    sameSequence(t, r, `${srcs.join(' ')}: same sub-lists as a stock server`, lists);
  }
});

t.test('-R with incremental recursion: implied dirs and names carried into sub-lists', async (t) => {
  const c = await newCase(t, tr, D, wideDeepTree(6, 8));
  const forms: Array<[string[], string]> = [
    [['src/./chain/c0/c1/c2/f.txt', 'src/./chain/c0/f.txt', 'src/./d03'], 'r1/'],
    [['src/d04/sub', 'src/d05/f1'], 'r2/'],
    [['src/./hl/a/', 'src/./hl/b/two', 'src/./empty/nested'], 'r3/'],
  ];
  for (const [srcs, dst] of forms) {
    const r = await runAndCompare(t, c, ['-a', '-i', '-R', '-H', '--debug=flist3'], { srcs, dst, expectCode: 0 });
    sameSequence(t, r, `-R ${srcs.join(' ')}: same sub-lists`);
  }
});

t.test('--delete and -F filters apply per sub-list', async (t) => {
  const nodes = [...wideDeepTree(6, 8), file('.rsync-filter', '- f1*\n'), file('d03/.rsync-filter', '- sub/\n'), file('chain/c0/.rsync-filter', '- *.txt\n')];
  const c = await newCase(t, tr, D, nodes);
  await c.seedDst([file('d02/extra', 'x\n'), file('chain/c0/c1/old', 'o\n'), dir('gone/deep'), file('d03/f10', 'excluded\n')]);
  const r = await runAndCompare(t, c, ['-a', '-i', '-F', '--delete', '--debug=flist3'], { expectCode: 0 });
  sameSequence(t, r);
});

t.test('--remove-source-files: MSG_SUCCESS for files in many lists', async (t) => {
  const c = await newCase(t, tr, D, wideDeepTree());
  await runAndCompare(t, c, ['-a', '-i', '--remove-source-files'], { expectCode: 0 });
  await c.compareSources(t, { ignoreDirMtimes: true });
});

t.test('a client that is slow to start still gets sub-lists (no early phase end): --dry-run and --list-only', async (t) => {
  const c = await newCase(t, tr, D, wideDeepTree(6, 8));
  const r = await runAndCompare(t, c, ['-a', '-i', '-n', '--debug=flist3'], { expectCode: 0 });
  sameSequence(t, r);
  const l = await c.run(['-r', '--list-only'], { dst: null });
  c.sameExit(t, l, 0);
  t.same(l.remote.stdout.split('\n'), l.local.stdout.split('\n'), 'recursive --list-only output identical');
});
