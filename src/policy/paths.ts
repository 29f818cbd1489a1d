/**
 * Confinement of client-supplied paths (transfer args, --partial-dir, --backup-dir, --temp-dir,
 * --compare/copy/link-dest, --files-from names) to a grant's root. Purely lexical: symlinks are
 * the sandbox's business. Paths are byte strings (latin1-decoded).
 */
import { ExitCode, RsyncError } from '../protocol/errors.js';
import { quoted } from '../printable.js';
import type { Grant } from './grant.js';

const MAX_PATH_BYTES = 4096;

/**
 * A confined path.
 * - `rel`: normalized path relative to the grant root; '' names the root itself. Never contains
 *   '', '.' or '..' components, never starts or ends with '/'.
 * - `trailingSlash`: the client's path ended with '/' (or '/.'), i.e. "the contents of" this
 *   directory. Always true when `rel` is '' (the root is always transferred as its contents).
 * - `anchored`: the client wrote an absolute path (or `~`), so `rel` is relative to the root.
 *   When false the path was relative; for transfer args that is also root-relative, but
 *   --partial-dir/--backup-dir/--*-dest keep their rsync meaning (relative to the destination
 *   or to each file's directory) and must not be re-anchored at the root.
 */
export interface ConfinedPath {
  rel: string;
  trailingSlash: boolean;
  anchored: boolean;
}

export function confinePath(arg: string, grant: Grant, what: string): ConfinedPath {
  rejectUnsafeBytes(arg, what);
  const rootRelative = mapAbsoluteRoot(expandTilde(arg), grant);
  const anchored = rootRelative.startsWith('/');
  const components: string[] = [];
  for (const part of rootRelative.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw outsideError(arg, what);
    components.push(part);
  }
  const rel = components.join('/');
  const trailingSlash = rel === '' || /\/\.?$/.test(rootRelative) || rootRelative === '.';
  return { rel, trailingSlash, anchored };
}

function rejectUnsafeBytes(arg: string, what: string): void {
  if (arg.includes('\0')) {
    throw new RsyncError(`rrsyncd: path ${quoted(arg)} contains a NUL byte (${what})`, ExitCode.SYNTAX);
  }
  if (arg.length > MAX_PATH_BYTES) {
    throw new RsyncError(
      `rrsyncd: path is too long (${arg.length} bytes, limit ${MAX_PATH_BYTES}) (${what})`,
      ExitCode.SYNTAX,
    );
  }
}

/** `~` and `~/...` name the root (what a login shell would expand for the account). */
function expandTilde(arg: string): string {
  if (arg === '~') return '/';
  if (arg.startsWith('~/')) return arg.slice(1);
  return arg;
}

/** With grant.absolute, `/abs/root` and `/abs/root/x` map to `/` and `/x` (root-anchored). */
function mapAbsoluteRoot(arg: string, grant: Grant): string {
  if (!grant.absolute) return arg;
  const root = normalizeRoot(grant.root);
  if (root === '/') return arg;
  const collapsed = arg.replace(/\/{2,}/g, '/');
  if (collapsed === root) return '/';
  if (collapsed.startsWith(`${root}/`)) return collapsed.slice(root.length);
  return arg;
}

/** The root without trailing slashes ('/' stays '/'). */
export function normalizeRoot(root: string): string {
  const trimmed = root.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

function outsideError(arg: string, what: string): RsyncError {
  return new RsyncError(
    `rrsyncd: path ${quoted(arg)} is outside the allowed directory (${what})`,
    ExitCode.SYNTAX,
  );
}
