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
