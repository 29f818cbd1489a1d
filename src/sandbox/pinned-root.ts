/**
 * How the sandbox reaches a path (see sandbox.ts): the held root fd, and a root-relative path
 * resolved component by component from it, each directory opened O_PATH|O_DIRECTORY|O_NOFOLLOW
 * relative to its pinned parent (never through a symlink), with an LRU of those directory fds.
 * Operations get the pinned parent of their leaf and work relative to it.
 */
import { closeSync, lstatSync } from 'node:fs';
import { DirCache, type DirRef } from './dircache.js';
import { SandboxError, hasCode, toSandboxError } from './errors.js';
import { quoted } from '../printable.js';
import { joinParts, splitRel } from './paths.js';
import { DIR_FLAGS, mkdirAt, openAt, procPath } from './at.js';

export type { DirRef } from './dircache.js';

export class PinnedRoot {
  private readonly cache: DirCache;
  private isClosed = false;

  constructor(
    readonly fd: number,
    dirCacheSize: number,
  ) {
    this.cache = new DirCache(dirCacheSize);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Closes the cached directory fds and the root fd (loaned ones when they come back). */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.cache.clear();
    closeSync(this.fd);
  }

  /** Forgets all cached directory fds. */
  dropCache(): void {
    this.cache.clear();
  }

  /** Forgets the directory `parts` and everything below it (after it was renamed or removed). */
  invalidate(parts: readonly string[]): void {
    this.cache.invalidate(joinParts(parts));
  }

  /** Gives back a DirRef that dir() loaned. */
  release(ref: DirRef): void {
    this.cache.release(ref);
  }

  /** Runs fn, refused once closed; errors become SandboxErrors naming rel. */
  guard<T>(op: string, rel: string, fn: () => T): T {
    if (this.isClosed) throw new SandboxError('EBADF', rel, `${op} ${quoted(rel)}: sandbox is closed`);
    try {
      return fn();
    } catch (err) {
      throw toSandboxError(err, op, rel);
    }
  }

  /**
   * Resolves the directory made of `parts` to a pinned fd (on loan from the cache: give it back
   * with release). With createMode, missing components are created with that mode.
   */
  dir(parts: readonly string[], rel: string, createMode?: number): DirRef {
    if (this.isClosed) throw new SandboxError('EBADF', rel, `${quoted(rel)}: sandbox is closed`);
    if (parts.length === 0) return { fd: this.fd, key: '' };
    const exact = this.cache.acquire(joinParts(parts));
    if (exact !== null) return exact;
    let depth = parts.length - 1;
    let ref: DirRef = { fd: this.fd, key: '' };
    for (; depth > 0; depth--) {
      const hit = this.cache.acquire(joinParts(parts.slice(0, depth)));
      if (hit !== null) {
        ref = hit;
        break;
      }
    }
    for (; depth < parts.length; depth++) {
      let fd: number;
      try {
        fd = this.openDirAt(ref.fd, parts, depth, rel, createMode);
      } catch (err) {
        this.cache.release(ref);
        throw err;
      }
      const next = this.cache.adopt(joinParts(parts.slice(0, depth + 1)), fd);
      this.cache.release(ref);
      ref = next;
    }
    return ref;
  }

  /** Runs fn(parentFd, leafName) with the parent pinned; the root itself is not a leaf. */
  atLeaf<T>(op: string, rel: string, fn: (dirFd: number, leaf: string) => T): T {
    const parts = splitRel(rel);
    if (parts.length === 0) throw new SandboxError('EINVAL', rel, `${op}: the root has no name`);
    const ref = this.dir(parts.slice(0, -1), rel);
    try {
      return this.guard(op, rel, () => fn(ref.fd, parts[parts.length - 1]));
    } finally {
      this.cache.release(ref);
    }
  }

  /** fn with the parents of both leaves pinned; returns both paths split. */
  atTwoLeaves(
    op: string,
    fromRel: string,
    toRel: string,
    fn: (fromDir: number, fromLeaf: string, toDir: number, toLeaf: string) => void,
  ): [string[], string[]] {
    const from = splitRel(fromRel);
    const to = splitRel(toRel);
    if (from.length === 0 || to.length === 0) throw new SandboxError('EINVAL', fromRel, `${op}: the root has no name`);
    const fromRef = this.dir(from.slice(0, -1), fromRel);
    try {
      const toRef = this.dir(to.slice(0, -1), toRel);
      try {
        this.guard(op, `${fromRel} -> ${toRel}`, () => fn(fromRef.fd, from[from.length - 1], toRef.fd, to[to.length - 1]));
      } finally {
        this.cache.release(toRef);
      }
    } finally {
      this.cache.release(fromRef);
    }
    return [from, to];
  }

  private openDirAt(parentFd: number, parts: readonly string[], depth: number, rel: string, createMode?: number): number {
    try {
      return openAt(parentFd, parts[depth], DIR_FLAGS);
    } catch (err) {
      if (createMode !== undefined && hasCode(err, 'ENOENT')) {
        try {
          mkdirAt(parentFd, parts[depth], createMode);
        } catch (mkErr) {
          if (!hasCode(mkErr, 'EEXIST')) throw toSandboxError(mkErr, 'mkdir', joinParts(parts.slice(0, depth + 1)));
        }
        return this.openDirAt(parentFd, parts, depth, rel);
      }
      if (hasCode(err, 'ENOTDIR', 'ELOOP')) throw notADirectory(parentFd, parts, depth, rel);
      throw toSandboxError(err, 'resolve', rel);
    }
  }
}

/** Explains why a component could not be opened as a directory (for the message only). */
function notADirectory(parentFd: number, parts: readonly string[], depth: number, rel: string): SandboxError {
  const component = quoted(joinParts(parts.slice(0, depth + 1)));
  let isLink = false;
  try {
    isLink = lstatSync(procPath(parentFd, parts[depth])).isSymbolicLink();
  } catch {
    // vanished again; report it as not-a-directory
  }
  return isLink
    ? new SandboxError('ELOOP', rel, `path component ${component} of ${quoted(rel)} is a symlink`)
    : new SandboxError('ENOTDIR', rel, `path component ${component} of ${quoted(rel)} is not a directory`);
}
