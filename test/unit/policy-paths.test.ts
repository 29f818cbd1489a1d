import t from 'tap';
import { confinePath } from '../../src/policy/paths.js';
import { quoted } from '../../src/printable.js';
import { defaultGrant } from '../../src/policy/grant.js';

const grant = defaultGrant('/srv/backup/alice');
const absoluteGrant = { ...defaultGrant('/srv/backup/alice/'), absolute: true };

function outside(what: string): { name: string; code: number; message: RegExp } {
  return { name: 'RsyncError', code: 1, message: new RegExp(`is outside the allowed directory \\(${what}\\)$`) };
}

t.test('normalizes relative paths', async (t) => {
  t.same(confinePath('dst/', grant, 'argument'), { rel: 'dst', trailingSlash: true, anchored: false });
  t.same(confinePath('dst', grant, 'argument'), { rel: 'dst', trailingSlash: false, anchored: false });
  t.same(confinePath('./a//b/./c', grant, 'argument'), { rel: 'a/b/c', trailingSlash: false, anchored: false });
  t.same(confinePath('a/b/.', grant, 'argument'), { rel: 'a/b', trailingSlash: true, anchored: false });
  t.same(confinePath('.', grant, 'argument'), { rel: '', trailingSlash: true, anchored: false });
  t.same(confinePath('./-weird', grant, 'argument'), { rel: '-weird', trailingSlash: false, anchored: false });
  t.same(confinePath('.rsync-partial', grant, '--partial-dir'), { rel: '.rsync-partial', trailingSlash: false, anchored: false });
  t.same(confinePath('a..b/..c', grant, 'argument').rel, 'a..b/..c', '.. inside a name is fine');
});

t.test('a leading / and ~ mean the root (rrsync #922, #1037)', async (t) => {
  t.same(confinePath('/', grant, 'argument'), { rel: '', trailingSlash: true, anchored: true });
  t.same(confinePath('//', grant, 'argument'), { rel: '', trailingSlash: true, anchored: true });
  t.same(confinePath('/snap', grant, '--link-dest'), { rel: 'snap', trailingSlash: false, anchored: true });
  t.same(confinePath('/etc/passwd', grant, 'argument'), { rel: 'etc/passwd', trailingSlash: false, anchored: true });
  t.same(confinePath('~', grant, 'argument'), { rel: '', trailingSlash: true, anchored: true });
  t.same(confinePath('~/x/', grant, 'argument'), { rel: 'x', trailingSlash: true, anchored: true });
  t.same(confinePath('~bob/x', grant, 'argument').rel, '~bob/x', '~user is a literal name');
});

t.test('with grant.absolute the absolute root path maps to root-relative', async (t) => {
  t.same(confinePath('/srv/backup/alice', absoluteGrant, 'argument'), { rel: '', trailingSlash: true, anchored: true });
  t.same(confinePath('/srv/backup/alice/', absoluteGrant, 'argument'), { rel: '', trailingSlash: true, anchored: true });
  t.same(confinePath('/srv/backup/alice/d/f', absoluteGrant, 'argument').rel, 'd/f');
  t.same(confinePath('/srv//backup/alice/d', absoluteGrant, 'argument').rel, 'd');
  t.same(confinePath('/srv/backup/alice2/d', absoluteGrant, 'argument').rel, 'srv/backup/alice2/d', 'a sibling prefix is not the root');
  t.same(confinePath('/srv/backup/alice/d', grant, 'argument').rel, 'srv/backup/alice/d', 'without -absolute it is just root-relative');
});

t.test('rejects escapes, NUL and over-long paths', async (t) => {
  t.throws(() => confinePath('../x', grant, '--partial-dir'), {
    code: 1,
    message: 'rrsyncd: path "../x" is outside the allowed directory (--partial-dir)',
  });
  t.throws(() => confinePath('a/../../b', grant, 'argument'), outside('argument'));
  t.throws(() => confinePath('a/..', grant, 'argument'), outside('argument'));
  t.throws(() => confinePath('/..', grant, '--link-dest'), outside('--link-dest'));
  t.throws(() => confinePath('~/../x', grant, 'argument'), outside('argument'));
  t.throws(() => confinePath('/srv/backup/alice/../bob', absoluteGrant, 'argument'), outside('argument'));
  t.throws(() => confinePath('..', defaultGrant('/'), 'argument'), outside('argument'));
  t.throws(() => confinePath('a\0b', grant, '--temp-dir'), { code: 1, message: /NUL byte \(--temp-dir\)/ });
  t.throws(() => confinePath('a/'.repeat(3000), grant, 'argument'), { code: 1, message: /too long/ });
});

t.test('error messages escape control bytes', async (t) => {
  t.equal(quoted('a\x1b[2J\x9b"'), '"a\\x1b[2J\\x9b\\x22"');
  t.equal(quoted('x'.repeat(300)).length, 2 + 200 + 3);
});
