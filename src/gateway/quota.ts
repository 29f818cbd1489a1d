/**
 * The usage ledger's side of the gateway: every change a receiving session makes to its tree is
 * charged to the root's ledger (usage/ledger.ts), which all sessions of the root share, and
 * checked against the grant's byte and entry quotas before it is made. Entries are names (files,
 * directories, symlinks, specials, hard links, backups, partial and temp files); bytes are file
 * data once per inode plus symlink targets, so a hard link adds an entry and no bytes, and a file
 * replaced while a backup keeps its inode frees nothing. A change that would exceed the quota
 * fails the session the way a full disk does in rsync (exit 11), before it is made.
 *
 * Data being written is reserved in the ledger before each write that grows a file: a temp
 * file's bytes (less what its destination frees when the data lands there) until it gets its
 * final name or is removed, so concurrent sessions cannot each fill the quota. Data written in
 * place is charged as it grows. What a session still holds when it ends is released.
 */
import type { GrantLimits } from '../policy/grant.js';
import { ExitCode, RsyncError } from '../protocol/errors.js';
import type { EntryStat, Sandbox } from '../sandbox/sandbox.js';
import type { UsageLedger } from '../usage/ledger.js';
import type { UsageTotals } from '../usage/tally.js';
import { measureSubtree } from '../usage/walk.js';
import type { Change, ChangePolicy } from './change.js';

class QuotaExceeded extends RsyncError {
  constructor(what: string) {
    super(`rrsyncd: quota exceeded: ${what}`, ExitCode.FILEIO);
    this.name = 'QuotaExceeded';
  }
}

interface Reservation {
  /** Bytes held in the ledger. */
  bytes: number;
  /** What the destination frees when the data lands there (looked up at the first write). */
  credit: number;
  /** The name the data is written under now (a temp name, or the directory of an unnamed file). */
  at: string;
}

export class Quota implements ChangePolicy {
  /** Changes checked by before() and charged by after() once they are done. */
  private readonly deltas = new WeakMap<Change, UsageTotals & { at: string }>();
  /** Temp files whose data is not charged yet (it is when they get their final name). */
  private readonly uncharged = new Set<string>();
  /** Files opened in place: the size charged for them so far. */
  private readonly inPlace = new Map<string, number>();
  /** Data in flight, by the name it is for. */
  private readonly reserved = new Map<string, Reservation>();
  private readonly maxBytes: number;
  private readonly maxFiles: number;
  private ended = false;

  constructor(
    private readonly sandbox: Sandbox,
    private readonly ledger: UsageLedger,
    limits: GrantLimits,
    /** -b / --backup-dir: a replaced file's data stays in its backup, so the replacement frees nothing. */
    private readonly keepsBackups = false,
  ) {
    this.maxBytes = limits.quotaBytes ?? Infinity;
    this.maxFiles = limits.quotaFiles ?? Infinity;
    ledger.sessions++;
  }

  before(c: Change): void {
    if (c.op === 'write') return this.onWrite(c);
    const d = this.deltaOf(c);
    const mine = this.reservationFor(c)?.bytes ?? 0;
    if (d.entries > 0 && this.ledger.entries + d.entries > this.maxFiles) throw new QuotaExceeded(`more than ${this.maxFiles} files`);
    if (d.bytes > 0 && this.ledger.bytes + this.ledger.reservedBytes - mine + d.bytes > this.maxBytes) {
      throw new QuotaExceeded(`more than ${this.maxBytes} bytes`);
    }
    this.deltas.set(c, { ...d, at: c.path });
  }

  after(c: Readonly<Change>): void {
    const d = this.deltas.get(c as Change);
    if (!d) return;
    this.ledger.charge(d);
    if (c.op === 'rename' || c.op === 'create' || c.op === 'delete') this.release(this.reservationFor({ ...c, path: d.at }));
    if (c.op === 'create' && c.purpose === 'temp' && !c.size) this.uncharged.add(c.path);
    if (c.op === 'rename' && c.from !== undefined) this.uncharged.delete(c.from);
    if (c.op === 'delete') this.uncharged.delete(c.path);
    if (c.op === 'modify') this.inPlace.set(c.path, this.lstat(c.path)?.size ?? 0);
    if (c.op === 'truncate' && this.inPlace.has(c.path)) this.inPlace.set(c.path, c.size ?? 0);
  }

  /** The session is over: what it still reserves goes back. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const r of this.reserved.values()) this.ledger.reserve(-r.bytes);
    this.reserved.clear();
    this.ledger.sessions--;
  }

  /** Data growing to `size`: charged now in place, reserved until it lands for a temp or unnamed file. */
  private onWrite(c: Change): void {
    const size = c.size ?? 0;
    const charged = this.inPlace.get(c.path);
    if (charged !== undefined) {
      this.fitBytes(size - charged);
      this.ledger.charge({ bytes: size - charged, entries: 0 });
      this.inPlace.set(c.path, size);
      return;
    }
    const key = c.dest ?? c.path;
    let r = this.reserved.get(key);
    if (!r) {
      r = { bytes: 0, credit: c.dest === undefined || this.keepsBackups ? 0 : freedBy(this.lstat(c.dest)), at: c.path };
      this.reserved.set(key, r);
    }
    r.at = c.path;
    const want = Math.max(0, size - r.credit);
    this.fitBytes(want - r.bytes);
    this.ledger.reserve(want - r.bytes);
    r.bytes = want;
  }

  private fitBytes(more: number): void {
    if (more > 0 && this.ledger.bytes + this.ledger.reservedBytes + more > this.maxBytes) throw new QuotaExceeded(`more than ${this.maxBytes} bytes`);
  }

  /** The reservation a change settles: its data landing at `path` (rename, create) or its temp name removed. */
  private reservationFor(c: Readonly<Change>): Reservation | undefined {
    if (c.op === 'rename') return this.reserved.get(c.path) ?? this.reservedAt(c.from);
    // only a finished file (an unnamed one getting its name) lands data; a new temp file has none yet
    if (c.op === 'create') return c.size ? (this.reserved.get(c.path) ?? this.reservedAt(c.path)) : undefined;
    if (c.op === 'delete') return this.reservedAt(c.path);
    return undefined;
  }

  private reservedAt(at: string | undefined): Reservation | undefined {
    if (at === undefined) return undefined;
    for (const r of this.reserved.values()) if (r.at === at) return r;
    return undefined;
  }

  private release(r: Reservation | undefined): void {
    if (!r) return;
    this.ledger.reserve(-r.bytes);
    for (const [k, v] of this.reserved) if (v === r) this.reserved.delete(k);
  }

  private deltaOf(c: Change): UsageTotals {
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
        if (st && st.type === 'dir') {
          const t = measureSubtree(this.sandbox, c.path);
          return { entries: -t.entries, bytes: -t.freedBytes() };
        }
        return { entries: st ? -1 : 0, bytes: -freedBy(st) };
      }
      default:
        return { entries: 0, bytes: 0 };
    }
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
