import { closeSync } from 'node:fs';

interface Entry {
  fd: number;
  refs: number;
  dead: boolean;
}

/** A pinned directory fd on loan from the cache; give it back with DirCache.release. */
export interface DirRef {
  readonly fd: number;
  readonly key: string;
}

/**
 * LRU of O_PATH directory fds keyed by root-relative path. Entries in use are never closed:
 * eviction skips them and invalidation only marks them, closing when the last user releases.
 * With capacity 0 nothing is kept: every fd is closed on release.
 */
export class DirCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loaned = new Map<number, Entry>();

  constructor(private readonly capacity: number) {}

  /** Looks up a live entry and loans it out, refreshing its LRU position. */
  acquire(key: string): DirRef | null {
    const entry = this.entries.get(key);
    if (entry === undefined) return null;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return this.loan(key, entry);
  }

  /** Adopts a freshly opened fd and loans it out. */
  adopt(key: string, fd: number): DirRef {
    const entry: Entry = { fd, refs: 0, dead: this.capacity === 0 };
    if (!entry.dead) {
      this.dropKey(key);
      this.entries.set(key, entry);
      this.evict();
    }
    return this.loan(key, entry);
  }

  release(ref: DirRef): void {
    const entry = this.loaned.get(ref.fd);
    if (entry === undefined) return;
    entry.refs--;
    if (entry.refs === 0) {
      this.loaned.delete(ref.fd);
      if (entry.dead) closeSync(entry.fd);
    }
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

  private loan(key: string, entry: Entry): DirRef {
    entry.refs++;
    this.loaned.set(entry.fd, entry);
    return { fd: entry.fd, key };
  }

  private dropKey(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
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
