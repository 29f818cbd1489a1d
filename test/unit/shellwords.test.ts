import t from 'tap';
import { isRsyncServerArgv, ShellSyntaxError, splitShellWords } from '../../src/policy/shellwords.js';

t.test('splits like sh: blanks, quotes, backslashes', async (t) => {
  t.same(splitShellWords('rsync --server -vlogDtpre.iLsfxCIvu . /dest/'), ['rsync', '--server', '-vlogDtpre.iLsfxCIvu', '.', '/dest/']);
  t.same(splitShellWords("  a\t'b c'  \"d e\" "), ['a', 'b c', 'd e']);
  t.same(splitShellWords('a\\ b c\\\\d'), ['a b', 'c\\d'], 'backslash escapes a blank and itself');
  t.same(splitShellWords("x'y'\"z\""), ['xyz'], 'adjacent quoted parts join one word');
  t.same(splitShellWords("''"), [''], 'empty quotes make an empty word');
  t.same(splitShellWords('"a\\"b\\$c\\d"'), ['a"b$c\\d'], 'in double quotes backslash only escapes $ ` " \\');
  t.same(splitShellWords("'a\\b'"), ['a\\b'], 'no escapes inside single quotes');
  t.same(splitShellWords('a\\\nb'), ['ab'], 'backslash-newline is a line continuation');
  t.same(splitShellWords('$HOME *.txt ~'), ['$HOME', '*.txt', '~'], 'no expansion');
  t.same(splitShellWords('a #comment'), ['a']);
  t.same(splitShellWords('a#b'), ['a#b'], '# inside a word is literal');
});

t.test('rsync client quoting round-trips', async (t) => {
  // what rsync 3.5 sends for a remote path with spaces and quotes
  t.same(splitShellWords("rsync --server --sender -e.LsfxCIvu . dir\\ with\\ spaces/it\\'s"), [
    'rsync', '--server', '--sender', '-e.LsfxCIvu', '.', "dir with spaces/it's",
  ]);
  const bytes = Buffer.from('rsync --server . caf\u00e9', 'utf8').toString('latin1');
  t.same(splitShellWords(bytes).at(-1), Buffer.from('caf\u00e9', 'utf8').toString('latin1'), 'byte strings pass through');
});

t.test('errors', async (t) => {
  t.throws(() => splitShellWords("a 'b"), /unterminated single quote/);
  t.throws(() => splitShellWords('a "b'), /unterminated double quote/);
  t.throws(() => splitShellWords('rsync --server . x; rm -rf /'), /unquoted shell operator ';'/);
  t.throws(() => splitShellWords('a | b'), /operator '\|'/);
  t.throws(() => splitShellWords('a `id`'), /operator '`'/);
  t.same(splitShellWords("'a;b' a\\|b"), ['a;b', 'a|b'], 'quoted operators are fine');
  let err: unknown;
  try {
    splitShellWords('a "b');
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ShellSyntaxError && err.code === 1, 'an rsync-style syntax error (exit 1)');
});

t.test('isRsyncServerArgv', async (t) => {
  t.ok(isRsyncServerArgv(['rsync', '--server', '.', 'x']));
  t.ok(isRsyncServerArgv(['/usr/bin/rsync', '--server', '--sender', '.', 'x']));
  t.notOk(isRsyncServerArgv(['rsync', '--daemon']));
  t.notOk(isRsyncServerArgv(['rsync']));
  t.notOk(isRsyncServerArgv(['myrsync', '--server']));
  t.notOk(isRsyncServerArgv(['sh', '-c', 'rsync --server']));
  t.notOk(isRsyncServerArgv([]));
});
