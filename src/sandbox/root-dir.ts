/**
 * A grant's root before a session opens it: a tenant root that does not exist yet is created
 * (mode 0700, owned by the service user); any other missing or unusable root is a problem that
 * the server logs with its path and the client hears about without it.
 */
import { mkdirSync, statSync } from 'node:fs';
import type { Grant } from '../policy/grant.js';

/** Undefined when the root is a usable directory (created if it may be), else what is wrong. */
export function prepareGrantRoot(grant: Grant, createIfMissing: boolean): string | undefined {
  try {
    return statSync(grant.root).isDirectory() ? undefined : 'not a directory';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' || !createIfMissing) return code ?? (err as Error).message;
  }
  try {
    mkdirSync(grant.root, { recursive: true, mode: 0o700 });
    return undefined;
  } catch (err) {
    return `cannot create: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
}
