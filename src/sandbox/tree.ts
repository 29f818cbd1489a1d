/** Recursive removal below a pinned directory (rm -rf that never follows a symlink). */
import { closeSync, openSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { hasCode } from './errors.js';
import { DIR_FLAGS, procPath } from './at.js';

/** Removes `leaf` in the pinned dir: recursively if it is a directory, never following symlinks. */
export function removeEntryAt(dirFd: number, leaf: string, rel: string): void {
  const path = procPath(dirFd, leaf);
  let sub: number;
  try {
    sub = openSync(path, DIR_FLAGS);
  } catch (err) {
    if (hasCode(err, 'ENOTDIR', 'ELOOP')) {
      unlinkSync(path); // a file, or a symlink (removed itself, never its target)
      return;
    }
    if (hasCode(err, 'ENOENT')) return;
    throw err;
  }
  try {
    for (const child of readdirSync(procPath(sub), { encoding: 'buffer' })) {
      const name = child.toString('latin1');
      removeEntryAt(sub, name, `${rel}/${name}`);
    }
  } finally {
    closeSync(sub);
  }
  rmdirSync(path);
}
