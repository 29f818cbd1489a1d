/**
 * Per-session memory budget for the structures whose size the client decides: the block sums of
 * a pull, file lists (all of it without incremental recursion), uid/gid name lists, a push's
 * zstd decoder window. Each is charged before it is allocated (or as it grows, entry by entry);
 * going over the budget ends the session with rsync's out-of-memory exit code (22, RERR_MALLOC)
 * instead of growing the process every tenant shares. Per tenant `limits.memoryBytes` (default
 * 256 MiB).
 */
import { MAX_SEARCH_BLOCK } from './delta.js';
import { ExitCode, RsyncError } from '../protocol/errors.js';
import type { SumHead } from '../protocol/sumhead.js';
import type { FlistCharges } from '../protocol/flist/flist-reader.js';

export const DEFAULT_SESSION_MEMORY = 256 * 1024 * 1024;

/**
 * One file-list entry in memory besides its name: the object and its fields, its slot in the
 * arrival and sorted arrays (about 235 bytes measured for a 16-byte name; rounded up).
 */
const ENTRY_BYTES = 256;
/** An id list entry besides its name: the Map slot and the string header. */
const ID_BYTES = 64;

export function entryBytes(nameLength: number): number {
  return ENTRY_BYTES + nameLength;
}

function idNameBytes(nameLength: number): number {
  return ID_BYTES + nameLength;
}

/**
 * A pull's block sums as the sender holds them: sum1 (4 bytes), sum2 (s2length), the matcher's
 * chain link and hash head (4 + up to 8), plus the matcher's window (blocks longer than
 * MAX_SEARCH_BLOCK are never searched, so never held).
 */
export function blockSumsBytes(head: SumHead): number {
  return head.count * (16 + head.s2length) + 2 * Math.min(head.blength, MAX_SEARCH_BLOCK);
}

/** What a list of entries holds (released when an incremental-recursion list is freed). */
export function listBytes(entries: ReadonlyArray<{ name: string }>): number {
  let n = 0;
  for (const e of entries) n += entryBytes(e.name.length);
  return n;
}

/** A file-list reader's charges against this budget. */
export function flistCharges(budget: MemoryBudget): FlistCharges {
  return {
    entry: (nameLength) => budget.charge(entryBytes(nameLength), 'the file list'),
    idName: (nameLength) => budget.charge(idNameBytes(nameLength), 'the user and group lists'),
  };
}

function size(n: number): string {
  return n < 1048576 ? `${Math.ceil(n / 1024)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;
}

export class MemoryBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  /** Takes `bytes` for `what`, or ends the session (exit 22) when that would pass the budget. */
  charge(bytes: number, what: string): void {
    if (this.used + bytes > this.limit) {
      throw new RsyncError(
        `rrsyncd: session memory budget exceeded: ${what} needs ${size(bytes)} more, ${size(this.used)} of ${size(this.limit)} already in use`,
        ExitCode.MALLOC,
      );
    }
    this.used += bytes;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}
