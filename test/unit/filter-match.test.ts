/** Rule evaluation, per-directory merge files, CVS defaults, sides (src/engine/filter-match.ts). */
import t from 'tap';
import { FileListAbort, ProtocolError } from '../../src/protocol/errors.js';
import { parseFilterRule, type FilterRule } from '../../src/protocol/filter.js';
import { FilterSet, type FilterOptions, type MergeFileReader } from '../../src/engine/filter-match.js';
import { SandboxError } from '../../src/sandbox/errors.js';

/** The message of what fn throws ('' if nothing). */
function thrownMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof ProtocolError ? err.message : `not a ProtocolError: ${String(err)}`;
  }
  return '';
}

function rules(...texts: string[]): FilterRule[] {
  return texts.map((s) => parseFilterRule(s, 32));
}

function files(map: Record<string, string>): MergeFileReader {
  return (dir, name) => {
    const key = dir === '' ? name : `${dir}/${name}`;
    return key in map ? Buffer.from(map[key], 'latin1') : null;
  };
}

function sender(texts: string[], extra: Partial<FilterOptions> = {}): FilterSet {
  return new FilterSet(rules(...texts), { side: 'sender', protocol: 32, ...extra });
}

/** excluded() as the sender walk would ask it: with the DirFilter of the parent directory. */
function hidden(set: FilterSet, path: string, isDir = false): boolean {
  const i = path.lastIndexOf('/');
  return set.enterDir(i < 0 ? '' : path.slice(0, i)).excluded(path, isDir);
}

t.test('empty sets', async (t) => {
  t.ok(sender([]).empty);
  t.notOk(hidden(sender([]), 'x'));
  t.ok(sender(['-r x']).empty, 'receiver-only rules do not count on the sender');
  t.ok(new FilterSet(rules('H x'), { side: 'receiver', protocol: 32 }).empty);
  t.notOk(sender(['- x']).empty);
  t.ok(sender(['- x', '!']).empty, 'a clear empties the list');
  t.notOk(sender([], { cvsExclude: true, readMergeFile: files({}) }).empty);
});

t.test('first match wins', async (t) => {
  const s = sender(['+ keep.o', '- *.o', '+ *.o']);
  t.notOk(hidden(s, 'keep.o'));
  t.ok(hidden(s, 'a.o'));
  t.ok(hidden(s, 'd/a.o'));
  t.notOk(hidden(s, 'd/keep.o'));
  const s2 = sender(['- *', '+ a.txt']);
  t.ok(hidden(s2, 'a.txt'));
  const s3 = sender(['+ */', '+ *.txt', '- *']);
  t.notOk(hidden(s3, 'd', true));
  t.notOk(hidden(s3, 'd/e.txt'));
  t.ok(hidden(s3, 'd/e.c'));
});

t.test('anchored vs unanchored, slashes', async (t) => {
  const s = sender(['- /abs', '- sub/x', '- name']);
  t.ok(hidden(s, 'abs'));
  t.notOk(hidden(s, 'd/abs'));
  t.ok(hidden(s, 'sub/x'));
  t.ok(hidden(s, 'a/sub/x'), 'an unanchored pattern with "/" matches the trailing components');
  t.notOk(hidden(s, 'asub/x'));
  t.ok(hidden(s, 'name'));
  t.ok(hidden(s, 'a/b/name'));
  const w = sender(['- a/*/c']);
  t.ok(hidden(w, 'a/b/c'));
  t.ok(hidden(w, 'x/a/b/c'));
  t.notOk(hidden(w, 'a/b/b/c'));
  const a = sender(['- /a/*']);
  t.ok(hidden(a, 'a/b'));
  t.notOk(hidden(a, 'x/a/b'));
});

t.test('dir-only, ***, **', async (t) => {
  const s = sender(['- build/']);
  t.ok(hidden(s, 'build', true));
  t.notOk(hidden(s, 'build', false));
  t.ok(hidden(s, 'x/build', true));
  const w3 = sender(['- sub/***']);
  t.ok(hidden(w3, 'sub', true), 'dir/*** matches the dir itself');
  t.notOk(hidden(w3, 'sub', false));
  t.ok(hidden(w3, 'sub/a'));
  t.ok(hidden(w3, 'sub/a/b/c'));
  t.ok(hidden(w3, 'x/sub/a'), 'unanchored');
  const w2 = sender(['- **/deep/*.o', '- /top/**']);
  t.ok(hidden(w2, 'deep/a.o'));
  t.ok(hidden(w2, 'x/y/deep/a.o'));
  t.notOk(hidden(w2, 'x/deep/sub/a.o'));
  t.ok(hidden(w2, 'top/a/b'));
  t.notOk(hidden(w2, 'top', true));
  const star = sender(['- a*']);
  t.ok(hidden(star, 'x/abc'), '* on a basename');
  t.notOk(hidden(star, 'abc/x'));
});

t.test('negation and classes', async (t) => {
  const s = sender(['-! *.txt']);
  t.notOk(hidden(s, 'a.txt'));
  t.ok(hidden(s, 'a.c'));
  t.ok(hidden(s, 'd', true));
  const d = sender(['-! */']);
  t.ok(hidden(d, 'file'), 'a negated dir-only rule matches every non-directory');
  t.notOk(hidden(d, 'dir', true));
  const c = sender(['- [ab].*', '- *[[:digit:]]', '- x\\*']);
  t.ok(hidden(c, 'a.c'));
  t.notOk(hidden(c, 'c.c'));
  t.ok(hidden(c, 'v1'));
  t.ok(hidden(c, 'x*'));
  t.notOk(hidden(c, 'xy'));
  const lit = sender(['- a\\b']);
  t.ok(hidden(lit, 'a\\b'), 'a pattern without wildcards is literal, backslash included');
});

t.test('sides', async (t) => {
  const texts = ['H hid', 'P prot', 'S shown', 'R risked', '- plain', '-s s1', '-r r1', '-sr both'];
  const snd = sender(texts);
  t.ok(hidden(snd, 'hid'));
  t.notOk(hidden(snd, 'prot'));
  t.ok(hidden(snd, 'plain'));
  t.ok(hidden(snd, 's1'));
  t.notOk(hidden(snd, 'r1'));
  t.ok(hidden(snd, 'both'));
  const rcv = new FilterSet(rules(...texts), { side: 'receiver', protocol: 32 });
  const dir = rcv.enterDir('');
  t.same(dir.protectedFromDelete('hid', false), { protected: false, perishable: false });
  t.same(dir.protectedFromDelete('prot', false), { protected: true, perishable: false });
  t.same(dir.protectedFromDelete('plain', false), { protected: true, perishable: false });
  t.same(dir.protectedFromDelete('r1', false), { protected: true, perishable: false });
  t.same(dir.protectedFromDelete('s1', false), { protected: false, perishable: false });
  // --delete-excluded: plain rules stop protecting; explicit sides keep working.
  const de = new FilterSet(rules(...texts), { side: 'receiver', protocol: 32, deleteExcluded: true }).enterDir('');
  t.notOk(de.protectedFromDelete('plain', false).protected);
  t.ok(de.protectedFromDelete('prot', false).protected);
  t.ok(de.protectedFromDelete('both', false).protected);
  const ds = sender(texts, { deleteExcluded: true });
  t.ok(hidden(ds, 'plain'), '--delete-excluded rules still hide on the sender');
});

t.test('perishable', async (t) => {
  const r = new FilterSet(rules('-p *.tmp', '- keep.tmp', '+ risk.log', '-p *.log', '- *.log'), { side: 'receiver', protocol: 32 }).enterDir('');
  t.same(r.protectedFromDelete('a.tmp', false), { protected: true, perishable: true });
  t.same(r.protectedFromDelete('keep.tmp', false), { protected: true, perishable: false }, 'a later solid rule still protects');
  t.same(r.protectedFromDelete('risk.log', false), { protected: false, perishable: false });
  t.same(r.protectedFromDelete('x.log', false), { protected: true, perishable: false });
  t.same(r.protectedFromDelete('other', false), { protected: false, perishable: false });
});

t.test('CVS', async (t) => {
  const s = sender([], { cvsExclude: true, readMergeFile: files({ 'd/.cvsignore': 'local.* !\n*.skip' }) });
  t.ok(hidden(s, 'core'));
  t.ok(hidden(s, 'a/b.o'));
  t.ok(hidden(s, 'x.bak'));
  t.ok(hidden(s, '.git', true));
  t.notOk(hidden(s, '.git', false));
  t.notOk(hidden(s, 'main.c'));
  t.ok(hidden(s, 'd/x.skip'));
  t.notOk(hidden(s, 'd/local.c'), '"!" in a .cvsignore clears what came before it');
  t.notOk(hidden(s, 'd/e/x.skip'), '.cvsignore is not inherited');
  t.notOk(hidden(s, 'x.skip'));
  // Receiver, protocol >= 30: the client sends ":C" and the expanded list itself; nothing is added.
  const r = new FilterSet([], { side: 'receiver', protocol: 32, cvsExclude: true, readMergeFile: files({}) });
  t.ok(r.empty);
  // Receiver below 29: ":C" only (the defaults come from the client as old-style rules).
  const r28 = new FilterSet([], { side: 'receiver', protocol: 28, cvsExclude: true, readMergeFile: files({ '.cvsignore': 'junk' }) });
  t.ok(r28.enterDir('').protectedFromDelete('junk', false).protected);
  t.notOk(r28.enterDir('').protectedFromDelete('core', false).protected);
  // "-C" on the wire: the defaults at that position, perishable from protocol 30 only.
  const p32 = new FilterSet(rules('+ core', '-C'), { side: 'receiver', protocol: 32 }).enterDir('');
  t.notOk(p32.protectedFromDelete('core', false).protected);
  t.same(p32.protectedFromDelete('x.o', false), { protected: true, perishable: true });
  const p29 = new FilterSet(rules('-C'), { side: 'receiver', protocol: 29 }).enterDir('');
  t.same(p29.protectedFromDelete('x.o', false), { protected: true, perishable: false });
});

t.test('per-directory merge files', async (t) => {
  const tree = files({
    '.rf': '- a.txt\n',
    'd/.rf': '- /top\n+ b.txt\n- b.*\n',
    'd/e/.rf': '- c.txt\n',
    'd/e/f/.rf': '!\n- z\n',
  });
  const s = sender(['- first', ': .rf', '- b.txt', '- last'], { readMergeFile: tree });
  t.ok(hidden(s, 'a.txt'));
  t.ok(hidden(s, 'b.txt'));
  t.ok(hidden(s, 'd/a.txt'), 'inherited');
  t.notOk(hidden(s, 'd/b.txt'), 'the merge rules sit at the position of ":" (before "- b.txt")');
  t.ok(hidden(s, 'd/b.c'));
  t.ok(hidden(s, 'd/top'));
  t.notOk(hidden(s, 'top'), 'anchored rules of d/.rf anchor at d');
  t.notOk(hidden(s, 'd/e/top'));
  t.ok(hidden(s, 'd/e/c.txt'));
  t.notOk(hidden(s, 'd/e/b.txt'), 'inherited from d');
  t.ok(hidden(s, 'd/e/a.txt'), 'inherited from the root');
  t.notOk(hidden(s, 'd/e/f/a.txt'), 'a "!" clears inherited rules too');
  t.ok(hidden(s, 'd/e/f/z'));
  t.ok(hidden(s, 'd/e/f/b.txt'), 'the top-level rule after ":" still applies');
  t.ok(hidden(s, 'd/e/f/first'));
  t.ok(hidden(s, 'x/last'));
  // n: rules apply only in their own directory.
  const n = sender([':n .rf'], { readMergeFile: tree });
  t.ok(hidden(n, 'a.txt'));
  t.notOk(hidden(n, 'd/a.txt'));
  t.ok(hidden(n, 'd/b.c'));
  t.notOk(hidden(n, 'd/e/b.c'));
  // e: the merge file itself is excluded.
  t.ok(hidden(sender([':e .rf'], { readMergeFile: tree }), 'd/.rf'));
  t.notOk(hidden(sender([': .rf'], { readMergeFile: tree }), 'd/.rf'));
  // -F form.
  t.ok(hidden(sender([': /.rf'], { readMergeFile: tree }), 'd/b.c'));
  // enterDir out of order or repeated gives the same answers.
  const o = sender([': .rf'], { readMergeFile: tree });
  t.ok(o.enterDir('d/e/f/').excluded('d/e/f/z', false));
  t.ok(o.enterDir('./d').excluded('d/b.c', false));
  t.ok(o.enterDir('d').excluded('d/b.c', false));
});

t.test('merge files: word split, prefixes, sides, nesting', async (t) => {
  const tree = files({
    '.w': 'a b\tc\n',
    '.p': '+ keep\n- *\n',
    '.s': '- secret\n',
    'rules': '- r1\n: .inner\n',
    'd/.inner': '- i1\n',
    '.self': '. .self\n',
  });
  const w = sender([':w- .w'], { readMergeFile: tree });
  t.ok(hidden(w, 'a') && hidden(w, 'b') && hidden(w, 'c'));
  const inc = sender([':+ .w', '- *'], { readMergeFile: tree });
  t.notOk(hidden(inc, 'a b\tc'), 'without w the whole line is one include pattern');
  const p = sender([': .p'], { readMergeFile: tree });
  t.notOk(hidden(p, 'keep'));
  t.ok(hidden(p, 'other'));
  // A one-sided merge rule: its rules belong to that side only.
  t.ok(hidden(sender([':s .s'], { readMergeFile: tree }), 'secret'));
  t.notOk(new FilterSet(rules(':s .s'), { side: 'receiver', protocol: 32, readMergeFile: tree }).enterDir('').protectedFromDelete('secret', false).protected);
  t.ok(new FilterSet(rules(':r .s'), { side: 'receiver', protocol: 32, readMergeFile: tree }).enterDir('').protectedFromDelete('secret', false).protected);
  // ". FILE" is read relative to the transfer root; a ":" inside it becomes a dir-merge rule.
  const m = sender(['. rules'], { readMergeFile: tree });
  t.ok(hidden(m, 'r1'));
  t.ok(hidden(m, 'd/i1'));
  // exclude.c parse_filter_file(): a merge file that cannot be opened is fatal (11); named in a
  // file, it is shown by where it was named and without the errno.
  t.throws(() => sender(['. missing'], { readMergeFile: tree }), { message: 'rsync: [sender] failed to open exclude file missing: No such file or directory (2)', code: 11 });
  const named = files({ '.names': '- x\n. gone\n' });
  t.throws(() => sender(['. .names'], { readMergeFile: named }), { message: 'failed to open exclude file <rule from .names line 2>', code: 11 });
  let abort: unknown;
  try {
    sender(['. .names'], { readMergeFile: named });
  } catch (err) {
    abort = err;
  }
  t.ok(abort instanceof FileListAbort, 'on the sender: no MSG_ERROR_EXIT (the client sees the close)');
  // exclude.c: the 33rd nested file is refused where it was named (exit 11), never by its name.
  const deep = thrownMessage(() => sender(['. .self'], { readMergeFile: tree }));
  t.equal(deep, `[sender] merge-file include depth limit (32) exceeded at <rule from ${'a file named at '.repeat(31)}.self line 1>`);
  t.throws(() => sender(['. .self'], { readMergeFile: tree }), { code: 11 });
  t.throws(() => sender([': .rf']), { message: /cannot be read here/ }, 'no reader given');
});

t.test('merge-file security', async (t) => {
  const reads: string[] = [];
  const spy: MergeFileReader = (dir, name) => {
    reads.push(`${dir}|${name}`);
    if (name === '.bad') return Buffer.from('- ok\nSECRET-LINE root:x:0:0\n');
    if (name === '.nest') return Buffer.from('. /etc/passwd\n');
    if (name === '.nest2') return Buffer.from(': ../up\n');
    if (name === '.big') return Buffer.alloc(1024 * 1024 + 1, 0x61);
    return null;
  };
  const abs: FilterRule = { ...parseFilterRule('. x', 32), pattern: '/etc/passwd' };
  t.throws(() => new FilterSet([abs], { side: 'sender', protocol: 32, readMergeFile: spy }), {
    message: 'rrsyncd: filter merge file "/etc/passwd" is outside the transfer',
  });
  const up: FilterRule = { ...parseFilterRule(': x', 32), pattern: 'a/../../b' };
  t.throws(() => new FilterSet([up], { side: 'sender', protocol: 32, readMergeFile: spy }), { message: /outside the transfer/ });
  t.same(reads, [], 'nothing read');
  // Bad content: the error names the file and line, never the content.
  const bad = sender([': .bad'], { readMergeFile: spy });
  const badMsg = thrownMessage(() => bad.enterDir('d'));
  t.equal(badMsg, 'invalid filter rule: <rule from .bad line 2>');
  t.notMatch(badMsg, /SECRET|root:x/);
  // A merge name read from a file is not echoed either.
  const nest = sender([': .nest'], { readMergeFile: spy });
  const nestMsg = thrownMessage(() => nest.enterDir(''));
  t.equal(nestMsg, 'rrsyncd: filter merge file <rule from .nest line 1> is outside the transfer');
  // a dir-merge named in a file is read later by the reference, which no longer knows where from
  t.throws(() => sender([': .nest2'], { readMergeFile: spy }).enterDir(''), { message: 'rrsyncd: filter merge file <rule from a file read earlier> is outside the transfer' });
  t.throws(() => sender([': .big'], { readMergeFile: spy }).enterDir(''), { message: /larger than 1048576 bytes/ });
  t.ok(reads.every((r) => !r.includes('..') && !r.includes('/etc')), 'no read ever left the tree');
});

t.test('rule count bounds', async (t) => {
  const huge = Buffer.from('- x\n'.repeat(100_001));
  const s = sender([': .many'], { readMergeFile: (_d, n) => (n === '.many' ? huge : null) });
  t.throws(() => s.enterDir('d'), { message: /too many rules in filter merge file "\.many"/ });
  // Many directories with big (legal) files: no cumulative limit, the cache just drops old states.
  const big = Buffer.from('- x\n'.repeat(60_000));
  const ok = sender([': .many'], { readMergeFile: (_d, n) => (n === '.many' ? big : null) });
  t.doesNotThrow(() => {
    for (let i = 0; i < 20; i++) ok.enterDir(`d${i}`);
  });
  t.ok(ok.enterDir('d3').excluded('d3/x', false), 'a dropped state is rebuilt on demand');
});

t.test('20 000 names x ~40 rules is fast', async (t) => {
  const texts = [
    '- *.o', '- *.tmp', '+ keep/', '- /build/', '- node_modules/', '- .git/', '- **/cache/**', '- *~', '- #*#',
    '- [Tt]humbs.db', '- *.sw?', '-p core', '- dist/***', '- /abs', '- a/b/c', '+ *.c', '+ *.h', '- *.log', '- *.bak',
    'H secret*', 'P prot', '- *.class', '- *.pyc', '- __pycache__/', '- .DS_Store', '- *.min.js', '- coverage/',
    '- target/', '- *.iml', '- .idea/', '- *.orig', '- *.rej', '- *.so', '- *.a', '- *.dll', '- *.exe', '- *.out',
    '- tmp*', '- *-old', '- x?y',
  ];
  const s = sender(texts);
  const names: string[] = [];
  for (let i = 0; i < 20_000; i++) names.push(`dir${i % 50}/sub${i % 7}/file${i}.${['c', 'txt', 'o', 'js', 'md'][i % 5]}`);
  const dirs = names.map((n) => n.slice(0, n.lastIndexOf('/')));
  const start = process.hrtime.bigint();
  let kept = 0;
  for (let i = 0; i < names.length; i++) if (!s.enterDir(dirs[i]).excluded(names[i], false)) kept++;
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.equal(kept, 16_000);
  t.ok(ms < 500, `took ${ms.toFixed(1)} ms`);
});

t.test('an oversize merge file is an error (exit 11), never silently skipped with its rules', async (t) => {
  const oversize: MergeFileReader = (_dir, name) => {
    throw new SandboxError('EFBIG', name, `"${name}" is larger than 1048576 bytes`);
  };
  t.throws(() => sender([': .rsync-filter'], { readMergeFile: oversize }).enterDir('d'), {
    name: 'ProtocolError',
    code: 11,
    message: 'rsync: [sender] failed to open exclude file ".rsync-filter": File too large (27) (larger than 1048576 bytes)',
  });
  t.throws(() => new FilterSet([parseFilterRule('. .protect', 32)], { side: 'receiver', protocol: 32, readMergeFile: oversize }), {
    code: 11,
    message: /^rsync: \[generator\] failed to open exclude file ".protect": File too large \(27\)/,
  });
});
