/**
 * A tree's usage counted the way the usage ledger documents it (src/usage/tally.ts), straight
 * from the disk: every name below `root` is an entry; bytes are a regular file's size once per
 * inode plus each symlink's target length. Like `du --apparent-size -b` without directories.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export function diskUsage(root: string): { bytes: number; entries: number } {
  let bytes = 0;
  let entries = 0;
  const inodes = new Set<bigint>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = lstatSync(p, { bigint: true });
      entries++;
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) bytes += Number(st.size);
      else if (st.isFile() && !inodes.has(st.ino)) {
        inodes.add(st.ino);
        bytes += Number(st.size);
      }
    }
  };
  walk(root);
  return { bytes, entries };
}
