/**
 * Hostile command lines (through test/pipe/server.ts's argv, as sshd would hand them over) and
 * secluded (-s) args that try to smuggle what argv may not carry. Every refusal happens before
 * the version exchange: an rrsyncd-style line on stderr and rsync's exit code 1.
 */
import t from 'tap';
import { EXIT, type Mode } from './client.js';
import { runCase } from './harness.js';

interface Cmd {
  label: string;
  args: string[];
  error: RegExp;
  code?: number;
  grant?: Record<string, unknown>;
  mode?: Mode;
}

const NOT_ALLOWED = /rrsyncd: option --[a-z-]+ is not allowed here/;

const cases: Cmd[] = [
  { label: '--server --daemon .', args: ['--server', '--daemon', '.'], error: /--daemon is not allowed/, mode: 'spawn' },
  { label: '--copy-devices', args: ['--server', '-logDtpre.iLsfxCIvu', '--copy-devices', '.', 'dst/'], error: /--copy-devices is not allowed/ },
  { label: '--write-devices', args: ['--server', '-logDtpre.iLsfxCIvu', '--write-devices', '.', 'dst/'], error: /--write-devices is not allowed/ },
  { label: '-L in a cluster (root is not /)', args: ['--server', '-logDtprLe.iLsfxCIvu', '.', 'dst/'], error: /--copy-links is not allowed/, mode: 'spawn' },
  { label: '-L on a pull', args: ['--server', '--sender', '-L', '.', 'src/'], error: /--copy-links is not allowed/ },
  { label: '-k', args: ['--server', '-rk', '.', 'dst/'], error: /--copy-dirlinks is not allowed/ },
  { label: '-K', args: ['--server', '-rK', '.', 'dst/'], error: /--keep-dirlinks is not allowed/ },
  { label: '--copy-unsafe-links', args: ['--server', '-r', '--copy-unsafe-links', '.', 'dst/'], error: /--copy-unsafe-links is not allowed/ },
  { label: '--iconv=x', args: ['--server', '-r', '--iconv=x', '.', 'dst/'], error: /iconv/ },
  { label: '-A', args: ['--server', '-rA', '.', 'dst/'], error: /ACLs/ },
  { label: '-X', args: ['--server', '-rX', '.', 'dst/'], error: /extended attributes/ },
  { label: '--debug=FILTER', args: ['--server', '-r', '--debug=FILTER', '.', 'dst/'], error: /--debug is not allowed/ },
  { label: '--log-file', args: ['--server', '-r', '--log-file=/tmp/x', '.', 'dst/'], error: /--log-file is not allowed/ },
  { label: '--max-alloc=0', args: ['--server', '-r', '--max-alloc=0', '.', 'dst/'], error: /max-alloc/ },
  { label: '--max-size=99999999999999P', args: ['--server', '-r', '--max-size=99999999999999P', '.', 'dst/'], error: /max-size/ },
  { label: '--compress-threads=257', args: ['--server', '-r', '--compress-threads=257', '.', 'dst/'], error: /compress-threads/ },
  { label: '--files-from=/etc/passwd', args: ['--server', '--sender', '-r', '--files-from=/etc/passwd', '.', 'src/'], error: /files-from/ },
  { label: '--temp-dir=../x', args: ['--server', '-r', '--temp-dir=../x', '.', 'dst/'], error: /outside the allowed directory/ },
  { label: '--backup-dir=../../x', args: ['--server', '-rb', '--backup-dir=../../x', '.', 'dst/'], error: /outside the allowed directory/ },
  { label: '--link-dest=../..', args: ['--server', '-r', '--link-dest=../..', '.', 'dst/'], error: /outside the allowed directory/ },
  { label: 'a destination outside the root', args: ['--server', '-r', '.', '../outside/'], error: /outside the allowed directory/ },
  { label: 'no "." argument', args: ['--server', '-r', 'dst/'], error: /unexpected argument|missing "\."/ },
  { label: 'unknown option', args: ['--server', '--frobnicate', '.', 'dst/'], error: /unknown option/ },
  { label: 'a bad capability string', args: ['--server', '-re.i;rm -rf /', '.', 'dst/'], error: /capability string|unexpected argument/ },
  { label: 'push to a read-only grant', args: ['--server', '-r', '.', 'dst/'], grant: { readOnly: true }, error: /read-only/ },
  { label: 'pull from a write-only grant', args: ['--server', '--sender', '-r', '.', 'src/'], grant: { writeOnly: true }, error: /write-only/ },
  { label: '--delete under -no-del', args: ['--server', '-r', '--delete', '.', 'dst/'], grant: { noDelete: true }, error: NOT_ALLOWED },
  {
    label: '100k arguments',
    args: ['--server', '-r', '.', 'dst/', ...Array.from({ length: 100_000 }, () => 'a')],
    error: /too many arguments/,
    mode: 'spawn',
  },
  {
    label: 'an exec string of 1.1 MB in 4000-byte words',
    args: ['--server', '-r', '.', 'dst/', ...Array.from({ length: 290 }, (_, i) => `${i}`.padEnd(4000, 'x'))],
    error: /command line too long/,
    mode: 'spawn',
  },
  { label: 'one 1 MB word', args: ['--server', '-r', '.', 'x'.repeat(1 << 20)], error: /too long/, mode: 'inproc' },
];

t.test('refused command lines', async (t) => {
  for (const c of cases) {
    await t.test(c.label, (t) =>
      runCase(t, { args: c.args, grant: c.grant, mode: c.mode, handshake: false, finish: { closeAfterMs: 3000 } }, () => undefined, {
        code: c.code ?? EXIT.SYNTAX,
        error: c.error,
      }).then(() => undefined),
    );
  }
});

t.test('secluded (-s) args are checked exactly like argv', async (t) => {
  const smuggled: Array<[string, string[], RegExp, number?]> = [
    ['--copy-links', ['rsync', '--copy-links', '.', 'dst/'], /--copy-links is not allowed/],
    ['-L in a cluster', ['rsync', '-rL', '.', 'dst/'], /--copy-links is not allowed/],
    ['a ../ destination', ['rsync', '-r', '.', '../outside/'], /outside the allowed directory/],
    ['an absolute destination elsewhere', ['rsync', '-r', '.', '/../outside/'], /outside the allowed directory/],
    ['--daemon', ['rsync', '--daemon', '.', 'dst/'], /--daemon is not allowed/],
    ['--sender (role flip)', ['rsync', '--sender', '.', 'src/'], /--sender may not appear/],
    ['--partial-dir=../../x', ['rsync', '-r', '--partial-dir=../../x', '.', 'dst/'], /outside the allowed directory/],
    ['a 5000-byte word', ['rsync', '-r', '.', 'y'.repeat(5000)], /too long/],
    ['an accepted set, for contrast (then EOF)', ['rsync', '-r', '.', 'dst/'], /unexpectedly closed/, EXIT.STREAMIO],
  ];
  for (const [label, words, re, code] of smuggled) {
    await t.test(label, (t) =>
      runCase(
        t,
        // the real client's command line ends after the -s cluster; everything else comes on stdin
        { args: ['--server', '-se.LsfxCIvu'], handshake: false, finish: { closeAfterMs: 3000 } },
        (c) => {
          c.protectedArgs(words);
          if (code !== undefined) c.end();
        },
        { code: code ?? EXIT.SYNTAX, error: re },
      ).then(() => undefined),
    );
  }
  await t.test('protected args flood without a terminator', (t) =>
    runCase(
      t,
      { args: ['--server', '-se.LsfxCIvu'], handshake: false, finish: { closeAfterMs: 3000 } },
      async (c) => {
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        void c.drainOutput();
        for (let i = 0; i < 64 && !c.stopped; i++) {
          chunk[chunk.length - 1] = i % 2 ? 0 : 0x61; // a NUL every other chunk: many 64 KiB words
          if (!(await c.rawPaced(chunk))) break;
        }
      },
      { code: EXIT.SYNTAX, error: /protected arg/ },
    ).then(() => undefined),
  );
  await t.test('the same refusal from the real command line (-s plus trailing words)', (t) =>
    runCase(t, { args: ['--server', '-se.LsfxCIvu', '--copy-links', '.', 'dst/'], handshake: false }, () => undefined, {
      code: EXIT.SYNTAX,
      error: /unexpected argument|not allowed/,
    }).then(() => undefined),
  );
});
