/**
 * rrsync's single-run lock: one session at a time per root directory unless the grant says
 * -no-lock (or -ro). Held in-process and, with the native addon, as an flock(2) on the directory
 * so a real rrsync on the same host is excluded too. Best effort, not a security control.
 */
import { closeSync, openSync, realpathSync, constants } from 'node:fs';
import { nativeBinding } from './native.js';

const held = new Map<string, number>();

export interface RootLock {
  release(): void;
}

/** Takes the lock for `root`, or returns null when another session holds it. */
export function lockRoot(root: string): RootLock | null {
  const key = realpathSync(root);
  if (held.has(key)) return null;
  let fd = -1;
  try {
    fd = openSync(key, constants.O_RDONLY | constants.O_DIRECTORY);
    if (nativeBinding?.flockex && !nativeBinding.flockex(fd)) {
      closeSync(fd);
      return null;
    }
  } catch {
    if (fd >= 0) closeSync(fd);
    fd = -1;
  }
  held.set(key, fd);
  return {
    release(): void {
      const f = held.get(key);
      held.delete(key);
      if (f !== undefined && f >= 0) closeSync(f);
    },
  };
}
