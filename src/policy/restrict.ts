/**
 * rrsync-style restrictions (support/rrsync 3.5.0) applied to parsed server options: direction
 * (-ro/-wo), -no-del, -no-overwrite, -append-only, -munge, the option allow-list, and lexical confinement of
 * every client-named path. Called on the command line and again on protected args.
 */
import { ExitCode, RsyncError } from '../protocol/errors.js';
import type { Grant } from './grant.js';
import { longNameOfLetter } from './options.js';
import { confinePath, normalizeRoot } from './paths.js';
import type { ServerOptions } from './server-options.js';

/** rrsync's long_opts entries with class >= 0 (log-file/only-write-batch are refused below). */
const RRSYNC_LONG_OPTIONS = [
  'append', 'backup-dir', 'block-size', 'bwlimit', 'checksum-choice', 'checksum-seed',
  'compare-dest', 'compress-choice', 'compress-level', 'compress-threads', 'copy-dest',
  'copy-unsafe-links', 'delay-updates', 'delete', 'delete-after', 'delete-before', 'delete-delay',
  'delete-during', 'delete-excluded', 'delete-missing-args', 'dirs', 'existing', 'fake-super',
  'files-from', 'force', 'from0', 'fsync', 'fuzzy', 'group', 'groupmap', 'hard-links', 'iconv',
  'ignore-errors', 'ignore-existing', 'ignore-missing-args', 'ignore-times', 'info', 'inplace',
  'link-dest', 'links', 'list-only', 'log-format', 'max-alloc', 'max-delete', 'max-size',
  'min-size', 'mkpath', 'modify-window', 'msgs2stderr', 'munge-links', 'new-compress', 'no-W',
  'no-implied-dirs', 'no-msgs2stderr', 'no-r', 'no-relative', 'no-specials', 'numeric-ids',
  'old-compress', 'one-file-system', 'open-noatime', 'owner', 'partial', 'partial-dir', 'perms',
  'preallocate', 'recursive', 'remove-sent-files', 'remove-source-files', 'safe-links', 'sender',
  'server', 'size-only', 'skip-compress', 'specials', 'stats', 'stderr', 'suffix', 'super',
  'temp-dir', 'timeout', 'times', 'use-qsort', 'usermap',
];

/** rrsync's short_no_arg plus `s` (we re-check protected args) and the numeric B/@. */
const ALLOWED_LETTERS = 'ACDEHIJKLNORSUWXbcdgklmnopqrstuvxyzsB@';

const DEFAULT_ALLOWED: ReadonlySet<string> = new Set([
  ...RRSYNC_LONG_OPTIONS,
  ...[...ALLOWED_LETTERS].map((letter) => longNameOfLetter(letter) ?? letter),
]);

/** Refused whatever the grant says: features we never implement or that reach outside the root. */
const ALWAYS_DENIED: ReadonlySet<string> = new Set([
  'copy-devices', 'write-devices', 'daemon', 'debug', 'no-munge-links', 'only-write-batch',
  'read-batch', 'write-batch', 'log-file',
]);

/** Refused unless the root is `/`: they follow symlinks that may point outside it. */
const DENIED_BELOW_ROOT = ['copy-links', 'copy-dirlinks', 'keep-dirlinks', 'copy-unsafe-links'];

/** -no-overwrite: each of these can replace or consume another existing file. */
const DENIED_NO_OVERWRITE = ['log-file', 'partial-dir', 'delay-updates', 'backup-dir', 'backup'];

export function applyGrant(opts: ServerOptions, given: Grant): ServerOptions {
  // -append-only refuses and forces what -no-del and -no-overwrite do; its gateway rules do the rest
  const grant = given.appendOnly ? { ...given, noDelete: true, noOverwrite: true } : given;
  checkDirection(opts, grant);
  checkUnsupportedFeatures(opts);
  const denied = deniedOptions(grant);
  const allowed = new Set([...DEFAULT_ALLOWED, ...(grant.extraAllowedOptions ?? [])]);
  for (const name of opts.given) {
    if (denied.has(name) || !allowed.has(name)) throw notAllowed(name);
  }
  checkFilesFrom(opts);
  checkPaths(opts, grant);
  return forceGrantOptions(opts, grant);
}

function notAllowed(name: string): RsyncError {
  return new RsyncError(`rrsyncd: option --${name} is not allowed here`, ExitCode.SYNTAX);
}

function checkDirection(opts: ServerOptions, grant: Grant): void {
  if (grant.readOnly && !opts.sender) {
    throw new RsyncError('rrsyncd: sending to a read-only server is not allowed', ExitCode.SYNTAX);
  }
  if (grant.writeOnly && opts.sender) {
    throw new RsyncError('rrsyncd: reading from a write-only server is not allowed', ExitCode.SYNTAX);
  }
}

function checkUnsupportedFeatures(opts: ServerOptions): void {
  if (opts.acls) throw new RsyncError('rsync: ACLs are not supported on this server', ExitCode.SYNTAX);
  if (opts.xattrs > 0) {
    throw new RsyncError('rsync: extended attributes are not supported on this server', ExitCode.SYNTAX);
  }
  // rsync keeps --fake-super's owners, groups and special modes in user.rsync.%stat xattrs;
  // without xattr support it refuses the option, and so does this server
  if (opts.fakeSuper) {
    throw new RsyncError('rsync: --fake-super requires an rsync with extended attributes enabled', ExitCode.SYNTAX);
  }
  if (opts.iconv !== undefined) {
    throw new RsyncError('rsync: --iconv is not supported on this server (built without iconv)', ExitCode.SYNTAX);
  }
}

function deniedOptions(grant: Grant): Set<string> {
  const denied = new Set([...ALWAYS_DENIED, ...(grant.deniedOptions ?? [])]);
  if (grant.noDelete || grant.readOnly) {
    for (const name of [...RRSYNC_LONG_OPTIONS, 'del']) {
      if (name.startsWith('delete') || name.startsWith('remove')) denied.add(name);
    }
  }
  if (grant.noOverwrite) for (const name of DENIED_NO_OVERWRITE) denied.add(name);
  // The engine only follows links whose targets stay inside the root, so a grant may opt back in
  // to these by naming them in extraAllowedOptions (rrsync itself has no such opt-in).
  const optIn = new Set(grant.extraAllowedOptions ?? []);
  if (normalizeRoot(grant.root) !== '/') {
    for (const name of DENIED_BELOW_ROOT) if (!optIn.has(name)) denied.add(name);
  }
  return denied;
}

/** Only `--files-from=-` (names streamed by the client); a server-side list file is refused. */
function checkFilesFrom(opts: ServerOptions): void {
  if (opts.filesFrom !== undefined && opts.filesFrom !== '-') {
    throw new RsyncError(
      'rrsyncd: option --files-from is not allowed here (only --files-from=- is accepted)',
      ExitCode.SYNTAX,
    );
  }
}

/** Lexical check of every client-named path; the engine confines again when it uses them. */
function checkPaths(opts: ServerOptions, grant: Grant): void {
  const single: [string | undefined, string][] = [
    [opts.partialDir, '--partial-dir'],
    [opts.backupDir, '--backup-dir'],
    [opts.tempDir, '--temp-dir'],
  ];
  for (const [value, what] of single) if (value !== undefined) confinePath(value, grant, what);
  for (const dir of opts.compareDest) confinePath(dir, grant, '--compare-dest');
  for (const dir of opts.copyDest) confinePath(dir, grant, '--copy-dest');
  for (const dir of opts.linkDest) confinePath(dir, grant, '--link-dest');
  for (const arg of opts.args) confinePath(arg, grant, 'argument');
}

function forceGrantOptions(opts: ServerOptions, grant: Grant): ServerOptions {
  const result: ServerOptions = { ...opts };
  if (grant.munge) result.mungeLinks = true;
  if (grant.noOverwrite) result.ignoreExisting = true;
  return result;
}
