import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseProtectedArgs, parseServerArgs, parseSize } from '../../src/policy/options.js';
import { splitShellWords } from '../../src/policy/shellwords.js';
import { RsyncError } from '../../src/protocol/errors.js';
import type { ServerOptions } from '../../src/policy/server-options.js';
import { CAPTURES } from '../helpers/captures.js';


interface Row {
  version: string;
  direction: 'push' | 'pull';
  clientArgs: string;
  command: string;
}

function loadRows(): Row[] {
  const rows: Row[] = [];
  for (const file of readdirSync(CAPTURES).filter((f) => /^cmdlines_.*\.md$/.test(f))) {
    for (const line of readFileSync(join(CAPTURES, file), 'latin1').split('\n')) {
      const m = /^\| (\S+) \| (push|pull) \| `(.*)` \| `(.*)` \|$/.exec(line);
      if (m === null || m[4]!.startsWith('(client refused')) continue;
      rows.push({ version: m[1]!, direction: m[2] as 'push' | 'pull', clientArgs: m[3]!, command: m[4]! });
    }
  }
  return rows;
}

const rows = loadRows();

function row(version: string, direction: 'push' | 'pull', clientArgs: string): Row {
  const found = rows.find((r) => r.version === version && r.direction === direction && r.clientArgs === clientArgs);
  if (found === undefined) throw new Error(`no capture row ${version} ${direction} ${clientArgs}`);
  return found;
}

function parseRow(version: string, direction: 'push' | 'pull', clientArgs: string): ServerOptions {
  return parseServerArgs(splitShellWords(row(version, direction, clientArgs).command));
}

function parse(command: string): ServerOptions {
  return parseServerArgs(command.split(' '));
}

function syntaxError(message: string | RegExp): { name: string; code: number; message: string | RegExp } {
  return { name: 'RsyncError', code: 1, message };
}

t.test('every captured command line parses (except the deliberate -M--foo)', async (t) => {
  t.ok(rows.length > 1200, `loaded ${rows.length} rows`);
  const versions = new Set(rows.map((r) => r.version));
  t.same([...versions].sort(), ['2.6.9', '3.0.9', '3.1.3', '3.2.7', '3.4.1', '3.5.0', 'openrsync']);
  let parsed = 0;
  for (const r of rows) {
    const argv = splitShellWords(r.command);
    if (r.clientArgs === '-a -M--foo') {
      t.throws(() => parseServerArgs(argv), syntaxError('rsync: on remote machine: --foo: unknown option'));
      continue;
    }
    try {
      const opts = parseServerArgs(argv);
      t.equal(opts.sender, r.direction === 'pull', `${r.version} ${r.direction} ${r.clientArgs}: sender`);
      parsed++;
    } catch (err) {
      t.fail(`${r.version} ${r.direction} ${r.clientArgs}: ${r.command}: ${(err as Error).message}`);
    }
  }
  t.ok(parsed > 1200);
});

t.test('archive cluster with capability string', async (t) => {
  const o = parseRow('3.5.0', 'push', '-avv');
  t.equal(o.verbose, 2);
  t.ok(o.links && o.owner && o.group && o.devices && o.specials && o.times && o.perms && o.recursive);
  t.equal(o.clientInfo, '.iLsfxCIvu');
  t.same(o.args, ['dst/']);
  t.notOk(o.sender);
  t.same(o.given, ['verbose', 'links', 'owner', 'group', 'devices', 'times', 'perms', 'recursive']);
  const pull = parseRow('3.5.0', 'pull', '-a --delete-after');
  t.ok(pull.sender);
  t.equal(pull.clientInfo, '.LsfxCIvu');
  t.same(pull.args, ['src/']);
  t.equal(parse('rsync --server -vlogDtpre.iLsfxCIvu . x').clientInfo, '.iLsfxCIvu');
  t.equal(parseRow('2.6.9', 'push', '-a').clientInfo, undefined);
});

t.test('openrsync separate short options and long spellings', async (t) => {
  const o = parseRow('openrsync', 'push', '-avv');
  t.equal(o.verbose, 2);
  t.ok(o.links && o.owner && o.group && o.devices && o.recursive && o.times && o.perms);
  t.equal(parseRow('openrsync', 'push', '-a --delete').deleteTiming, 'before');
  t.ok(parseRow('openrsync', 'pull', '-a --delete').deleteMode);
  t.ok(parseRow('openrsync', 'push', '-a --existing').existing);
  const b = parseRow('openrsync', 'push', '-a -b --backup-dir=bak --suffix=.old');
  t.equal(b.suffix, '.old');
  t.equal(b.backupDir, 'bak');
  t.ok(b.backup);
  t.same(parseRow('openrsync', 'push', '-a --link-dest=/x').linkDest, ['/x']);
  t.ok(parseRow('openrsync', 'push', '-aR').relative);
  const dirs = parseServerArgs('rsync --server -g -l -o -p -D -r -t -v --dirs . /p'.split(' '));
  t.ok(dirs.dirs);
  t.same(dirs.args, ['/p']);
});

t.test('delete timings', async (t) => {
  const plain = parseRow('3.5.0', 'push', '-a --delete');
  t.ok(plain.deleteMode);
  t.equal(plain.deleteTiming, undefined);
  t.equal(parseRow('2.6.9', 'push', '-a --delete-after').deleteTiming, 'after');
  t.equal(parseRow('3.5.0', 'push', '-a --delete-delay').deleteTiming, 'delay');
  t.equal(parseRow('3.5.0', 'push', '-a --delete-before').deleteTiming, 'before');
  const excl = parseRow('3.5.0', 'push', '-a --delete-excluded --exclude=*.o');
  t.ok(excl.deleteMode && excl.deleteExcluded);
  t.notOk(parseRow('3.5.0', 'pull', '-a --delete').deleteMode, 'pull --delete is client-side');
  t.equal(parse('rsync --server -r --delete-during . d').deleteTiming, 'during');
  t.ok(parse('rsync --server -r --del . d').deleteMode);
  t.throws(() => parse('rsync --server -r --delete-before --delete-after . d'), syntaxError(/delete-WHEN/));
  const missing = parseRow('3.5.0', 'push', '-a --delete-missing-args');
  t.ok(missing.deleteMissingArgs);
  t.notOk(missing.deleteMode);
  t.equal(parseRow('3.5.0', 'push', '-a --max-delete=5').maxDelete, 5);
  t.equal(parse('rsync --server -r --max-delete=-1 . d').maxDelete, 0);
});

t.test('append, compression and checksum choices', async (t) => {
  t.equal(parseRow('3.5.0', 'push', '-a --append').append, 1);
  t.equal(parseRow('3.5.0', 'push', '-a --append-verify').append, 2);
  t.equal(parse('rsync --server -r --append-verify . d').append, 2);
  t.equal(parse('rsync --server -r --append --append --append . d').append, 2);
  const z = parseRow('3.5.0', 'push', '-avz');
  t.ok(z.compress);
  t.equal(z.compressChoice, undefined);
  const zz = parseRow('3.5.0', 'push', '-a -zz');
  t.ok(zz.compress);
  t.equal(zz.compressChoice, 'zlibx');
  t.equal(parseRow('3.5.0', 'push', '-a --old-compress').compressChoice, 'zlib');
  const zc = parseRow('3.5.0', 'push', '-a --zc=zstd');
  t.equal(zc.compressChoice, 'zstd');
  t.ok(zc.compress);
  t.notOk(parse('rsync --server -r --compress-choice=none . d').compress);
  t.equal(parseRow('3.5.0', 'push', '-a -z --compress-level=9').compressLevel, 9);
  t.equal(parseRow('3.5.0', 'pull', '-a --skip-compress=gz/jpg -z').skipCompress, 'gz/jpg');
  t.equal(parseRow('3.5.0', 'push', '-a --cc=xxh64').checksumChoice, 'xxh64');
  t.equal(parse('rsync --server -r --checksum-choice=xxh3,md5 . d').checksumChoice, 'xxh3,md5');
  t.equal(parseRow('3.5.0', 'push', '-a --checksum-seed=123').checksumSeed, 123);
  t.ok(parseRow('3.5.0', 'push', '-a --checksum').checksum);
});

t.test('paths, sizes and misc values', async (t) => {
  const pd = parseRow('3.5.0', 'push', '-a --partial-dir=.rsync-partial');
  t.equal(pd.partialDir, '.rsync-partial');
  t.ok(pd.partial);
  t.same(pd.args, ['dst/']);
  t.equal(parseRow('3.5.0', 'push', '-a --max-size=1M').maxSize, 1048576);
  t.equal(parseRow('3.1.3', 'push', '-a --max-size=1M').maxSize, 1048576, '3.1 two-word 1M');
  t.equal(parseRow('3.1.3', 'push', '-a --min-size=10').minSize, 10);
  t.equal(parseRow('3.5.0', 'push', '-a --max-alloc=2G').maxAlloc, 2 * 1024 ** 3);
  t.equal(parseRow('3.5.0', 'push', '-a --bwlimit=100').bwlimit, 100 * 1024);
  t.equal(parseRow('3.5.0', 'push', '-a --timeout=30').timeout, 30);
  t.equal(parseRow('3.5.0', 'push', '-a -B 4096').blockSize, 4096);
  t.equal(parseRow('3.5.0', 'push', '-a --modify-window=2').modifyWindow, 2);
  t.equal(parse('rsync --server -r -@-1 . d').modifyWindow, -1);
  t.equal(parseRow('3.5.0', 'push', '-a --temp-dir=/tmp').tempDir, '/tmp');
  t.same(parseRow('3.5.0', 'push', '-a --link-dest=/x').linkDest, ['/x']);
  t.same(parseRow('3.5.0', 'push', '-a --compare-dest=/x').compareDest, ['/x']);
  t.same(parseRow('3.5.0', 'push', '-a --copy-dest=/x').copyDest, ['/x']);
  t.equal(parseRow('3.5.0', 'push', '-a --usermap=0:1').usermap, '0:1');
  t.equal(parseRow('3.5.0', 'push', '-a -i').logFormat, '%i');
  t.equal(parseRow('3.5.0', 'push', '-a -ii').logFormat, '%i%I');
  const ff = parseRow('3.5.0', 'pull', '-a --files-from=EXP/ff.txt');
  t.equal(ff.filesFrom, '-');
  t.ok(ff.from0 && ff.relative);
  t.notOk(ff.recursive);
  t.equal(parseRow('3.5.0', 'push', '-a --files-from=:/remote/ff.txt').filesFrom, '/remote/ff.txt');
  t.equal(parse('rsync --server -lr --inplace --no-W . d').wholeFile, false);
  t.equal(parse('rsync --server -lr --no-whole-file . d').wholeFile, false);
  t.equal(parseRow('3.5.0', 'push', '-a -W').wholeFile, true);
  t.equal(parseRow('3.5.0', 'push', '-a').wholeFile, undefined);
  t.notOk(parseRow('3.5.0', 'push', '-a --no-implied-dirs -R').impliedDirs);
  t.equal(parseRow('3.5.0', 'push', '-a -yy').fuzzy, 1, 'the 3.5.0 client sends a single y');
  t.equal(parse('rsync --server -lyyr . d').fuzzy, 2);
  t.equal(parseRow('2.6.9', 'push', '-a -y').fuzzy, 1);
  t.equal(parseRow('3.5.0', 'push', '-a -U').atimes, 1);
  t.same(parseRow('3.5.0', 'push', '-aAX').xattrs, 1);
  t.ok(parseRow('3.5.0', 'push', '-aAX').acls);
  t.ok(parseRow('3.5.0', 'push', '-an').dryRun);
  t.ok(parseRow('3.5.0', 'push', '-a -q').quiet);
  t.ok(parseRow('3.5.0', 'push', '-a --stats').stats);
  t.ok(parseRow('3.5.0', 'pull', '-a --qsort').useQsort);
  t.equal(parseRow('3.5.0', 'push', '-a --iconv=utf8,latin1').iconv, 'latin1');
  t.ok(parseRow('3.5.0', 'pull', '-a --remove-source-files').removeSourceFiles);
  const hh = parse('rsync --server -vlHHogDtpxxXXUUre.iLsfxCIvu . d');
  t.same([hh.hardLinks, hh.oneFileSystem, hh.xattrs, hh.atimes], [2, 2, 2, 2]);
  const rest = parse('rsync --server --sender -r --list-only --info=SKIP2,NAME2 --info=DEL --log-format=%o --msgs2stderr . a b');
  t.ok(rest.listOnly);
  t.same(rest.info, ['SKIP2', 'NAME2', 'DEL']);
  t.equal(rest.logFormat, '%o');
  t.equal(rest.msgs2stderr, true);
  t.same(rest.args, ['a', 'b']);
  t.equal(parse('rsync --server -r --no-msgs2stderr . d').msgs2stderr, false);
  const noR = parse('rsync --server -rd --no-r --delete . d');
  t.notOk(noR.recursive);
  t.ok(noR.dirs);
  t.notOk(parse('rsync --server -r --relative --no-relative . d').relative);
  t.notOk(parse('rsync --server -D --no-specials . d').specials);
});

t.test('everything after "." is a path, even if it looks like an option', async (t) => {
  const o = parse('rsync --server --sender -r . --delete -x ./-weird');
  t.same(o.args, ['--delete', '-x', './-weird']);
  t.notOk(o.deleteMode);
  t.equal(o.oneFileSystem, 0);
  t.same(parse('rsync --server -r .').args, []);
  t.same(parse('rsync --server -r --partial-dir . . d').args, ['d'], 'value word "." is consumed as the value');
});

t.test('protected args (-s)', async (t) => {
  const base = parseRow('3.5.0', 'push', '-a -s');
  t.ok(base.protectArgs);
  t.same(base.args, []);
  t.equal(base.clientInfo, '.iLsfxCIvu');
  const full = parseProtectedArgs(base, ['rsync', '--delete-after', '--partial-dir', '.p', '.', 'tdst/with space/']);
  t.ok(full.protectArgs && full.links && full.recursive);
  t.equal(full.deleteTiming, 'after');
  t.equal(full.partialDir, '.p');
  t.same(full.args, ['tdst/with space/']);
  t.ok(full.given.includes('protect-args') && full.given.includes('delete-after') && full.given.includes('links'));
  t.same(base.given.includes('delete-after'), false, 'base is not mutated');
  const iconv = parseServerArgs(['rsync', '--server', '-slogDtpre.iLsfxCIvu', '--iconv=latin1']);
  t.equal(iconv.iconv, 'latin1');
  t.throws(
    () => parseServerArgs(['rsync', '--server', '-slogDtpre.iLsfxCIvu', '--delete', '.', 'x']),
    syntaxError(/after -s/),
  );
  t.throws(() => parseServerArgs(['rsync', '--server', '-slr', '.', 'x']), syntaxError(/after -s/));
  t.throws(() => parseProtectedArgs(base, ['rsync', '--delete']), syntaxError(/missing "\."/));
  t.throws(() => parseProtectedArgs(base, ['rsync', '--bogus', '.']), syntaxError(/--bogus: unknown option/));
  t.throws(() => parseProtectedArgs(base, []), RsyncError);
  t.throws(() => parseProtectedArgs(base, ['rsync', '--sender', '.', 'x']), syntaxError(/--sender may not appear/));
  const pullBase = parseRow('3.5.0', 'pull', '-a -s');
  t.ok(parseProtectedArgs(pullBase, ['rsync', '--sender', '.', 'src/']).sender, 'a repeated --sender on a pull is harmless');
});

t.test('malformed and unknown options', async (t) => {
  t.throws(() => parse('rsync --server --foo . d'), syntaxError('rsync: on remote machine: --foo: unknown option'));
  t.throws(() => parse('rsync --server -rQ . d'), syntaxError('rsync: on remote machine: -Q: unknown option'));
  t.throws(() => parse('rsync --server -r d'), syntaxError(/unexpected argument/));
  t.throws(() => parse('rsync --server -r'), syntaxError(/missing "\."/));
  t.throws(() => parse('rsync --server -r --delete=yes . d'), syntaxError(/does not take an argument/));
  t.throws(() => parse('rsync --server -r --partial-dir'), syntaxError(/missing argument/));
  t.throws(() => parse('rsync --server -r --timeout=abc . d'), syntaxError(/invalid numeric/));
  t.throws(() => parse('rsync --server -r --timeout=-5 . d'), syntaxError(/out of range/));
  t.throws(() => parse('rsync --server -r --suffix=a/b . d'), syntaxError(/slashes/));
  t.throws(() => parse('rsync --server -r --stderr=bogus . d'), syntaxError(/--stderr mode/));
  t.throws(() => parse('rsync --server -re.i;L . d'), syntaxError(/capability/));
  t.throws(() => parse('ls --server -r . d'), syntaxError(/only "rsync --server/));
  t.throws(() => parse('rsync -r . d'), syntaxError(/only "rsync --server/));
  t.throws(() => parse('rsync --server -r --checksum-choice=a,b,c . d'), syntaxError(/at most two/));
  const many = ['rsync', '--server', '-r'];
  for (let i = 0; i < 21; i++) many.push(`--link-dest=/s${i}`);
  t.throws(() => parseServerArgs([...many, '.', 'd']), syntaxError(/basis directories/));
  t.equal(parseServerArgs(['/usr/bin/rsync', '--server', '-r', '.', 'd']).recursive, true);
});

t.test('hostile resource knobs and sizes', async (t) => {
  t.throws(() => parse('rsync --server -r --max-size=99999999999999P . d'), syntaxError(/--max-size value is too large/));
  t.throws(() => parse('rsync --server -r --max-alloc=0 . d'), syntaxError(/max-alloc must be greater than zero/));
  t.throws(() => parse('rsync --server -r --max-alloc=1K . d'), syntaxError(/too small/));
  t.throws(() => parse('rsync --server -r --compress-threads=257 . d'), syntaxError(/out of range/));
  const threads = parse('rsync --server -r --compress-threads=256 . d');
  t.ok(threads.given.includes('compress-threads'));
  t.throws(() => parse('rsync --server -r -B999999 . d'), syntaxError(/--block-size value is too large/));
  t.throws(() => parse('rsync --server -r --bwlimit=1b . d'), syntaxError(/too small/));
  t.equal(parse('rsync --server -r --bwlimit=0 . d').bwlimit, undefined);
  t.throws(() => parseServerArgs(['rsync', '--server', '-r', '.', 'x'.repeat(1 << 20)]), syntaxError(/argument too long/));
  const hundredK = ['rsync', '--server', '-r', '.'];
  for (let i = 0; i < 100000; i++) hundredK.push(`f${i}`);
  t.throws(() => parseServerArgs(hundredK), syntaxError(/too many arguments/));
  const wide = ['rsync', '--server', '-r', '.'];
  for (let i = 0; i < 300; i++) wide.push('y'.repeat(4000));
  t.throws(() => parseServerArgs(wide), syntaxError(/command line too long/));
  t.throws(() => parseServerArgs(['rsync', '--server', '-r', '.', 'a\0b']), syntaxError(/NUL/));
});

t.test('parseSize follows rsync suffix rules strictly', async (t) => {
  const bytes = { name: 'max-size', defaultSuffix: 'b' as const };
  t.equal(parseSize('1048576', bytes), 1048576);
  t.equal(parseSize('1K', bytes), 1024);
  t.equal(parseSize('1k', bytes), 1024);
  t.equal(parseSize('1KB', bytes), 1000);
  t.equal(parseSize('1KiB', bytes), 1024);
  t.equal(parseSize('1.5M', bytes), 1572864);
  t.equal(parseSize('1M+1', bytes), 1048577);
  t.equal(parseSize('1M-1', bytes), 1048575);
  t.equal(parseSize('2G', bytes), 2 * 1024 ** 3);
  t.equal(parseSize('1T', bytes), 1024 ** 4);
  t.equal(parseSize('1P', bytes), 1024 ** 5);
  t.equal(parseSize('100', { name: 'bwlimit', defaultSuffix: 'K' }), 102400);
  for (const bad of ['', 'M', '1X', '1MiBx', '-1', '1 M', '0x10', '1e9', '1Mb+2', '8P']) {
    t.throws(() => parseSize(bad, bytes), RsyncError, `refuses ${JSON.stringify(bad)}`);
  }
});
