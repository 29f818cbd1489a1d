/**
 * `rrsyncd prune`: removes the trees of revisions no keep rule keeps. A pruned revision's
 * manifest stays (the manifests are a hash chain; a missing link would look like tampering), so
 * a pruned revision is one with a manifest and no tree. Removal never follows a symlink and
 * yields to the event loop regularly, so a server running it (the console) keeps serving.
 */
import { setImmediate as yieldNow } from 'node:timers/promises';
import type { Sandbox } from '../sandbox/sandbox.js';
import { readInventory, type Inventory } from './inventory.js';
import { decideKeep, type KeepDecision, type KeepRules } from './keep-rules.js';
import { revisionsDir, type RevisionMode } from './layout.js';

/** Filesystem operations between two yields. */
const OPS_PER_TURN = 256;

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
      await removeTreeYielding(sandbox, `${revisionsDir(mode)}/${d.name}`);
      removed.push(d.name);
    }
  }
  return { inventory, decisions, removed };
}

/** rm -rf of `rel` through the sandbox (no symlink followed), yielding every OPS_PER_TURN steps. */
async function removeTreeYielding(sandbox: Sandbox, rel: string): Promise<void> {
  let ops = 0;
  const step = async (): Promise<void> => {
    if (++ops % OPS_PER_TURN === 0) await yieldNow();
  };
  // Depth first with an explicit stack: a directory is removed once its children are.
  const stack: { rel: string; listed: boolean }[] = [{ rel, listed: false }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    await step();
    const st = sandbox.lstat(top.rel);
    if (st === null) {
      stack.pop();
    } else if (st.type !== 'dir') {
      sandbox.unlink(top.rel);
      stack.pop();
    } else if (!top.listed) {
      top.listed = true;
      for (const name of sandbox.readdir(top.rel)) stack.push({ rel: `${top.rel}/${name}`, listed: false });
    } else {
      sandbox.rmdir(top.rel);
      stack.pop();
    }
  }
}
