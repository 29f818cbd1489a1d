/**
 * Targets for the client's words: the SSH exec command string, the server argv, and the
 * secluded (-s) args streamed after it.
 */
import { readProtectedArgs } from '../../src/engine/handshake.js';
import { defaultGrant, type Grant } from '../../src/policy/grant.js';
import { parseProtectedArgs, parseServerArgs } from '../../src/policy/options.js';
import { applyGrant } from '../../src/policy/restrict.js';
import { isRsyncServerArgv, splitShellWords } from '../../src/policy/shellwords.js';
import { knobs, readerOf, type Target } from '../harness.js';

/** Command lines of stock clients (rsync 2.6.9 .. 3.5.0, openrsync) and some rare options. */
const COMMANDS = [
  'rsync --server -vlogDtpre.iLsfxCIvu . dst/',
  'rsync --server --sender -vlogDtpre.iLsfxCIvu . src/',
  'rsync --server -logDtpr . d',
  'rsync --server -vlHogDtprze.iLsfxCIvu --delete --partial-dir=.p --backup-dir=b --suffix=~ . d',
  'rsync --server -r --delete-during --max-delete=3 --compress-choice=zstd --checksum-choice=xxh3,md5 . d',
  'rsync --server --sender -r --list-only --info=SKIP2,NAME2 --log-format=%o . a b',
  'rsync --server -lyyr --inplace --no-W -B2048 -@-1 --min-size=1K --max-size=2G . d',
  'rsync --server -slogDtpre.iLsfxCIvu',
  'rsync --server -r --files-from=- --from0 --link-dest=../x --compare-dest=y . d',
  'rsync --server -rR --mkpath --temp-dir=t --chmod=Du+w,F644 --timeout=30 --bwlimit=1m . d',
];

const OPTION_WORDS = [
  '--server', '--sender', '--delete', '--delete-excluded', '--partial-dir=', '--backup-dir=', '--temp-dir=', '--link-dest=',
  '--copy-dest=', '--compare-dest=', '--files-from=', '--from0', '--compress-choice=', '--compress-level=', '--checksum-choice=',
  '--checksum-seed=', '--max-delete=', '--max-size=', '--min-size=', '--block-size=', '--modify-window=', '--chmod=', '--suffix=',
  '--timeout=', '--bwlimit=', '--iconv=', '--info=', '--debug=', '--log-format=', '--out-format=', '--usermap=', '--groupmap=',
  '--chown=', '--skip-compress=', '--remove-source-files', '--no-', '--inplace', '--append-verify', '--fake-super', '-M',
  '-e.iLsfxCIvu', '-s', '-z', '-B', '-@', '-H', '-R', '-x', '.', '/', '..', '../', "'", '"', '\\', ';', '=', ',',
];
const DICT = OPTION_WORDS.map((w) => Buffer.from(w, 'latin1'));

const ROOT = '/srv/fuzz-root';

/** The grant a knob byte selects: the default, or with one or more rrsync restrictions. */
function grantOf(k: number): Grant {
  const g = defaultGrant(ROOT);
  g.readOnly = (k & 1) !== 0;
  g.writeOnly = (k & 2) !== 0 && !g.readOnly;
  g.noDelete = (k & 4) !== 0 || g.readOnly;
  g.noOverwrite = (k & 8) !== 0;
  g.munge = (k & 16) !== 0;
  g.absolute = (k & 32) !== 0;
  if (k & 64) g.extraAllowedOptions = ['copy-links', 'keep-dirlinks'];
  if (k & 128) g.deniedOptions = ['delete', 'compress'];
  return g;
}

export const execCommand: Target = {
  name: 'exec-command',
  maxLen: 1024,
  dict: DICT,
  run(data) {
    const { k, rest } = knobs(data, 1);
    const argv = splitShellWords(rest.toString('latin1'));
    if (!isRsyncServerArgv(argv)) return;
    applyGrant(parseServerArgs(argv), grantOf(k[0]));
  },
  seeds: () => COMMANDS.flatMap((c, i) => [Buffer.from([i * 37, ...Buffer.from(c)]), Buffer.from(`\x00${c.replace(' . ', " '.' \"$x\" ")}`, 'latin1')]),
};

/** argv words separated by newlines (NUL stays possible inside a word). */
export const serverArgs: Target = {
  name: 'server-args',
  maxLen: 1024,
  dict: DICT,
  run(data) {
    const { k, rest } = knobs(data, 2);
    const words = rest.toString('latin1').split('\n');
    const argv = k[1] & 1 ? words : ['rsync', '--server', ...words];
    applyGrant(parseServerArgs(argv), grantOf(k[0]));
  },
  seeds: () => COMMANDS.map((c, i) => Buffer.from([i * 29, 0, ...Buffer.from(c.split(' ').slice(2).join('\n'))])),
};

const SECLUDED_BASE = ['rsync', '--server', '-slogDtpre.iLsfxCIvu'];

/** The -s stream: NUL-terminated words ending with an empty one, parsed on top of the argv. */
export const secludedArgs: Target = {
  name: 'secluded-args',
  maxLen: 1024,
  dict: [...DICT, Buffer.of(0), Buffer.of(0, 0)],
  async run(data) {
    const { k, rest } = knobs(data, 1);
    const base = parseServerArgs(k[0] & 1 ? [...SECLUDED_BASE.slice(0, 2), '--sender', SECLUDED_BASE[2]] : SECLUDED_BASE);
    const stream = await readProtectedArgs(readerOf(rest));
    applyGrant(parseProtectedArgs(base, stream), grantOf(k[0] >> 1));
  },
  seeds: () =>
    COMMANDS.map((c, i) => {
      const words = ['rsync', ...c.split(' ').slice(2)].filter((w) => w !== '--sender' && !w.startsWith('-s'));
      return Buffer.from([(i * 2) | (c.includes('--sender') ? 1 : 0), ...Buffer.from(`${words.join('\0')}\0\0`, 'latin1')]);
    }),
};
