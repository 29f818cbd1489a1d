/**
 * The grant's rrsync restrictions as change rules. Option parsing already refuses what they
 * forbid (policy/restrict.ts); here they hold whatever the engine does: -no-del allows no
 * deletion pass and no --remove-source-files, -no-overwrite lets nothing replace, modify or
 * remove an existing non-directory.
 */
import type { Grant } from '../policy/grant.js';
import { SandboxError, type Sandbox } from '../sandbox/sandbox.js';
import type { Change, ChangePolicy } from './change.js';

export function grantRules(grant: Grant, sandbox: Sandbox): ChangePolicy | null {
  const noDelete = grant.noDelete || grant.readOnly;
  if (!noDelete && !grant.noOverwrite) return null;
  const existingNonDir = (rel: string): boolean => {
    try {
      const st = sandbox.lstat(rel);
      return st !== null && st.type !== 'dir';
    } catch {
      return false;
    }
  };
  return {
    before(c: Change): void {
      if (noDelete && c.op === 'delete' && (c.purpose === 'delete' || c.purpose === 'remove-source')) {
        throw new SandboxError('EPERM', c.path, 'deleting is not allowed by this grant (-no-del)');
      }
      if (!grant.noOverwrite || c.purpose === 'temp' || c.purpose === 'partial' || c.purpose === 'backup') return;
      const replaces = c.op === 'modify' || ((c.op === 'rename' || c.op === 'link' || c.op === 'delete') && existingNonDir(c.path));
      if (replaces) throw new SandboxError('EPERM', c.path, 'replacing an existing file is not allowed by this grant (-no-overwrite)');
    },
  };
}
