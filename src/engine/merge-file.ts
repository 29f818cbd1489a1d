/** Per-directory merge files (`.rsync-filter`, dir-merge rules) as both roles read them. */
import type { Sandbox } from '../sandbox/sandbox.js';

/** Merge files larger than this are not read. */
const MAX_MERGE_FILE = 1024 * 1024;

/** The merge file at `rel`, or null when it is missing, not a regular file, too large or unreadable. */
export function readMergeFile(sandbox: Sandbox, rel: string): Buffer | null {
  try {
    const st = sandbox.lstat(rel);
    if (!st || st.type !== 'file' || st.size > MAX_MERGE_FILE) return null;
    const { fd } = sandbox.openRead(rel);
    try {
      const buf = Buffer.alloc(st.size);
      sandbox.read(fd, buf, 0, st.size, 0);
      return buf;
    } finally {
      sandbox.close(fd);
    }
  } catch {
    return null;
  }
}
