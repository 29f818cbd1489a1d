/**
 * What a client may ask of a revisions root (docs/revisions.md), applied after the grant's own
 * checks. A push always writes the new revision: its destination is mapped into the staging
 * directory and the previous revision becomes its only --link-dest. Options that would read or
 * write outside the new revision, or write into an existing inode, are refused or rewritten.
 */
import { ExitCode, RsyncError } from '../protocol/errors.js';
import type { Grant } from '../policy/grant.js';
import { confinePath } from '../policy/paths.js';
import type { ServerOptions } from '../policy/server-options.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import { STAGING_DIR, type RevisionMode } from './layout.js';
import type { StagedRevision } from './staging.js';

function refused(option: string, mode: RevisionMode): RsyncError {
  return new RsyncError(`rrsyncd: option ${option} is not allowed here (${mode} mode: every push builds a new revision)`, ExitCode.SYNTAX);
}

function join(dir: string, rel: string): string {
  return rel === '' ? dir : `${dir}/${rel}`;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** Refuses what a revision push cannot honour; --inplace becomes a normal temp-and-rename write. */
function checkPushOptions(opts: ServerOptions, grant: Grant, mode: RevisionMode): void {
  if (opts.linkDest.length) throw refused('--link-dest', mode);
  if (opts.copyDest.length) throw refused('--copy-dest', mode);
  if (opts.compareDest.length) throw refused('--compare-dest', mode);
  if (opts.backupDir !== undefined) throw refused('--backup-dir', mode);
  // --append sends only the tail of each file: the rest would have to be in the new file already.
  if (opts.append > 0) throw refused(opts.append > 1 ? '--append-verify' : '--append', mode);
  // Relative ones stay below each file's directory (or the destination): inside the revision.
  if (opts.tempDir !== undefined && confinePath(opts.tempDir, grant, '--temp-dir').anchored) throw refused('--temp-dir with an absolute path', mode);
  if (opts.partialDir !== undefined && confinePath(opts.partialDir, grant, '--partial-dir').anchored) {
    throw refused('--partial-dir with an absolute path', mode);
  }
  if (opts.args.length > 1) throw new RsyncError('rrsyncd: a push names one destination', ExitCode.SYNTAX);
}

/** A directory of the previous revision, or null (missing, not a directory, behind a symlink). */
function dirIn(sandbox: Sandbox, rel: string): string | null {
  try {
    return sandbox.lstat(rel)?.type === 'dir' ? rel : null;
  } catch {
    return null;
  }
}

/**
 * The push's options with its destination inside the staging revision and the previous
 * revision as --link-dest. Makes the destination's parent directories in the staging revision,
 * so that `host:a/b/` works as it would against the previous revision's layout.
 */
export function revisionPushOptions(opts: ServerOptions, grant: Grant, staged: StagedRevision, sandbox: Sandbox): ServerOptions {
  checkPushOptions(opts, grant, staged.mode);
  const dest = confinePath(opts.args[0] ?? '.', grant, 'argument');
  if (dest.rel !== '') sandbox.mkdirp(join(staged.stagingRel, parentOf(dest.rel)), 0o755);
  const result: ServerOptions = { ...opts, inplace: false };
  result.args = [`/${join(staged.stagingRel, dest.rel)}${dest.trailingSlash ? '/' : ''}`];
  if (staged.previousRel !== null) {
    // The reference resolves --link-dest against the destination directory, which for a
    // single file is the destination's parent.
    const basis = dirIn(sandbox, join(staged.previousRel, dest.rel)) ?? dirIn(sandbox, join(staged.previousRel, parentOf(dest.rel)));
    if (basis !== null) result.linkDest = [`/${basis}`];
  }
  return result;
}

/** A pull sees the revisions root, except the staging place; it never removes anything. */
export function revisionPullOptions(opts: ServerOptions, grant: Grant, mode: RevisionMode): ServerOptions {
  if (opts.removeSourceFiles) throw new RsyncError(`rrsyncd: option --remove-source-files is not allowed here (${mode} mode: revisions are read-only)`, ExitCode.SYNTAX);
  for (const arg of opts.args) {
    const first = confinePath(arg, grant, 'argument').rel.split('/')[0];
    if (first === STAGING_DIR) throw new RsyncError(`rrsyncd: ${STAGING_DIR} is not readable`, ExitCode.SYNTAX);
  }
  return opts;
}
