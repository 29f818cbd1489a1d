/**
 * `rrsyncd publish --rollback [NAME]`: points `current` (or `latest`) at an earlier revision.
 * The switch is atomic: a new symlink under a temp name is renamed over the pointer, so a
 * reader of `current/` sees the old tree or the new one, never no pointer at all.
 */
import type { Sandbox } from '../sandbox/sandbox.js';
import { readInventory, RevisionsError } from './inventory.js';
import { setPointer } from './pointer.js';
import { parseRevisionName, pointerName, type RevisionMode } from './layout.js';

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
  setPointer(sandbox, mode, to);
  return { from: inv.pointer, to };
}
