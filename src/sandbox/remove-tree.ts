/**
 * rm -rf below the sandbox root, never following a symlink: every entry is unlinked relative to
 * its pinned parent directory (a symlink goes itself, never its target); unlink's EISDIR says a
 * name is a directory, which is then emptied (its listing read a batch at a time, never whole)
 * before its rmdir. Directory fds come from the root's cache and at most MAX_LISTINGS listings
 * are open, so a deep tree holds a bounded number of descriptors. removeTreeYielding does the
 * same work a few hundred operations at a time, letting the event loop run between (a tree of
 * 300 000 files must not stall every other session).
 */
import { opendirSync, type Dir } from 'node:fs';
import { setImmediate as yieldNow } from 'node:timers/promises';
import { SandboxError, hasCode, toSandboxError } from './errors.js';
import { joinParts, splitRel } from './paths.js';
import { procPath, rmdirAt, unlinkAt } from './at.js';
import type { PinnedRoot } from './pinned-root.js';

/** Filesystem operations between two yields. */
const OPS_PER_TURN = 256;
/** Directory entries read per getdents. */
const LISTING_BATCH = 1024;
/** Listings kept open up the tree; deeper, a parent's listing is closed and read again later. */
const MAX_LISTINGS = 16;

/** A directory being emptied: its name, its open listing, what this pass of it found. */
interface Frame {
  name: string;
  listing: Dir | null;
  seen: number;
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

/** The removal of one tree, done a bounded number of operations per step; dispose() when done. */
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
    return this.emptySome(frame, this.pathOf(this.stack.length), budget);
  }

  /** Closes the listings still open (after an error, or a sandbox closed meanwhile). */
  dispose(): void {
    for (const frame of this.stack) closeListing(frame);
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
      if (unlinkUnlessDir(ref.fd, leaf, this.rel)) this.stack.push({ name: leaf, listing: null, seen: 0 });
    } finally {
      this.root.release(ref);
    }
  }

  /**
   * Unlinks entries of the directory as its listing yields them, until the budget or a
   * subdirectory (emptied next); at the end of a listing, rmdir (or another pass, if entries
   * came in meanwhile).
   */
  private emptySome(frame: Frame, parts: string[], budget: number): number {
    const rel = joinParts(parts);
    const ref = this.root.dir(parts, rel);
    let ops = 0;
    try {
      frame.listing ??= this.root.guard('removeTree', rel, () => openListing(ref.fd));
      while (ops < budget) {
        ops++;
        const entry = this.root.guard('removeTree', rel, () => frame.listing!.readSync());
        if (entry === null) {
          closeListing(frame);
          if (this.removeDirUnlessRefilled(frame, parts)) this.stack.pop();
          break;
        }
        frame.seen++;
        const name = (entry.name as unknown as Buffer).toString('latin1');
        if (unlinkUnlessDir(ref.fd, name, `${rel}/${name}`)) {
          if (this.stack.length >= MAX_LISTINGS) closeListing(frame);
          this.stack.push({ name, listing: null, seen: 0 });
          break;
        }
      }
    } finally {
      this.root.release(ref);
    }
    return ops;
  }

  /** rmdir of an emptied directory; false when entries appeared meanwhile (list it again). */
  private removeDirUnlessRefilled(frame: Frame, parts: string[]): boolean {
    this.root.invalidate(parts);
    try {
      this.root.atLeaf('removeTree', joinParts(parts), (dirFd, leaf) => rmdirAt(dirFd, leaf));
      return true;
    } catch (err) {
      if (!hasCode(err, 'ENOTEMPTY') || frame.seen === 0) throw err;
      frame.seen = 0;
      return false;
    }
  }
}

/** The entries of the directory dirFd, read LISTING_BATCH at a time; names as bytes. */
function openListing(dirFd: number): Dir {
  // Node accepts 'buffer' here (Dirent names as Buffers) though its types say otherwise
  return opendirSync(procPath(dirFd), { bufferSize: LISTING_BATCH, encoding: 'buffer' as BufferEncoding });
}

function closeListing(frame: Frame): void {
  const listing = frame.listing;
  frame.listing = null;
  try {
    listing?.closeSync();
  } catch {
    // already closed
  }
}

/** rm -rf of `rel` (never the root); a missing path is not an error. */
export function removeTree(root: PinnedRoot, rel: string): void {
  const removal = new TreeRemoval(root, rel);
  try {
    while (!removal.done) removal.step(Number.POSITIVE_INFINITY);
  } finally {
    removal.dispose();
  }
}

/** removeTree, yielding to the event loop every OPS_PER_TURN filesystem operations. */
export async function removeTreeYielding(root: PinnedRoot, rel: string): Promise<void> {
  const removal = new TreeRemoval(root, rel);
  try {
    let left = OPS_PER_TURN;
    while (!removal.done) {
      left -= removal.step(left);
      if (left <= 0) {
        await yieldNow();
        left = OPS_PER_TURN;
      }
    }
  } finally {
    removal.dispose();
  }
}
