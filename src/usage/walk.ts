/**
 * Measuring a root for the usage ledger. The background walk never holds the event loop for more
 * than one batch of names (readdir of one directory, then lstat of BATCH names at a time, with
 * setImmediate between batches), so other sessions run while a large tenant is measured.
 * `measureSubtree` is the synchronous walk a session's own delete of a directory tree uses: it
 * costs what the removal itself costs.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { SandboxError, type Sandbox } from '../sandbox/sandbox.js';
import { Tally } from './tally.js';

/** Names lstat'ed per event-loop turn. */
const BATCH = 256;

class WalkAborted extends Error {}

/** The usage of everything below the sandbox's root (the root itself is not counted). */
export async function walkUsage(sandbox: Sandbox, signal?: AbortSignal): Promise<Tally> {
  const tally = new Tally();
  const pending = [''];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    const names = readdirQuiet(sandbox, dir);
    for (let i = 0; i < names.length; i += BATCH) {
      await nextTurn();
      if (signal?.aborted) throw new WalkAborted('walk aborted');
      const batch = names.slice(i, i + BATCH);
      tallyBatch(sandbox, dir, batch, tally, pending);
    }
  }
  return tally;
}

/** The usage of `top` and everything below it, synchronously. */
export function measureSubtree(sandbox: Sandbox, top: string): Tally {
  const tally = new Tally(true);
  const st = sandbox.lstat(top);
  if (!st) return tally;
  tally.add(st);
  if (st.type !== 'dir') return tally;
  const pending = [top];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    tallyBatch(sandbox, dir, readdirQuiet(sandbox, dir), tally, pending);
  }
  return tally;
}

function tallyBatch(sandbox: Sandbox, dir: string, names: string[], tally: Tally, pending: string[]): void {
  let stats;
  try {
    stats = sandbox.lstatChildren(dir, names);
  } catch (err) {
    if (err instanceof SandboxError) return; // the directory went away (or was swapped) meanwhile
    throw err;
  }
  stats.forEach((st, i) => {
    if (st === null || st instanceof SandboxError) return;
    tally.add(st);
    if (st.type === 'dir') pending.push(dir ? `${dir}/${names[i]}` : names[i]!);
  });
}

function readdirQuiet(sandbox: Sandbox, dir: string): string[] {
  try {
    return sandbox.readdir(dir);
  } catch (err) {
    if (err instanceof SandboxError) return [];
    throw err;
  }
}
