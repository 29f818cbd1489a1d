// rsync's -vv filter traces from our sender (exclude.c report_filter_result): a pull through
// rrsyncd (the pipe harness) prints the same "[sender] hiding/showing …" lines as the stock
// reference, with the rule text of an argument echoed (a directory-only rule with its '/' put
// back, an anchored one with its leading '/', a long one whole) and the text of a rule read from a
// merge file replaced by where it came from (docs/attacks.md §2.4), the ":e" exclude-self rule
// included. Lines are compared sorted: the reference emits them in readdir order.
import t from 'tap';
import { dir, file, newCase, PIPE_RSH, type Transport } from './lib/interop.js';

const tr: Transport = { kind: 'pipe', rsh: PIPE_RSH, host: 'x', env: {} };

/** A pattern longer than any name, matching only the file LONG (each "[Q]" is one literal Q). */
const LONG = 'Q'.repeat(250);
const LONG_RULE = `--exclude=/${'[Q]'.repeat(250)}`;
const PATTERN_TEXT = 'sec[r]et-marker-9x';
const SELF_PATTERN = 'excl-self-[x]9';

const tree = () => [
  file('a.o', 'o\n'),
  file('keep.c', 'c\n'),
  file(LONG, 'long\n'),
  dir('dd'),
  file('dd/x', 'x\n'),
  file('secret-marker-9x', 'hidden\n'),
  file('excl-self-x9', 'hidden\n'),
  file(SELF_PATTERN, '- nothing-here\n'),
  file('.rsync-filter', `:e ${SELF_PATTERN}\n- d/\n- ${PATTERN_TEXT}\n`),
  file('sub/.rsync-filter', '- *.tmp\n+ y\n'),
  file('sub/x.tmp', 't\n'),
  file('sub/y', 'y\n'),
  file('sub/d/f', 'f\n'),
];

function traces(out: string): string[] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('[sender] '))
    .sort();
}

const ARGS = ['-r', '-F', '-vv', '--exclude=*.o', '--include=keep.c', '--exclude=dd/', LONG_RULE];

for (const protocol of [29, 30, 31, 32]) {
  t.test(`-vv -F pull: the sender's filter traces match the reference --protocol=${protocol}`, async (t) => {
    const c = await newCase(t, tr, 'pull', tree());
    const r = await c.run([...ARGS, `--protocol=${protocol}`]);
    c.sameExit(t, r, 0);
    const ours = traces(r.remote.stdout + r.remote.stderr);
    t.same(ours, traces(r.local.stdout + r.local.stderr), 'the same trace lines', c.describe(r));
    t.ok(ours.includes('[sender] hiding file a.o because of pattern *.o'), 'a plain --exclude is echoed');
    t.ok(ours.includes('[sender] showing file keep.c because of pattern keep.c'), 'an --include is echoed');
    t.ok(ours.includes('[sender] hiding directory dd because of pattern dd/'), "a directory-only rule gets its '/' back");
    t.ok(ours.includes(`[sender] hiding file ${LONG} because of pattern ${LONG_RULE.slice('--exclude='.length)}`), 'a long argument rule is echoed whole');
    const fromFile = '<rule from a file read earlier> [per-dir .rsync-filter]';
    t.ok(ours.includes(`[sender] hiding file sub/x.tmp because of pattern ${fromFile}`), 'a per-dir rule is named by where it came from');
    t.ok(ours.includes(`[sender] showing file sub/y because of pattern ${fromFile}`), 'a per-dir include too');
    t.ok(ours.includes(`[sender] hiding file excl-self-x9 because of pattern ${fromFile}`), 'the ":e" exclude-self rule is a file rule too');
    const all = r.remote.stdout + r.remote.stderr;
    t.notOk(all.includes(PATTERN_TEXT) || all.includes(SELF_PATTERN + ' '), "no merge file's text is echoed");
  });
}

t.test('plain -v prints no trace', async (t) => {
  const c = await newCase(t, tr, 'pull', tree());
  const r = await c.run(['-r', '-F', '-v', '--exclude=*.o']);
  c.sameExit(t, r, 0);
  t.same(traces(r.remote.stdout + r.remote.stderr), [], 'no trace at -v', c.describe(r));
  t.same(traces(r.local.stdout + r.local.stderr), [], 'nor from the reference', c.describe(r));
});

t.test('--protocol=27: argument rules are traced as by the reference', async (t) => {
  const c = await newCase(t, tr, 'pull', tree());
  const r = await c.run(['-r', '-vv', '--protocol=27', '--exclude=*.o', '--include=keep.c', '--exclude=dd/', '--exclude=/keep*']);
  c.sameExit(t, r, 0);
  const ours = traces(r.remote.stdout + r.remote.stderr);
  t.ok(ours.includes('[sender] hiding directory dd because of pattern dd/'), 'traced');
  t.same(ours, traces(r.local.stdout + r.local.stderr), 'the same trace lines', c.describe(r));
});
