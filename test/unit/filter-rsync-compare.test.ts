/**
 * Compares FilterSet (sender side) with the real rsync binary: `rsync -r --list-only <filters> src/`
 * over a small tree, against a walk of the same tree that keeps what FilterSet does not exclude.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseFilterRule } from '../../src/protocol/filter.js';
import { FilterSet } from '../../src/engine/filter-match.js';

const RSYNC = '/usr/bin/rsync';

const TREE: Record<string, string | null> = {
  // null = directory
  'a.txt': 'a',
  'b.o': 'b',
  'core': 'c',
  'abs': 'x',
  'foo.bak': 'x',
  'tags': 'x',
  'prot1.txt': 'x',
  'hid1.txt': 'x',
  'q1.txt': 'x',
  'we[1].txt': 'x',
  'star*x': 'x',
  '.rsync-filter': '- b.o\n# comment\n;another\n\n- /abs\n',
  'rules.txt': '- *.bak\n+ keep/\n- k*\n',
  '.ex': 'tags   *.log\nq?.txt\n',
  'keep': null,
  'keep/x.o': 'x',
  'keep/y.txt': 'x',
  'kx': null,
  'kx/f': 'x',
  'dironly': 'file named dironly',
  'dironly2': null,
  'dironly2/dironly': null,
  'dironly2/dironly/in': 'x',
  'RCS': null,
  'RCS/r,v': 'x',
  'sub': null,
  'sub/a.txt': 'x',
  'sub/abs': 'x',
  'sub/core': 'x',
  'sub/b.o': 'x',
  'sub/x.log': 'x',
  'sub/.rsync-filter': '- /deep/z.c\n+ core\n- a.*\n',
  'sub/.cvsignore': '*.log a.txt\n',
  'sub/.ex': 'core',
  'sub/deep': null,
  'sub/deep/z.c': 'x',
  'sub/deep/z.o': 'x',
  'sub/deep/core': 'x',
  'sub/deep/a.txt': 'x',
  'sub/deep/.rsync-filter': '- *.c\n!\n- core\n',
  'sub/deep/deeper': null,
  'sub/deep/deeper/a.txt': 'x',
  'sub/deep/deeper/z.c': 'x',
  'other': null,
  'other/abs': 'x',
  'other/deep': null,
  'other/deep/z.o': 'x',
  'other/deep/z.c': 'x',
  'other/.rsync-filter': '+ z.c\n- /deep\n',
  '.inner': '- tags\n',
  'sub/.nest': ': .inner\n- abs\n',
  'sub/deep/.inner': '- a.txt\n- /deeper/z.c\n',
  'sub/deep/.nest': ': .inner\n- core\n',
  'sub/deep/deeper/.inner': '+ a.txt\n',
  'other/.nest': '- /deep/\n',
};

const CASES: Array<{ rules: string[]; cvs?: boolean }> = [
  { rules: ['- *.o'] },
  { rules: ['- /abs'] },
  { rules: ['- abs'] },
  { rules: ['- sub/abs'] },
  { rules: ['- dironly/'] },
  { rules: ['- dironly'] },
  { rules: ['+ */', '+ *.txt', '- *'] },
  { rules: ['- sub/***'] },
  { rules: ['+ sub/***', '- *'] },
  { rules: ['- **/deep/*.o'] },
  { rules: ['- deep/z*'] },
  { rules: ['- /**/z.c'] },
  { rules: ['- **.c'] },
  { rules: ['- sub/**/a.txt'] },
  { rules: ['-! *.txt'] },
  { rules: ['-! */'] },
  { rules: ['- [ab].*', '- *[[:digit:]]*'] },
  { rules: ['- we\\[1\\].txt', '- star\\*x'] },
  { rules: ['- we[1].txt'] },
  { rules: ['H hid*', 'P prot*', '-s tags', '-r core'] },
  { rules: ['- *', '+ a.txt'] },
  { rules: ['+ keep/', '- k*'] },
  { rules: ['exclude a.txt', 'include,s b.o', 'hide b*'] },
  { rules: ['- a.txt', '!', '- b.o'] },
  { rules: [': /.rsync-filter'] },
  { rules: [': .rsync-filter', '- *.o'] },
  { rules: ['- core', ':n .rsync-filter', '- *.c'] },
  { rules: [':e .rsync-filter'] },
  { rules: [':- .ex'] },
  { rules: [':w- .ex', '+ *.log'] },
  { rules: [':+ .ex', '- core', '- *.txt'] },
  { rules: ['. rules.txt'] },
  { rules: [], cvs: true },
  { rules: ['+ *.bak', '+ RCS/'], cvs: true },
  { rules: ['-C'] },
  { rules: [':C'] },
  { rules: [': /.rsync-filter', '- .rsync-filter'] },
  { rules: [': .nest'] },
  { rules: [':n .nest'] },
  { rules: [': .nest', ': .inner'] },
  { rules: ['- *.txt', ': .nest'] },
];

function makeTree(root: string): void {
  for (const [rel, content] of Object.entries(TREE)) {
    const p = path.join(root, rel);
    if (content === null) fs.mkdirSync(p, { recursive: true });
    else {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, content);
    }
  }
}

function rsyncList(src: string, c: { rules: string[]; cvs?: boolean }): string[] {
  const args = ['-r', '--list-only', ...(c.cvs ? ['-C'] : []), ...c.rules.map((r) => `--filter=${r}`), './'];
  const out = execFileSync(RSYNC, args, { cwd: src, env: { ...process.env, HOME: '/nonexistent', CVSIGNORE: '' } }).toString('latin1');
  const names: string[] = [];
  for (const line of out.split('\n')) {
    const m = /^\S+\s+[\d,]+\s+\S+\s+\S+\s(.*)$/.exec(line);
    if (m) names.push(m[1]);
  }
  return names.sort();
}

function ourList(src: string, c: { rules: string[]; cvs?: boolean }): string[] {
  const rules = c.rules.map((r) => parseFilterRule(r, 32));
  const set = new FilterSet(rules, {
    side: 'sender',
    protocol: 32,
    cvsExclude: c.cvs,
    readMergeFile: (dir, name) => {
      try {
        return fs.readFileSync(path.join(src, dir, name));
      } catch {
        return null;
      }
    },
  });
  const out = ['.'];
  const walk = (dir: string): void => {
    const df = set.enterDir(dir);
    for (const name of fs.readdirSync(path.join(src, dir))) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      const isDir = fs.lstatSync(path.join(src, rel)).isDirectory();
      if (df.excluded(rel, isDir)) continue;
      out.push(rel);
      if (isDir) walk(rel);
    }
  };
  walk('');
  return out.sort();
}

const haveRsync = fs.existsSync(RSYNC);
t.test('FilterSet agrees with rsync --list-only', { skip: haveRsync ? false : 'no /usr/bin/rsync' }, async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'filtcmp-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const src = path.join(root, 'src');
  makeTree(src);
  for (const c of CASES) {
    const label = `${c.cvs ? '-C ' : ''}${c.rules.map((r) => JSON.stringify(r)).join(' ')}`;
    t.same(ourList(src, c), rsyncList(src, c), label);
  }
});

/** Receiver side: which extra destination files survive `rsync -r --delete` with the rules. */
const DST_EXTRA = ['e.o', 'prot1', 'tmp.tmp', 'd/x.o', 'd/prot2', 'd/plain', 'd/sub/z.o', 'd/keep.o', 'd/hid.txt'];
const DEL_CASES: Array<{ rules: string[]; deleteExcluded?: boolean }> = [
  { rules: [] },
  { rules: ['- *.o'] },
  { rules: ['+ keep.o', '- *.o'] },
  { rules: ['P prot*', 'H hid*'] },
  { rules: ['-r *.o', '-s plain'] },
  { rules: ['R keep.o', 'P *.o'] },
  { rules: ['-p *.tmp', '- /d/plain'] },
  { rules: ['- *.o', 'P prot*'], deleteExcluded: true },
  { rules: [': .rf'] },
  { rules: [':e .rf', '- e.o'] },
];

function prepareDelete(root: string): { src: string; dst: string } {
  const src = path.join(root, 'dsrc');
  const dst = path.join(root, 'ddst');
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(dst, { recursive: true, force: true });
  for (const base of [src, dst]) {
    fs.mkdirSync(path.join(base, 'd/sub'), { recursive: true });
    fs.writeFileSync(path.join(base, 'd/keep.txt'), 'k');
    fs.writeFileSync(path.join(base, 'd/sub/s.txt'), 's');
  }
  for (const rel of DST_EXTRA) fs.writeFileSync(path.join(dst, rel), 'x');
  fs.writeFileSync(path.join(dst, 'd/.rf'), '- x.o\nP plain\n');
  fs.writeFileSync(path.join(dst, 'd/sub/.rf'), '- *.o\n');
  return { src, dst };
}

function survivors(dst: string): string[] {
  return [...DST_EXTRA, 'd/.rf'].filter((rel) => fs.existsSync(path.join(dst, rel))).sort();
}

t.test('protectedFromDelete agrees with rsync --delete', { skip: haveRsync ? false : 'no /usr/bin/rsync' }, async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'filtdel-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const c of DEL_CASES) {
    const label = `${c.deleteExcluded ? '--delete-excluded ' : ''}${c.rules.map((r) => JSON.stringify(r)).join(' ')}`;
    // Ours: walk the destination, delete what is neither in the source nor protected.
    let { src, dst } = prepareDelete(root);
    const set = new FilterSet(
      c.rules.map((r) => parseFilterRule(r, 32)),
      {
        side: 'receiver',
        protocol: 32,
        deleteExcluded: c.deleteExcluded,
        readMergeFile: (dir, name) => {
          try {
            return fs.readFileSync(path.join(dst, dir, name));
          } catch {
            return null;
          }
        },
      },
    );
    const walk = (dir: string): void => {
      const df = set.enterDir(dir);
      for (const name of fs.readdirSync(path.join(dst, dir))) {
        const rel = dir === '' ? name : `${dir}/${name}`;
        const isDir = fs.lstatSync(path.join(dst, rel)).isDirectory();
        if (fs.existsSync(path.join(src, rel))) {
          if (isDir) walk(rel);
          continue;
        }
        if (!df.protectedFromDelete(rel, isDir).protected) fs.rmSync(path.join(dst, rel), { recursive: true });
      }
    };
    walk('');
    const ours = survivors(dst);
    ({ src, dst } = prepareDelete(root));
    const args = ['-r', c.deleteExcluded ? '--delete-excluded' : '--delete', ...c.rules.map((r) => `--filter=${r}`), `${src}/`, `${dst}/`];
    execFileSync(RSYNC, args, { env: { ...process.env, HOME: '/nonexistent' } });
    t.same(ours, survivors(dst), label);
  }
});
