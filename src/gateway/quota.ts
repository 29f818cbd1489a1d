/**
 * Per-grant byte and entry quotas for the root, applied at the gateway to every change of every
 * entry type. Usage is measured by walking the root when a receiving session starts, then kept up
 * to date change by change. Entries are names (files, directories, symlinks, specials, hard
 * links, backups, partial and temp files); bytes are file data counted once per inode, plus
 * symlink targets. A change that would exceed the quota fails the session the way a full disk
 * does in rsync (exit 11), before it is made.
 */
import type { GrantLimits } from '../policy/grant.js';
import { ExitCode, RsyncError } from '../protocol/errors.js';
import type { EntryStat, Sandbox } from '../sandbox/sandbox.js';
import type { Change, ChangePolicy } from './change.js';

class QuotaExceeded extends RsyncError {
  constructor(what: string) {
    super(`rrsyncd: quota exceeded: ${what}`, ExitCode.FILEIO);
    this.name = 'QuotaExceeded';
  }
}

interface Delta {
  entries: number;
  bytes: number;
}

export class Quota implements ChangePolicy {
  /** Changes checked by before() and applied by after() once they are done. */
  private readonly deltas = new WeakMap<Change, Delta>();
  /** Temp files whose data is not charged yet (it is when they get their final name). */
  private readonly uncharged = new Set<string>();
  /** Files opened in place: the size charged for them so far. */
  private readonly inPlace = new Map<string, number>();
  /** The bytes a write's destination frees when the data lands there (looked up once per name). */
  private readonly replaced = new Map<string, number>();

  private constructor(
    private readonly sandbox: Sandbox,
    private readonly maxBytes: number,
    private readonly maxFiles: number,
    public usedBytes: number,
    public usedFiles: number,
  ) {}

  /** A quota for the grant's root, or null when the grant sets none. */
  static forRoot(limits: GrantLimits, sandbox: Sandbox): Quota | null {
    if (limits.quotaBytes === undefined && limits.quotaFiles === undefined) return null;
    const usage = measure(sandbox);
    return new Quota(sandbox, limits.quotaBytes ?? Infinity, limits.quotaFiles ?? Infinity, usage.bytes, usage.files);
  }

  before(c: Change): void {
    if (c.op === 'write') return this.checkWrite(c);
    const d = this.deltaOf(c);
    if (d.entries > 0 && this.usedFiles + d.entries > this.maxFiles) throw new QuotaExceeded(`more than ${this.maxFiles} files`);
    if (d.bytes > 0 && this.usedBytes + d.bytes > this.maxBytes) throw new QuotaExceeded(`more than ${this.maxBytes} bytes`);
    this.deltas.set(c, d);
  }

  after(c: Readonly<Change>): void {
    const d = this.deltas.get(c as Change);
    if (!d) return;
    this.usedFiles = Math.max(0, this.usedFiles + d.entries);
    this.usedBytes = Math.max(0, this.usedBytes + d.bytes);
    if (c.op === 'create' && c.purpose === 'temp' && !c.size) this.uncharged.add(c.path);
    if (c.op === 'rename' && c.from !== undefined) this.uncharged.delete(c.from);
    if (c.op === 'delete') this.uncharged.delete(c.path);
    if (c.op === 'modify') this.inPlace.set(c.path, this.sizeAt(c.path));
    if (c.op === 'truncate' && this.inPlace.has(c.path)) this.inPlace.set(c.path, c.size ?? 0);
    if (c.op === 'rename' || c.op === 'create') this.replaced.delete(c.path);
  }

  /** Data growing in a temp file or in place: would it fit once it replaces what it is for? */
  private checkWrite(c: Change): void {
    const size = c.size ?? 0;
    let charged = this.inPlace.get(c.path);
    if (charged === undefined) {
      const dest = c.dest;
      if (dest === undefined) charged = 0;
      else {
        charged = this.replaced.get(dest);
        if (charged === undefined) {
          charged = freedBy(this.lstat(dest));
          this.replaced.set(dest, charged);
        }
      }
    }
    if (this.usedBytes - charged + size > this.maxBytes) throw new QuotaExceeded(`more than ${this.maxBytes} bytes`);
  }

  private deltaOf(c: Change): Delta {
    switch (c.op) {
      case 'mkdir':
      case 'mknod':
      case 'link':
        return { entries: 1, bytes: 0 };
      case 'symlink':
        return { entries: 1, bytes: Buffer.byteLength(c.target ?? '', 'latin1') };
      case 'create':
        return { entries: 1, bytes: c.size ?? 0 };
      case 'truncate': {
        const charged = this.inPlace.get(c.path);
        return { entries: 0, bytes: charged === undefined ? 0 : (c.size ?? 0) - charged };
      }
      case 'rename': {
        const to = this.lstat(c.path);
        const from = c.from !== undefined && this.uncharged.has(c.from) ? this.lstat(c.from) : null;
        return { entries: to ? -1 : 0, bytes: (from ? from.size : 0) - freedBy(to) };
      }
      case 'delete': {
        if (c.type === 'dir' || this.uncharged.has(c.path)) return { entries: -1, bytes: 0 };
        const st = this.lstat(c.path);
        if (st && st.type === 'dir') return negate(measure(this.sandbox, c.path, 1));
        return { entries: st ? -1 : 0, bytes: -freedBy(st) };
      }
      default:
        return { entries: 0, bytes: 0 };
    }
  }

  private sizeAt(rel: string): number {
    return this.lstat(rel)?.size ?? 0;
  }

  private lstat(rel: string): EntryStat | null {
    try {
      return this.sandbox.lstat(rel);
    } catch {
      return null;
    }
  }
}

/** The bytes an entry's removal frees: a file's data once its last name goes, a symlink's target. */
function freedBy(st: EntryStat | null): number {
  if (!st) return 0;
  if (st.type === 'file') return st.nlink > 1 ? 0 : st.size;
  return st.type === 'symlink' ? st.size : 0;
}

function negate(d: { bytes: number; files: number }): Delta {
  return { entries: -d.files, bytes: -d.bytes };
}

/** Names and bytes under `top` (files once per inode, symlink targets); `self` counts `top` itself. */
function measure(sandbox: Sandbox, top = '', self = 0): { bytes: number; files: number } {
  let bytes = 0;
  let files = self;
  const inodes = new Set<string>();
  const pending = [top];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    for (const name of sandbox.readdir(dir)) {
      const rel = dir ? `${dir}/${name}` : name;
      const st = sandbox.lstat(rel);
      if (!st) continue;
      files++;
      if (st.type === 'dir') pending.push(rel);
      else if (st.type === 'symlink') bytes += st.size;
      else if (st.type === 'file') {
        if (st.nlink > 1) {
          const key = `${st.dev}:${st.ino}`;
          if (inodes.has(key)) continue;
          inodes.add(key);
        }
        bytes += st.size;
      }
    }
  }
  return { bytes, files };
}
