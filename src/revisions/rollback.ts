/**
 * `rrsyncd publish --rollback [NAME]`: points `current` (or `latest`) at an earlier revision.
 * The switch is atomic: a new symlink under a temp name is renamed over the pointer, so a
 * reader of `current/` sees the old tree or the new one, never no pointer at all.
 */
import { randomBytes } from 'node:crypto';
import type { Sandbox } from '../sandbox/sandbox.js';
import { readInventory, RevisionsError } from './inventory.js';
import { parseRevisionName, pointerName, revisionsDir, type RevisionMode } from './layout.js';

export interface Rollback {
  from?: string;
  to: string;
}

/** Switches the pointer to `name`, or to the revision before the current one. */
export function rollback(sandbox: Sandbox, mode: RevisionMode, name?: string): Rollback {
  const inv = readInventory(sandbox, mode);
  const present = inv.revisions.filter((r) => r.present).map((r) => r.name);
  let to: string | undefined;
  if (name !== undefined) {
    if (!parseRevisionName(name) || !present.includes(name)) {
      throw new RevisionsError(`no revision named ${JSON.stringify(name)} (see rrsyncd revisions)`);
    }
    to = name;
  } else {
    if (inv.pointer === undefined) throw new RevisionsError(`${pointerName(mode)} does not point to a revision: name one to roll back to`);
    const at = present.indexOf(inv.pointer);
    to = at > 0 ? present[at - 1] : undefined;
    if (to === undefined) throw new RevisionsError(`no revision before ${inv.pointer} to roll back to`);
  }
  switchPointer(sandbox, mode, to);
  return { from: inv.pointer, to };
}

/** Points `latest` / `current` at revision `name` atomically (symlink to a temp name, rename). */
function switchPointer(sandbox: Sandbox, mode: RevisionMode, name: string): void {
  const pointer = pointerName(mode);
  const temp = `.${pointer}.${randomBytes(6).toString('hex')}`;
  sandbox.symlink(`${revisionsDir(mode)}/${name}`, temp);
  try {
    sandbox.rename(temp, pointer);
  } catch (err) {
    sandbox.unlink(temp);
    throw err;
  }
}
