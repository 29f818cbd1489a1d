/**
 * Parsing of the `rsync --server ...` command line (and of protected args read from the stream)
 * into ServerOptions, popt-style: short options clustered or separate, long options with `=value`
 * or the value as the next word. Everything after the `.` argument is a path.
 */
import { ExitCode, RsyncError } from '../protocol/errors.js';
import type { DeleteTiming, ServerOptions } from './server-options.js';
import { quoted } from '../printable.js';

const MAX_ARGS = 10000;
const MAX_ARG_BYTES = 4096;
const MAX_COMMAND_BYTES = 1 << 20;
/** rsync's MAX_BASIS_DIRS: at most this many --compare-dest/--copy-dest/--link-dest. */
const MAX_BASIS_DIRS = 20;
/** rsync's MAX_BLOCK_SIZE for protocol >= 30. */
const MAX_BLOCK_SIZE = 128 * 1024;
const MIN_MAX_ALLOC = 1024 * 1024;
const INT32_MAX = 0x7fffffff;
const INT32_MIN = -0x80000000;

export function defaultServerOptions(): ServerOptions {
  return {
    sender: false, protectArgs: false, verbose: 0, quiet: false, dryRun: false, listOnly: false,
    stats: false, info: [], recursive: false, dirs: false, relative: false, impliedDirs: true,
    links: false, copyLinks: false, copyDirlinks: false, copyUnsafeLinks: false, safeLinks: false,
    mungeLinks: false, keepDirlinks: false, hardLinks: 0, perms: false, executability: false,
    owner: false, group: false, numericIds: false, devices: false, specials: false, times: false,
    atimes: 0, crtimes: false, omitDirTimes: false, omitLinkTimes: false, acls: false, xattrs: 0,
    oneFileSystem: 0, pruneEmptyDirs: false, checksum: false, ignoreTimes: false, sizeOnly: false,
    update: false, existing: false, ignoreExisting: false, modifyWindow: 0, sparse: false,
    inplace: false, append: 0, partial: false, delayUpdates: false, fsync: false, preallocate: false,
    backup: false, compareDest: [], copyDest: [], linkDest: [], fuzzy: 0, mkpath: false,
    deleteMode: false, deleteExcluded: false, deleteMissingArgs: false, ignoreMissingArgs: false,
    force: false, ignoreErrors: false, removeSourceFiles: false, compress: false, from0: false,
    cvsExclude: false, useQsort: false, timeout: 0, super: false, openNoatime: false,
    fakeSuper: false, given: [], args: [],
  };
}

// ---------------------------------------------------------------------------------------------
// Option table

type Apply = (o: ServerOptions, value: string, spelling: string) => void;

interface OptionSpec {
  /** Canonical long name recorded in ServerOptions.given. */
  name: string;
  takesValue: boolean;
  apply: Apply;
}

const LONG = new Map<string, OptionSpec>();
const SHORT = new Map<string, OptionSpec>();

function flag(name: string, apply: (o: ServerOptions) => void, letter?: string): void {
  register(name, { name, takesValue: false, apply: (o) => apply(o) }, letter);
}

function valued(name: string, apply: Apply, letter?: string): void {
  register(name, { name, takesValue: true, apply }, letter);
}

/** A flag with its `no-` negation(s); the negations get their own canonical names. */
function toggle(
  name: string,
  apply: (o: ServerOptions, on: boolean) => void,
  letter?: string,
  negations: string[] = [`no-${name}`],
): void {
  flag(name, (o) => apply(o, true), letter);
  const [canonicalNo, ...aliases] = negations;
  if (canonicalNo === undefined) return;
  flag(canonicalNo, (o) => apply(o, false));
  for (const alias of aliases) LONG.set(alias, spec(canonicalNo));
}

function register(name: string, optionSpec: OptionSpec, letter?: string): void {
  LONG.set(name, optionSpec);
  if (letter !== undefined) SHORT.set(letter, optionSpec);
}

function alias(spelling: string, canonical: string): void {
  LONG.set(spelling, spec(canonical));
}

function spec(name: string): OptionSpec {
  const found = LONG.get(name);
  if (found === undefined) throw new Error(`option table: ${name} is not defined`);
  return found;
}

function setDelete(o: ServerOptions, timing: DeleteTiming | undefined): void {
  if (timing !== undefined && o.deleteTiming !== undefined && o.deleteTiming !== timing) {
    throw syntax('rsync: You may not combine multiple --delete-WHEN options.');
  }
  o.deleteMode = true;
  if (timing !== undefined) o.deleteTiming = timing;
}

function pushBasisDir(list: string[], value: string, spelling: string): void {
  if (list.length >= MAX_BASIS_DIRS) {
    throw syntax(`rsync: ERROR: at most ${MAX_BASIS_DIRS} basis directories may be specified (--${spelling})`);
  }
  list.push(value);
}

function defineOptions(): void {
  flag('server', () => undefined);
  flag('sender', (o) => { o.sender = true; });
  toggle('protect-args', (o, on) => { o.protectArgs = on; }, 's', ['no-protect-args', 'no-s', 'no-secluded-args']);
  alias('secluded-args', 'protect-args');
  flag('daemon', () => undefined);

  flag('verbose', (o) => { o.verbose++; }, 'v');
  flag('no-verbose', (o) => { o.verbose = 0; });
  alias('no-v', 'no-verbose');
  flag('quiet', (o) => { o.quiet = true; }, 'q');
  flag('dry-run', (o) => { o.dryRun = true; }, 'n');
  flag('list-only', (o) => { o.listOnly = true; });
  flag('stats', (o) => { o.stats = true; });
  toggle('human-readable', () => undefined, 'h', ['no-human-readable', 'no-h']);
  valued('log-format', (o, v) => { o.logFormat = v; });
  valued('info', (o, v) => { o.info.push(...v.split(',').filter((w) => w !== '')); });
  valued('debug', () => undefined);
  valued('stderr', (o, v) => { o.msgs2stderr = parseStderrMode(v); });
  flag('msgs2stderr', (o) => { o.msgs2stderr = true; });
  flag('no-msgs2stderr', (o) => { o.msgs2stderr = false; });
  valued('log-file', () => undefined);
  valued('log-file-format', () => undefined);

  flag('archive', (o) => {
    o.recursive = o.links = o.perms = o.times = o.group = o.owner = o.devices = o.specials = true;
  }, 'a');
  toggle('recursive', (o, on) => { o.recursive = on; }, 'r', ['no-r', 'no-recursive']);
  toggle('dirs', (o, on) => { o.dirs = on; }, 'd', ['no-dirs', 'no-d']);
  toggle('relative', (o, on) => { o.relative = on; }, 'R', ['no-relative', 'no-R']);
  toggle('implied-dirs', (o, on) => { o.impliedDirs = on; }, undefined, ['no-implied-dirs', 'no-i-d']);
  alias('i-d', 'implied-dirs');
  toggle('links', (o, on) => { o.links = on; }, 'l', ['no-links', 'no-l']);
  flag('copy-links', (o) => { o.copyLinks = true; }, 'L');
  flag('copy-dirlinks', (o) => { o.copyDirlinks = true; }, 'k');
  flag('copy-unsafe-links', (o) => { o.copyUnsafeLinks = true; });
  flag('safe-links', (o) => { o.safeLinks = true; });
  toggle('munge-links', (o, on) => { o.mungeLinks = on; });
  flag('keep-dirlinks', (o) => { o.keepDirlinks = true; }, 'K');
  flag('hard-links', (o) => { o.hardLinks++; }, 'H');
  flag('no-hard-links', (o) => { o.hardLinks = 0; });
  alias('no-H', 'no-hard-links');
  toggle('perms', (o, on) => { o.perms = on; }, 'p', ['no-perms', 'no-p']);
  flag('executability', (o) => { o.executability = true; }, 'E');
  toggle('owner', (o, on) => { o.owner = on; }, 'o', ['no-owner', 'no-o']);
  toggle('group', (o, on) => { o.group = on; }, 'g', ['no-group', 'no-g']);
  toggle('numeric-ids', (o, on) => { o.numericIds = on; });
  valued('usermap', (o, v) => { o.usermap = v; });
  valued('groupmap', (o, v) => { o.groupmap = v; });
  flag('devices', (o) => { o.devices = true; o.specials = true; }, 'D');
  flag('no-devices', (o) => { o.devices = false; });
  flag('no-D', (o) => { o.devices = false; o.specials = false; });
  toggle('specials', (o, on) => { o.specials = on; });
  flag('copy-devices', () => undefined);
  toggle('write-devices', () => undefined);
  toggle('times', (o, on) => { o.times = on; }, 't', ['no-times', 'no-t']);
  flag('atimes', (o) => { o.atimes++; }, 'U');
  flag('no-atimes', (o) => { o.atimes = 0; });
  alias('no-U', 'no-atimes');
  toggle('open-noatime', (o, on) => { o.openNoatime = on; });
  toggle('crtimes', (o, on) => { o.crtimes = on; }, 'N', ['no-crtimes', 'no-N']);
  toggle('omit-dir-times', (o, on) => { o.omitDirTimes = on; }, 'O', ['no-omit-dir-times', 'no-O']);
  toggle('omit-link-times', (o, on) => { o.omitLinkTimes = on; }, 'J', ['no-omit-link-times', 'no-J']);
  toggle('acls', (o, on) => { o.acls = on; }, 'A', ['no-acls', 'no-A']);
  flag('xattrs', (o) => { o.xattrs++; }, 'X');
  flag('no-xattrs', (o) => { o.xattrs = 0; });
  alias('no-X', 'no-xattrs');
  flag('one-file-system', (o) => { o.oneFileSystem++; }, 'x');
  flag('no-one-file-system', (o) => { o.oneFileSystem = 0; });
  alias('no-x', 'no-one-file-system');
  toggle('prune-empty-dirs', (o, on) => { o.pruneEmptyDirs = on; }, 'm', ['no-prune-empty-dirs', 'no-m']);
  toggle('super', (o, on) => { o.super = on; });
  flag('fake-super', (o) => { o.fakeSuper = true; });

  toggle('checksum', (o, on) => { o.checksum = on; }, 'c', ['no-checksum', 'no-c']);
  valued('checksum-choice', (o, v) => { o.checksumChoice = parseChecksumChoice(v); });
  alias('cc', 'checksum-choice');
  valued('checksum-seed', (o, v) => { o.checksumSeed = parseInteger(v, 'checksum-seed', INT32_MIN, INT32_MAX); });
  flag('ignore-times', (o) => { o.ignoreTimes = true; }, 'I');
  flag('size-only', (o) => { o.sizeOnly = true; });
  flag('update', (o) => { o.update = true; }, 'u');
  flag('existing', (o) => { o.existing = true; });
  alias('ignore-non-existing', 'existing');
  flag('ignore-existing', (o) => { o.ignoreExisting = true; });
  valued('modify-window', (o, v) => { o.modifyWindow = parseInteger(v, 'modify-window', INT32_MIN, INT32_MAX); }, '@');
  valued('min-size', (o, v) => { o.minSize = parseSize(v, { name: 'min-size', defaultSuffix: 'b' }); });
  valued('max-size', (o, v) => { o.maxSize = parseSize(v, { name: 'max-size', defaultSuffix: 'b' }); });
  valued('max-alloc', (o, v) => { o.maxAlloc = parseMaxAlloc(v); });
  toggle('whole-file', (o, on) => { o.wholeFile = on; }, 'W', ['no-W', 'no-whole-file']);
  valued('block-size', (o, v) => { o.blockSize = parseBlockSize(v); }, 'B');
  toggle('sparse', (o, on) => { o.sparse = on; }, 'S', ['no-sparse', 'no-S']);
  toggle('inplace', (o, on) => { o.inplace = on; });
  flag('append', (o) => { o.append = Math.min(o.append + 1, 2); });
  LONG.set('append-verify', { name: 'append', takesValue: false, apply: (o) => { o.append = 2; } });
  flag('no-append', (o) => { o.append = 0; });
  toggle('partial', (o, on) => { o.partial = on; });
  valued('partial-dir', (o, v) => { o.partialDir = v; o.partial = true; });
  toggle('delay-updates', (o, on) => { o.delayUpdates = on; });
  valued('temp-dir', (o, v) => { o.tempDir = v; }, 'T');
  flag('fsync', (o) => { o.fsync = true; });
  flag('preallocate', (o) => { o.preallocate = true; });
  toggle('backup', (o, on) => { o.backup = on; }, 'b');
  valued('backup-dir', (o, v) => { o.backupDir = v; o.backup = true; });
  valued('suffix', (o, v) => { o.suffix = parseSuffix(v); });
  valued('compare-dest', (o, v, s) => pushBasisDir(o.compareDest, v, s));
  valued('copy-dest', (o, v, s) => pushBasisDir(o.copyDest, v, s));
  valued('link-dest', (o, v, s) => pushBasisDir(o.linkDest, v, s));
  flag('fuzzy', (o) => { o.fuzzy++; }, 'y');
  flag('no-fuzzy', (o) => { o.fuzzy = 0; });
  alias('no-y', 'no-fuzzy');
  toggle('mkpath', (o, on) => { o.mkpath = on; });

  flag('delete', (o) => setDelete(o, undefined));
  alias('del', 'delete');
  flag('delete-before', (o) => setDelete(o, 'before'));
  flag('delete-during', (o) => setDelete(o, 'during'));
  flag('delete-delay', (o) => setDelete(o, 'delay'));
  flag('delete-after', (o) => setDelete(o, 'after'));
  flag('delete-excluded', (o) => { setDelete(o, undefined); o.deleteExcluded = true; });
  flag('delete-missing-args', (o) => { o.deleteMissingArgs = true; });
  flag('ignore-missing-args', (o) => { o.ignoreMissingArgs = true; });
  valued('max-delete', (o, v) => { o.maxDelete = Math.max(0, parseInteger(v, 'max-delete', INT32_MIN, INT32_MAX)); });
  toggle('force', (o, on) => { o.force = on; });
  toggle('ignore-errors', (o, on) => { o.ignoreErrors = on; });
  flag('remove-source-files', (o) => { o.removeSourceFiles = true; });
  flag('remove-sent-files', (o) => { o.removeSourceFiles = true; });

  flag('compress', (o) => { o.compress = true; }, 'z');
  flag('no-compress', (o) => { o.compress = false; o.compressChoice = undefined; });
  alias('no-z', 'no-compress');
  flag('old-compress', (o) => { o.compress = true; o.compressChoice = 'zlib'; });
  flag('new-compress', (o) => { o.compress = true; o.compressChoice = 'zlibx'; });
  valued('compress-choice', (o, v) => {
    o.compressChoice = parseAlgorithmName(v, 'compress-choice');
    o.compress = v !== 'none';
  });
  alias('zc', 'compress-choice');
  valued('compress-level', (o, v) => { o.compressLevel = parseInteger(v, 'compress-level', -131072, 22); });
  alias('zl', 'compress-level');
  // Accepted for compatibility and ignored: the engine never spawns compression threads.
  valued('compress-threads', (_o, v) => { parseInteger(v, 'compress-threads', 0, 256); });
  alias('zt', 'compress-threads');
  valued('skip-compress', (o, v) => { o.skipCompress = v; });

  valued('files-from', (o, v) => { o.filesFrom = v; });
  toggle('from0', (o, on) => { o.from0 = on; }, '0');
  toggle('cvs-exclude', (o, on) => { o.cvsExclude = on; }, 'C');
  flag('use-qsort', (o) => { o.useQsort = true; });
  alias('qsort', 'use-qsort');
  valued('iconv', (o, v) => { o.iconv = v; });
  flag('no-iconv', (o) => { o.iconv = undefined; });
  valued('timeout', (o, v) => { o.timeout = parseInteger(v, 'timeout', 0, INT32_MAX); });
  valued('bwlimit', (o, v) => { o.bwlimit = parseBwlimit(v); });
  valued('read-batch', () => undefined);
  valued('write-batch', () => undefined);
  valued('only-write-batch', () => undefined);
}

defineOptions();

/** Canonical long name for a short option letter (undefined for unknown letters and `e`). */
export function longNameOfLetter(letter: string): string | undefined {
  return SHORT.get(letter)?.name;
}

// ---------------------------------------------------------------------------------------------
// Value parsers

function syntax(message: string): RsyncError {
  return new RsyncError(message, ExitCode.SYNTAX);
}

function parseInteger(value: string, name: string, min: number, max: number): number {
  if (!/^[+-]?\d{1,12}$/.test(value)) throw syntax(`rsync: --${name}: invalid numeric value ${quoted(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw syntax(`rsync: --${name}: value ${value} is out of range (${min}..${max})`);
  return n;
}

interface SizeRule {
  name: string;
  /** Suffix assumed when the value has none: 'b' bytes, 'K' KiB, 'B' bytes. */
  defaultSuffix: 'b' | 'K' | 'B';
  min?: number;
  max?: number;
}

const SIZE_RE = /^(\d+(?:\.\d*)?)(?:([bBkKmMgGtTpP])(b|B|ib|iB|Ib|IB)?)?([+-]1)?$/;
const SUFFIX_POWERS: Record<string, number> = { b: 0, k: 1, m: 2, g: 3, t: 4, p: 5 };

/**
 * rsync's parse_size_arg, strictly: digits with an optional fraction, an optional K/M/G/T/P
 * suffix (powers of 1024; with a trailing B powers of 1000; iB = 1024), an optional +1/-1.
 */
export function parseSize(value: string, rule: SizeRule): number {
  const m = SIZE_RE.exec(value);
  if (m === null) throw syntax(`rsync: --${rule.name} value is invalid: ${quoted(value)}`);
  const [, digits = '', suffix = rule.defaultSuffix, unit, adjust] = m;
  const base = unit === 'b' || unit === 'B' ? 1000 : 1024;
  const power = SUFFIX_POWERS[suffix.toLowerCase()] ?? 0;
  let size = Math.trunc(Number(digits) * base ** power);
  if (adjust === '+1') size += 1;
  if (adjust === '-1') size -= 1;
  const max = rule.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(size) || size > max) {
    throw syntax(`rsync: --${rule.name} value is too large: ${quoted(value)} (max ${max})`);
  }
  if (size < (rule.min ?? 0)) {
    throw syntax(`rsync: --${rule.name} value is too small: ${quoted(value)} (min ${rule.min ?? 0})`);
  }
  return size;
}

/** rsync 3.5.0 refuses 0 (which used to mean "unlimited", CVE-2026-53794). */
function parseMaxAlloc(value: string): number {
  const size = parseSize(value, { name: 'max-alloc', defaultSuffix: 'B' });
  if (size === 0) throw syntax('rsync: --max-alloc must be greater than zero');
  if (size < MIN_MAX_ALLOC) throw syntax(`rsync: --max-alloc value is too small: ${quoted(value)} (min ${MIN_MAX_ALLOC})`);
  return size;
}

/** Bytes per second; 0 means no limit (undefined). */
function parseBwlimit(value: string): number | undefined {
  const size = parseSize(value, { name: 'bwlimit', defaultSuffix: 'K' });
  if (size === 0) return undefined;
  return parseSize(value, { name: 'bwlimit', defaultSuffix: 'K', min: 512 });
}

/** 0 means "choose automatically" (undefined). */
function parseBlockSize(value: string): number | undefined {
  const size = parseSize(value, { name: 'block-size', defaultSuffix: 'b', max: MAX_BLOCK_SIZE });
  return size === 0 ? undefined : size;
}

function parseStderrMode(value: string): boolean | undefined {
  if (value !== '' && 'errors'.startsWith(value)) return undefined;
  if (value !== '' && 'all'.startsWith(value)) return true;
  if (value !== '' && 'client'.startsWith(value)) return false;
  throw syntax(`rsync: --stderr mode ${quoted(value)} is not one of errors, all, or client`);
}

function parseAlgorithmName(value: string, name: string): string {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(value)) throw syntax(`rsync: --${name}: invalid name ${quoted(value)}`);
  return value;
}

function parseChecksumChoice(value: string): string {
  const names = value.split(',');
  if (names.length > 2) throw syntax(`rsync: --checksum-choice: at most two names are allowed: ${quoted(value)}`);
  for (const n of names) parseAlgorithmName(n, 'checksum-choice');
  return value;
}

function parseSuffix(value: string): string {
  if (value.includes('/')) throw syntax('rsync: --suffix cannot contain slashes');
  return value;
}

// ---------------------------------------------------------------------------------------------
// Command-line walking

type Mode = 'command' | 'stream';

/** Parse `['rsync','--server',('--sender')?, ...options, '.', ...paths]` (byte strings). */
export function parseServerArgs(argv: string[]): ServerOptions {
  checkArgvBounds(argv);
  const [program = '', server] = argv;
  if (!/(^|\/)rsync$/.test(program) || server !== '--server') {
    throw syntax('rrsyncd: only "rsync --server ..." commands are accepted');
  }
  const opts = defaultServerOptions();
  parseWords(argv.slice(2), opts, 'command');
  return opts;
}

/**
 * Parse protected args read from the stream (`rsync`, options, `.`, paths) on top of the options
 * from the command line (`-s...` cluster and maybe --iconv). Returns a new object.
 */
export function parseProtectedArgs(base: ServerOptions, streamArgs: string[]): ServerOptions {
  checkArgvBounds(streamArgs);
  if (streamArgs.length === 0) throw syntax('rsync: protected args are empty');
  const opts = cloneOptions(base);
  opts.args = [];
  parseWords(streamArgs.slice(1), opts, 'stream');
  // The session picked its role from the command line; the stream may not flip it.
  if (opts.sender !== base.sender) throw syntax('rsync: --sender may not appear in protected args');
  opts.protectArgs = true;
  return opts;
}

function cloneOptions(o: ServerOptions): ServerOptions {
  return {
    ...o,
    info: [...o.info],
    compareDest: [...o.compareDest],
    copyDest: [...o.copyDest],
    linkDest: [...o.linkDest],
    given: [...o.given],
    args: [...o.args],
  };
}

function checkArgvBounds(argv: string[]): void {
  if (argv.length > MAX_ARGS) throw syntax(`rrsyncd: too many arguments (${argv.length}, limit ${MAX_ARGS})`);
  let total = 0;
  for (const arg of argv) {
    if (arg.length > MAX_ARG_BYTES) {
      throw syntax(`rrsyncd: argument too long (${arg.length} bytes, limit ${MAX_ARG_BYTES})`);
    }
    if (arg.includes('\0')) throw syntax('rrsyncd: argument contains a NUL byte');
    total += arg.length + 1;
  }
  if (total > MAX_COMMAND_BYTES) throw syntax(`rrsyncd: command line too long (${total} bytes, limit ${MAX_COMMAND_BYTES})`);
}

function parseWords(words: string[], opts: ServerOptions, mode: Mode): void {
  let i = 0;
  while (i < words.length) {
    const word = words[i] ?? '';
    if (word === '.') {
      opts.args = words.slice(i + 1);
      return;
    }
    if (word.startsWith('--') && word.length > 2) {
      i = parseLongOption(words, i, opts);
    } else if (word.startsWith('-') && word.length > 1 && word !== '--') {
      i = parseShortCluster(words, i, opts);
    } else {
      throw syntax(`rsync: on remote machine: unexpected argument ${quoted(word)} before "."`);
    }
    if (mode === 'command' && opts.protectArgs) {
      checkProtectedTail(words.slice(i), opts);
      return;
    }
  }
  throw syntax('rsync: on remote machine: invalid rsync-command syntax: missing "." argument');
}

/** With -s the command line ends after the cluster; only --iconv=... may follow. */
function checkProtectedTail(rest: string[], opts: ServerOptions): void {
  for (const word of rest) {
    if (!word.startsWith('--iconv=')) {
      throw syntax(`rsync: on remote machine: unexpected argument ${quoted(word)} after -s`);
    }
    applyOption(spec('iconv'), opts, word.slice('--iconv='.length), 'iconv');
  }
}

function unknownOption(word: string): RsyncError {
  const shown = quoted(word).slice(1, -1);
  return syntax(`rsync: on remote machine: ${shown}: unknown option`);
}

/** Returns the index of the next unconsumed word. */
function parseLongOption(words: string[], i: number, opts: ServerOptions): number {
  const word = words[i] ?? '';
  const eq = word.indexOf('=');
  const spelling = eq < 0 ? word.slice(2) : word.slice(2, eq);
  const optionSpec = LONG.get(spelling);
  if (optionSpec === undefined) throw unknownOption(word);
  if (!optionSpec.takesValue) {
    if (eq >= 0) throw syntax(`rsync: on remote machine: --${spelling}: option does not take an argument`);
    applyOption(optionSpec, opts, '', spelling);
    return i + 1;
  }
  if (eq >= 0) {
    applyOption(optionSpec, opts, word.slice(eq + 1), spelling);
    return i + 1;
  }
  const value = words[i + 1];
  if (value === undefined) throw syntax(`rsync: on remote machine: --${spelling}: missing argument`);
  applyOption(optionSpec, opts, value, spelling);
  return i + 2;
}

function parseShortCluster(words: string[], i: number, opts: ServerOptions): number {
  const word = words[i] ?? '';
  for (let j = 1; j < word.length; j++) {
    const letter = word.charAt(j);
    if (letter === 'e') {
      opts.clientInfo = parseClientInfo(word.slice(j + 1));
      return i + 1;
    }
    const optionSpec = SHORT.get(letter);
    if (optionSpec === undefined) throw unknownOption(`-${letter}`);
    if (!optionSpec.takesValue) {
      applyOption(optionSpec, opts, '', optionSpec.name);
      continue;
    }
    const attached = word.slice(j + 1);
    if (attached !== '') {
      applyOption(optionSpec, opts, attached, optionSpec.name);
      return i + 1;
    }
    const value = words[i + 1];
    if (value === undefined) throw syntax(`rsync: on remote machine: -${letter}: missing argument`);
    applyOption(optionSpec, opts, value, optionSpec.name);
    return i + 2;
  }
  return i + 1;
}

function parseClientInfo(value: string): string {
  if (!/^\d*\.[A-Za-z0-9_]*$/.test(value)) {
    throw syntax(`rsync: on remote machine: invalid capability string ${quoted(value)}`);
  }
  return value;
}

function applyOption(optionSpec: OptionSpec, opts: ServerOptions, value: string, spelling: string): void {
  optionSpec.apply(opts, value, spelling);
  if (optionSpec.name !== 'server' && !opts.given.includes(optionSpec.name)) opts.given.push(optionSpec.name);
}
