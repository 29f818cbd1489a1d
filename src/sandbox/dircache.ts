import { closeSync } from 'node:fs';

/** A pinned directory fd on loan from the cache; give it back with DirCache.release. */
export interface DirRef {
  readonly fd: number;
  readonly key: string;
}

/** A cached directory fd; it is its own DirRef (no lookup to loan or return it). */
class CachedDir implements DirRef {
  refs = 0;
  dead: boolean;

  constructor(
    readonly fd: number,
    readonly key: string,
    dead: boolean,
  ) {
    this.dead = dead;
  }
}

/**
 * LRU of O_PATH directory fds keyed by root-relative path. Entries in use are never closed:
 * eviction skips them and invalidation only marks them, closing when the last user releases.
 * With capacity 0 nothing is kept: every fd is closed on release.
 */
export class DirCache {
  private readonly entries = new Map<string, CachedDir>();
  /** The most recently used entry: consecutive lookups of one directory skip the LRU update. */
  private newest: CachedDir | null = null;

  constructor(private readonly capacity: number) {}

  /** Looks up a live entry and loans it out, refreshing its LRU position. */
  acquire(key: string): DirRef | null {
    const entry = this.entries.get(key);
    if (entry === undefined) return null;
    if (entry !== this.newest) {
      this.entries.delete(key);
      this.entries.set(key, entry);
      this.newest = entry;
    }
    entry.refs++;
    return entry;
  }

  /** Adopts a freshly opened fd and loans it out. */
  adopt(key: string, fd: number): DirRef {
    const entry = new CachedDir(fd, key, this.capacity === 0);
    if (!entry.dead) {
      this.dropKey(key);
      this.entries.set(key, entry);
      this.newest = entry;
      this.evict();
    }
    entry.refs++;
    return entry;
  }

  /** Returns a loan; refs not made by this cache (the root's) are ignored. */
  release(ref: DirRef): void {
    if (!(ref instanceof CachedDir) || ref.refs === 0) return;
    ref.refs--;
    if (ref.refs === 0 && ref.dead) closeSync(ref.fd);
  }

  /** Forgets `key` and everything below it (after rename/rmdir of that directory). */
  invalidate(key: string): void {
    if (key === '') {
      this.clear();
      return;
    }
    const prefix = key + '/';
    for (const k of [...this.entries.keys()]) {
      if (k === key || k.startsWith(prefix)) this.dropKey(k);
    }
  }

  clear(): void {
    for (const k of [...this.entries.keys()]) this.dropKey(k);
  }

  get size(): number {
    return this.entries.size;
  }

  private dropKey(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    if (entry === this.newest) this.newest = null;
    entry.dead = true;
    if (entry.refs === 0) closeSync(entry.fd);
  }

  private evict(): void {
    if (this.entries.size <= this.capacity) return;
    for (const [k, entry] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      if (entry.refs === 0) this.dropKey(k);
    }
  }
}
