/**
 * Symlinked directories the receiver goes through: with -K (generator.c stats a destination
 * symlink through when the sender has a directory) and, at a root of `/`, a path element of
 * -R --no-implied-dirs (both only to a directory inside the destination, as rsync 3.5.0's
 * receiver), and at a root of `/` the destination itself and the operator's own
 * --temp-dir/--backup-dir/--*-dest/--partial-dir (through links owned by root or by the server's
 * uid, as rsync 3.5.0 resolves an operator's path). The sandbox never follows a symlink, so such
 * a link is resolved here once and everything below it is then addressed by its physical path.
 * Below a real root only -K follows links (README, "Restrictions and the sandbox").
 */
import type { Sandbox } from '../../sandbox/sandbox.js';
import type { EntryStat } from '../../sandbox/stat.js';
import { resolveInRoot } from '../sender/resolve.js';
import { baseOf, dirOf, joinRel } from '../relpath.js';

export class DirLinks {
  /** Logical directory (destination + entry name) → the physical directory it resolved to. */
  private readonly toPhysical = new Map<string, string>();
  private readonly toLogical = new Map<string, string>();
  private readonly refused = new Set<string>();
  private readonly trustedUid: number;
  readonly rootIsSlash: boolean;

  constructor(
    private readonly sandbox: Sandbox,
    root: string,
  ) {
    this.rootIsSlash = /^\/+$/.test(root);
    this.trustedUid = process.geteuid?.() ?? 0;
  }

  /**
   * The directory a symlink at `rel` names: 'refused' when it leaves the destination `within`
   * (rsync 3.5.0's receiver resolves the names of a transfer inside its destination, whoever
   * owns the links on the way), null when it names no directory.
   */
  private follow(rel: string, within: string): string | 'refused' | null {
    const r = resolveInRoot(this.sandbox, rel, this.rootIsSlash);
    if (r.kind === 'escape' || (r.kind === 'ok' && !isBelow(r.rel, within))) return 'refused';
    return r.kind === 'ok' && r.st.type === 'dir' ? r.rel : null;
  }

  /**
   * A directory entry whose destination `dest` is a symlink: gone through from now on when it
   * names a directory (true); 'refused' leaves the link alone, and nothing is written below it;
   * false: it is replaced as usual. `logical` is the destination joined with the entry's name.
   */
  enter(logical: string, dest: string, within: string): boolean | 'refused' {
    if (this.toPhysical.has(logical)) return true;
    if (this.refused.has(logical)) return 'refused';
    const physical = this.follow(dest, within);
    if (physical === null) return false;
    if (physical === 'refused') {
      this.refused.add(logical);
      return 'refused';
    }
    this.add(logical, physical);
    return true;
  }

  /** How far below a refused link `logical` is (0: the link itself); -1 when it is not below one. */
  belowRefused(logical: string): number {
    if (this.refused.size === 0) return -1;
    let depth = 0;
    for (let d = logical; d !== ''; d = dirOf(d), depth++) if (this.refused.has(d)) return depth;
    return -1;
  }

  private add(logical: string, physical: string): void {
    this.toPhysical.set(logical, physical);
    this.toLogical.set(physical, logical);
  }

  /** A destination path with its longest followed prefix replaced by the physical directory. */
  physical(rel: string): string {
    return this.toPhysical.size === 0 ? rel : swapPrefix(rel, this.toPhysical);
  }

  /** The inverse of physical(): the name rsync would use (backup names, messages). */
  logical(rel: string): string {
    return this.toLogical.size === 0 ? rel : swapPrefix(rel, this.toLogical);
  }

  /**
   * At a root of `/`: `rel` with its existing trusted symlinks resolved (a missing tail is kept),
   * as the kernel resolves a path rsync is given. Unchanged below any other root, or when a link
   * on the way is not trusted (the sandbox then refuses it).
   */
  atSlash(rel: string): string {
    if (!this.rootIsSlash || rel === '') return rel;
    const r = resolveInRoot(this.sandbox, rel, true, (st) => this.trusted(st));
    if (r.kind === 'ok') return r.rel;
    if (r.kind !== 'missing') return rel;
    const parent = dirOf(rel);
    return parent === '' ? rel : joinRel(this.atSlash(parent), baseOf(rel));
  }

  private trusted(link: EntryStat): boolean {
    return link.uid === 0 || link.uid === this.trustedUid;
  }
}

function isBelow(rel: string, dir: string): boolean {
  return dir === '' || rel === dir || rel.startsWith(`${dir}/`);
}

function swapPrefix(rel: string, map: ReadonlyMap<string, string>): string {
  for (let d = rel; d !== ''; d = dirOf(d)) {
    const to = map.get(d);
    if (to !== undefined) return d === rel ? to : joinRel(to, rel.slice(d.length + 1));
  }
  return rel;
}
