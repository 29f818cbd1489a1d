/**
 * The mode an incoming entry gets, from the sender's mode and the grant. Without `allowChown` a
 * file cannot keep its sender's owner, so on a server running as root it would land owned by root:
 * a pushed set-uid binary would become set-uid root. So without `allowChown` the set-uid and
 * set-gid bits are stripped; then the tenant's `incomingChmod` (rsyncd's "incoming chmod") is
 * applied, so an administrator who writes `u+s` there gets it: the admin's chmod decides.
 */
import { parseChmod } from './chmod.js';
import type { GrantLimits } from './grant.js';

const SET_ID_BITS = 0o6000;

export type IncomingModeFn = (mode: number, isDir: boolean) => number;

/** One entry's mode (file type bits kept): strip set-uid/set-gid unless chown is allowed, then incomingChmod. */
export function incomingMode(mode: number, isDir: boolean, limits: Pick<GrantLimits, 'allowChown' | 'incomingChmod'>): number {
  const fn = incomingModeFn(limits);
  return fn ? fn(mode, isDir) : mode;
}

/**
 * The same rule with the chmod spec parsed once, for use per entry; null when it changes nothing
 * (chown allowed and no incomingChmod). Throws on a bad incomingChmod spec.
 */
export function incomingModeFn(limits: Pick<GrantLimits, 'allowChown' | 'incomingChmod'>): IncomingModeFn | null {
  const chmod = limits.incomingChmod ? parseChmod(limits.incomingChmod) : null;
  const strip = !limits.allowChown;
  if (!strip && !chmod) return null;
  return (mode, isDir) => {
    const kept = strip ? mode & ~SET_ID_BITS : mode;
    return chmod ? chmod(kept, isDir) : kept;
  };
}
