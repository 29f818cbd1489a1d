/**
 * `rrsyncd prune`: removes the trees of revisions no keep rule keeps. A pruned revision's
 * manifest stays (the manifests are a hash chain; a missing link would look like tampering), so
 * a pruned revision is one with a manifest and no tree. Removal never follows a symlink and
 * yields to the event loop regularly, so a server running it (the console) keeps serving.
 */
import type { Sandbox } from '../sandbox/sandbox.js';
import { readInventory, type Inventory } from './inventory.js';
import { decideKeep, type KeepDecision, type KeepRules } from './keep-rules.js';
import { revisionsDir, type RevisionMode } from './layout.js';

export interface PruneOutcome {
  inventory: Inventory;
  /** Every revision that still has a tree, with the decision. */
  decisions: KeepDecision[];
  /** Names whose trees were removed (none with dryRun). */
  removed: string[];
}

export async function prune(
  sandbox: Sandbox,
  mode: RevisionMode,
  rules: KeepRules,
  opts: { dryRun: boolean; now?: Date },
): Promise<PruneOutcome> {
  const inventory = readInventory(sandbox, mode);
  const present = inventory.revisions.filter((r) => r.present);
  const decisions = decideKeep(present, rules, opts.now ?? new Date(), inventory.pointer);
  const removed: string[] = [];
  if (!opts.dryRun) {
    for (const d of decisions) {
      if (d.keep) continue;
      await sandbox.removeTreeYielding(`${revisionsDir(mode)}/${d.name}`);
      removed.push(d.name);
    }
  }
  return { inventory, decisions, removed };
}
