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
  /** Multi-linked inodes seen, per device (numbers: a root of hard-linked revisions has millions). */
  private readonly seen = new Map<number, Set<number>>();
  /** With `forRemoval`: each multi-linked inode's size, link count and names seen. */
  private readonly links?: Map<string, { size: number; nlink: number; names: number }>;

  /** `forRemoval`: also answer freedBytes() (costs an object per multi-linked inode). */
  constructor(forRemoval = false) {
    if (forRemoval) this.links = new Map();
  }

  add(st: EntryStat): void {
    this.entries++;
    if (st.type === 'symlink') this.bytes += st.size;
    else if (st.type === 'file') {
      if (st.nlink <= 1) this.bytes += st.size;
      else if (this.firstName(st)) this.bytes += st.size;
    }
  }

  /** Bytes that removing everything tallied frees: an inode with a name elsewhere keeps its data. */
  freedBytes(): number {
    let kept = 0;
    for (const l of this.links?.values() ?? []) if (l.names < l.nlink) kept += l.size;
    return this.bytes - kept;
  }

  private firstName(st: EntryStat): boolean {
    if (this.links) {
      const key = `${st.dev}:${st.ino}`;
      const known = this.links.get(key);
      if (known) known.names++;
      else this.links.set(key, { size: st.size, nlink: st.nlink, names: 1 });
      return !known;
    }
    let inodes = this.seen.get(st.dev);
    if (!inodes) this.seen.set(st.dev, (inodes = new Set()));
    if (inodes.has(st.ino)) return false;
    inodes.add(st.ino);
    return true;
  }
}
