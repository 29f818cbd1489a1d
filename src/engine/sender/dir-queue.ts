/**
 * Incremental recursion's dir list: every directory of a sent list gets the index that
 * NDX_FLIST_OFFSET - d names, and the directories wait, depth-first in sorted order, for their
 * sub-lists (rsync's dir_flist and send_extra_file_list's walk).
 */
import { isDir } from '../../protocol/flist/entry.js';
import type { DirNode, SEntry } from './entry.js';

interface Frame {
  nodes: DirNode[];
  pos: number;
}

export class DirQueue {
  private nextDirIndex = 0;
  private readonly stack: Frame[] = [];

  /**
   * Registers a sorted list's directories in the dir list (their indexes are what
   * NDX_FLIST_OFFSET - d names) and queues them, after any still-pending siblings of `parent`'s
   * subtree, in depth-first order. Returns the number of directories.
   */
  register(sorted: SEntry[], parent: DirNode | null): number {
    const nodes: DirNode[] = [];
    let count = 0;
    let prev: DirNode | null = null;
    for (const e of sorted) {
      if (!isDir(e)) continue;
      const index = this.nextDirIndex++;
      count++;
      if (e.name === '.' || e.name.endsWith('/.')) continue;
      if (prev && prev.members[0].name === e.name) {
        prev.members.push(e);
        continue;
      }
      prev = { index, members: [e], parent };
      nodes.push(prev);
    }
    if (nodes.length > 0) this.stack.push({ nodes, pos: 0 });
    return count;
  }

  /** The next directory to send a sub-list for (depth-first), or null when all are done (EOF). */
  next(): DirNode | null {
    while (this.stack.length > 0) {
      const top = this.stack[this.stack.length - 1];
      if (top.pos < top.nodes.length) {
        const node = top.nodes[top.pos];
        top.nodes[top.pos++] = undefined as unknown as DirNode; // let it go once listed
        return node;
      }
      this.stack.pop();
    }
    return null;
  }
}
