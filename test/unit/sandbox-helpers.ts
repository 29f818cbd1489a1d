import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh temp directory removed when the test ends. */
export function tmpDir(t: { teardown(fn: () => void): void }, prefix = 'sbx-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Absolute Buffer path of a byte-string rel under root (for checking with plain node:fs). */
export function abs(root: string, rel: string): Buffer {
  return Buffer.concat([Buffer.from(root + '/'), Buffer.from(rel, 'latin1')]);
}

/** Runs `work` while counting event-loop turns, and the turns in which `probe` was true. */
export async function countTurns(work: () => Promise<void>, probe: () => boolean): Promise<{ turns: number; probed: number }> {
  let turns = 0;
  let probed = 0;
  let running = true;
  const tick = (): void => {
    if (!running) return;
    turns++;
    if (probe()) probed++;
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    await work();
  } finally {
    running = false;
  }
  return { turns, probed };
}
