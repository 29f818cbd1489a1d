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
 * Live bytes one file-list entry holds besides its name bytes, per role: the object and its
 * fields, its name string's header, its slot in the sorted array. Measured without incremental
 * recursion (bench/micro/flist-memory.bench.ts with 50 000 to 200 000 entries, and
 * test/unit/flist-memory.test.ts; Node 20 x64; re-measure there after changing what an entry
 * keeps): the receiver 149 bytes, the sender 206 (it also keeps where the data lives and its
 * identity); about 32 more each when a file over 2 GiB and an mtime past 2038 in the list turn
 * those fields into boxed doubles in every entry. Rounded up for the fields that may box too
 * (inode, atime, crtime) and for the spread between runs (the sender's up to 261).
 */
const RECEIVER_ENTRY_BYTES = 208;
const SENDER_ENTRY_BYTES = 304;
/** -H: dev/ino or the group index, added to an entry later (measured 40 to 70). */
const HARD_LINK_BYTES = 80;
/** --checksum: the digest Buffer of each file (measured 150 receiving, 250 sending). */
const CHECKSUM_BYTES = 256;
/** An id list entry besides its name: the Map slot and the string header. */
const ID_BYTES = 64;

/** What every entry of a session's lists costs besides its name, for one role and its options. */
export function entryOverhead(role: 'sender' | 'receiver', o: { hardLinks: number; checksum: boolean }): number {
  const base = role === 'sender' ? SENDER_ENTRY_BYTES : RECEIVER_ENTRY_BYTES;
  return base + (o.hardLinks ? HARD_LINK_BYTES : 0) + (o.checksum ? CHECKSUM_BYTES : 0);
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
export function listBytes(entries: ReadonlyArray<{ name: string }>, overhead: number): number {
  let n = 0;
  for (const e of entries) n += overhead + e.name.length;
  return n;
}

/** A file-list reader's charges against this budget. */
export function flistCharges(budget: MemoryBudget, overhead: number): FlistCharges {
  return {
    entry: (nameLength) => budget.charge(overhead + nameLength, 'the file list'),
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
