/**
 * rm -rf below the sandbox root, never following a symlink: every entry is unlinked relative to
 * its pinned parent directory (a symlink goes itself, never its target); unlink's EISDIR says a
 * name is a directory, which is then opened no-follow, listed once and emptied before its rmdir.
 * Directory fds come from the root's cache, so a deep tree holds a bounded number of them.
 * removeTreeYielding does the same work a few hundred operations at a time, letting the event
 * loop run between (a tree of 300 000 files must not stall every other session).
 */
import { setImmediate as yieldNow } from 'node:timers/promises';
import { SandboxError, hasCode, toSandboxError } from './errors.js';
import { joinParts, splitRel } from './paths.js';
import { readdirAt, rmdirAt, unlinkAt } from './at.js';
import type { PinnedRoot } from './resolve.js';

/** Filesystem operations between two yields. */
const OPS_PER_TURN = 256;

/** A directory being emptied: its name, and its entries once listed. */
interface Frame {
  name: string;
  names: string[] | null;
  next: number;
}

/** Unlinks `name` in dirFd; true when it is a directory (left in place). A missing name is gone. */
function unlinkUnlessDir(dirFd: number, name: string, rel: string): boolean {
  try {
    unlinkAt(dirFd, name);
    return false;
  } catch (err) {
    if (hasCode(err, 'EISDIR')) return true;
    if (hasCode(err, 'ENOENT')) return false;
    throw toSandboxError(err, 'removeTree', rel);
  }
}

/** The removal of one tree, done a bounded number of operations per step. */
class TreeRemoval {
  /** The directories from the top down to the one being emptied. */
  private readonly stack: Frame[] = [];
  private readonly parent: string[];
  private started = false;

  constructor(
    private readonly root: PinnedRoot,
    private readonly rel: string,
  ) {
    const parts = splitRel(rel);
    if (parts.length === 0) throw new SandboxError('EINVAL', rel, 'refusing to remove the root');
    this.parent = parts.slice(0, -1);
    root.invalidate(parts);
  }

  get done(): boolean {
    return this.started && this.stack.length === 0;
  }

  /** Does at most `budget` (≥ 1) operations; returns how many it did. */
  step(budget: number): number {
    if (!this.started) {
      this.started = true;
      this.removeTop();
      return 1;
    }
    const frame = this.stack[this.stack.length - 1];
    if (frame === undefined) return 0;
    const parts = this.pathOf(this.stack.length);
    if (frame.names !== null && frame.next === frame.names.length) {
      this.stack.pop();
      this.removeEmptyDir(parts);
      return 1;
    }
    return this.emptySome(frame, parts, budget);
  }

  /** Root-relative components of the first `depth` directories of the stack. */
  private pathOf(depth: number): string[] {
    return [...this.parent, ...this.stack.slice(0, depth).map((f) => f.name)];
  }

  private removeTop(): void {
    let ref;
    try {
      ref = this.root.dir(this.parent, this.rel);
    } catch (err) {
      if (hasCode(err, 'ENOENT', 'ENOTDIR')) return; // nothing there: rm -rf is content
      throw err;
    }
    try {
      const leaf = splitRel(this.rel).pop()!;
      if (unlinkUnlessDir(ref.fd, leaf, this.rel)) this.stack.push({ name: leaf, names: null, next: 0 });
    } finally {
      this.root.release(ref);
    }
  }

  /** Lists the directory once, then unlinks its entries until the budget or a subdirectory. */
  private emptySome(frame: Frame, parts: string[], budget: number): number {
    const rel = joinParts(parts);
    const ref = this.root.dir(parts, rel);
    let ops = 0;
    try {
      if (frame.names === null) {
        frame.names = this.root.guard('readdir', rel, () => readdirAt(ref.fd));
        ops++;
      }
      while (frame.next < frame.names.length && ops < budget) {
        const name = frame.names[frame.next++]!;
        ops++;
        if (unlinkUnlessDir(ref.fd, name, `${rel}/${name}`)) {
          this.stack.push({ name, names: null, next: 0 });
          break;
        }
      }
    } finally {
      this.root.release(ref);
    }
    return ops;
  }

  private removeEmptyDir(parts: string[]): void {
    this.root.invalidate(parts);
    this.root.atLeaf('removeTree', joinParts(parts), (dirFd, leaf) => rmdirAt(dirFd, leaf));
  }
}

/** rm -rf of `rel` (never the root); a missing path is not an error. */
export function removeTree(root: PinnedRoot, rel: string): void {
  const removal = new TreeRemoval(root, rel);
  while (!removal.done) removal.step(Number.POSITIVE_INFINITY);
}

/** removeTree, yielding to the event loop every OPS_PER_TURN filesystem operations. */
export async function removeTreeYielding(root: PinnedRoot, rel: string): Promise<void> {
  const removal = new TreeRemoval(root, rel);
  let left = OPS_PER_TURN;
  while (!removal.done) {
    left -= removal.step(left);
    if (left <= 0) {
      await yieldNow();
      left = OPS_PER_TURN;
    }
  }
}
