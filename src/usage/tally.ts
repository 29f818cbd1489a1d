/**
 * What the usage ledger counts, entry by entry: every name below the root is an entry (files,
 * directories, symlinks, specials, each hard link); bytes are a regular file's size once per
 * inode plus each symlink's target length. Directories and specials have no bytes.
 */
import type { EntryStat } from '../sandbox/sandbox.js';

export interface UsageTotals {
  bytes: number;
  entries: number;
}

export class Tally implements UsageTotals {
  bytes = 0;
  entries = 0;
  /** Multi-linked inodes seen so far: their size, link count and how many of their names were seen. */
  private readonly links = new Map<string, { size: number; nlink: number; seen: number }>();

  add(st: EntryStat): void {
    this.entries++;
    if (st.type === 'symlink') this.bytes += st.size;
    else if (st.type === 'file') {
      if (st.nlink <= 1) this.bytes += st.size;
      else {
        const key = `${st.dev}:${st.ino}`;
        const known = this.links.get(key);
        if (known) known.seen++;
        else {
          this.bytes += st.size;
          this.links.set(key, { size: st.size, nlink: st.nlink, seen: 1 });
        }
      }
    }
  }

  /** Bytes that removing everything tallied frees: an inode with a name elsewhere keeps its data. */
  freedBytes(): number {
    let kept = 0;
    for (const l of this.links.values()) if (l.seen < l.nlink) kept += l.size;
    return this.bytes - kept;
  }
}
