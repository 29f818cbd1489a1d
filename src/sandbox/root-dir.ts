/**
 * A tenant's root that does not exist yet is created on first use (mode 0700, owned by the service
 * user). Any other missing or unusable root is refused by the session (policy/root-errors.ts),
 * which tells the client without the server's path.
 */
import { mkdirSync } from 'node:fs';

/** Makes `root` (and its parents) when missing; undefined when it exists or was made, else the error code. */
export function createTenantRoot(root: string): string | undefined {
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EEXIST' ? undefined : (code ?? (err as Error).message);
  }
}
