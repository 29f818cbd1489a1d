import t from 'tap';
import { splitRel, tempNamePrefix } from '../../src/sandbox/paths.js';
import { isUnsafeSymlink, mungeSymlink, unmungeSymlink } from '../../src/sandbox/sandbox.js';
import { nodeTimeFor, simulateLibuv, touchDate } from '../../src/sandbox/times.js';
import { splitRdev } from '../../src/sandbox/special.js';

t.test('splitRel accepts normal byte-string paths', async (t) => {
  t.same(splitRel(''), []);
  t.same(splitRel('.'), []);
  t.same(splitRel('a'), ['a']);
  t.same(splitRel('a/b/'), ['a', 'b']);
  t.same(splitRel('./a/./b'), ['a', 'b']);
  t.same(splitRel('-x/ a\nb/\xff\xfe'), ['-x', ' a\nb', '\xff\xfe']);
  t.same(splitRel('...'), ['...']);
});

t.test('splitRel rejects unsafe paths with EUNSAFE', async (t) => {
  const bad = ['/etc', 'a/../b', '..', 'a/..', 'a//b', '/', 'a\0b', 'a/\u0100', 'x'.repeat(256), ('a/'.repeat(2100))];
  for (const rel of bad) {
    t.throws(() => splitRel(rel), { name: 'SandboxError', code: 'EUNSAFE' }, JSON.stringify(rel.slice(0, 20)));
  }
  try {
    splitRel('a/../b');
  } catch (err) {
    t.match((err as Error).message, /unsafe path "a\/\.\.\/b"/);
  }
});

t.test('tempNamePrefix follows rsync get_tmpname', async (t) => {
  t.equal(tempNamePrefix('foo'), '.foo');
  t.equal(tempNamePrefix('.foo'), '.foo');
  t.equal(tempNamePrefix('foo.'), '.foo');
  t.equal(tempNamePrefix('foo', true), 'foo');
  const long = tempNamePrefix('x'.repeat(255));
  t.equal(long.length + 7, 254);
  // like rsync: when the cut lands in high-bit bytes, the whole trailing high-bit run goes
  const utf8 = Buffer.from('é'.repeat(200), 'utf8').toString('latin1');
  t.equal(tempNamePrefix('abc' + utf8), '.abc');
  t.equal(tempNamePrefix('abc' + 'x'.repeat(243) + utf8).length, 247);
});

t.test('isUnsafeSymlink: rsync unsafe_symlink + CVE-2024-12088 corpus', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['/abs', 'l', true],
    ['', 'l', true],
    ['../x', 'l', true],
    ['../x', 'd/l', false],
    ['../../x', 'd/l', true],
    ['../../x', 'a/b/l', false],
    ['a/a/a/../../../unsafe2', 'l', true],
    ['a/../b', 'd/l', true],
    ['x/..', 'l', true],
    ['..', 'd/l', false],
    ['..', 'l', true],
    ['../..//x', 'a/b/l', false],
    ['.././../x', 'a/b/l', true],
    ['./x', 'l', false],
    ['x', 'l', false],
    ['files/file1', 'safe/links/l', false],
    ['../files/file1', 'safe/links/l', false],
    ['../../unsafe/unsafefile', 'safe/links/l', false],
    ['../../../unsafe/unsafefile', 'safe/links/l', true],
  ];
  for (const [target, link, unsafe] of cases) t.equal(isUnsafeSymlink(target, link), unsafe, `${target} at ${link}`);
});

t.test('munge/unmunge', async (t) => {
  t.equal(mungeSymlink('/etc/passwd'), '/rsyncd-munged//etc/passwd');
  t.equal(unmungeSymlink('/rsyncd-munged/../x'), '../x');
  t.equal(unmungeSymlink('/rsyncd-munged/'), '/rsyncd-munged/');
  t.equal(unmungeSymlink('plain'), 'plain');
});

t.test('time conversion: Node path reaches the exact microsecond', async (t) => {
  for (const sec of [0, 1, 1_700_000_000, 2 ** 31 + 5, 2 ** 32 + 7]) {
    for (const nsec of [0, 999, 1000, 123_456_789, 999_999_999, 500_000_000]) {
      const x = nodeTimeFor({ sec, nsec }, false);
      t.not(x, null, `${sec}.${nsec}`);
      const got = simulateLibuv(x as number);
      t.same(got, { sec, nsec: nsec - (nsec % 1000) });
    }
  }
  t.equal(nodeTimeFor({ sec: -1, nsec: 0 }, false), null, 'Node turns negative times into now');
  t.equal(nodeTimeFor({ sec: 5, nsec: 1 }, true), null, 'exact mode refuses sub-µs');
  t.equal(touchDate({ sec: -6, nsec: 750_000_000 }), '@-5.250000000');
  t.equal(touchDate({ sec: 12, nsec: 5 }), '@12.000000005');
});

t.test('splitRdev (glibc encoding)', async (t) => {
  t.same(splitRdev(0x0103), { major: 1, minor: 3 });
  t.same(splitRdev(0x0801), { major: 8, minor: 1 });
  // major 300 minor 70000 → makedev = (minor&0xff)|((major&0xfff)<<8)|((minor&~0xff)<<12)|((major&~0xfff)<<32)
  const major = 300;
  const minor = 70000;
  const dev = (minor & 0xff) + ((major & 0xfff) << 8) + (minor & ~0xff) * 4096;
  t.same(splitRdev(dev), { major, minor });
});
