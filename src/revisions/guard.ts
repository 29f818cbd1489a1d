/**
 * The change rules of a revision push (docs/revisions.md): every change stays inside the staging
 * revision, whatever options the client sent; the only thing taken from outside is a hard link
 * to a file of the previous revision (--link-dest), and such a shared inode is never written,
 * truncated or given other attributes (a published revision holds it too).
 */
import { SandboxError } from '../sandbox/sandbox.js';
import type { Change, ChangePolicy } from '../gateway/change.js';
import { quoted } from '../printable.js';

function inside(rel: string, dir: string): boolean {
  return rel === dir || rel.startsWith(`${dir}/`);
}

function refuse(rel: string, why: string): SandboxError {
  return new SandboxError('EPERM', rel, `${quoted(rel)}: ${why}`);
}

/** Confines a push to `stagingRel`; `previousRel` is the published revision it links against. */
export function revisionGuard(stagingRel: string, previousRel: string | null): ChangePolicy {
  /** Staged names whose inode a published revision holds. */
  const shared = new Set<string>();
  const fromPrevious = (rel: string | undefined): boolean => rel !== undefined && previousRel !== null && inside(rel, previousRel);
  const forget = (rel: string): void => {
    for (const s of shared) if (inside(s, rel)) shared.delete(s);
  };
  return {
    before(c: Change): void {
      if (!inside(c.path, stagingRel)) throw refuse(c.path, 'outside the revision being built (revisions are append-only)');
      if (c.path === stagingRel && (c.op === 'delete' || c.op === 'rename')) throw refuse(c.path, 'the revision itself cannot be replaced');
      if (c.from !== undefined && !inside(c.from, stagingRel) && !(c.op === 'link' && fromPrevious(c.from))) {
        throw refuse(c.from, 'outside the revision being built (revisions are append-only)');
      }
      if ((c.op === 'attrs' || c.op === 'modify' || c.op === 'truncate') && shared.has(c.path)) {
        throw refuse(c.path, 'shared with a published revision: not changed in place');
      }
    },
    after(c: Readonly<Change>): void {
      if (c.op === 'link') {
        if (fromPrevious(c.from) || shared.has(c.from!)) shared.add(c.path);
      } else if (c.op === 'rename') {
        const from = c.from!;
        const moved = [...shared].filter((s) => inside(s, from));
        forget(from);
        forget(c.path);
        for (const s of moved) shared.add(c.path + s.slice(from.length));
      } else if (c.op === 'delete' || c.op === 'create' || c.op === 'symlink' || c.op === 'mknod') {
        forget(c.path);
      }
    },
  };
}

/** Pulls from a revisions root change nothing (no --remove-source-files). */
export function readOnlyGuard(): ChangePolicy {
  return {
    before(c: Change): void {
      throw refuse(c.path, 'published revisions are read-only');
    },
  };
}
