/**
 * The usage ledger of one root: what is stored below it (see tally.ts for what counts), shared by
 * every session of the root in this process. Sessions charge it change by change through the
 * gateway's quota policy (gateway/quota.ts) and reserve the bytes of data they are about to write,
 * so concurrent sessions check one total. A background walk (registry.ts) measures it first and
 * reconciles it with the disk from time to time.
 */
import type { UsageTotals } from './tally.js';

export interface Drift extends UsageTotals {
  /** When the reconcile that found it ended (ms since the epoch). */
  at: number;
}

export interface LedgerSnapshot extends UsageTotals {
  id: string;
  root: string;
  /** Bytes reserved by running sessions for data being written (not in `bytes` yet). */
  reservedBytes: number;
  /** Sessions writing to the root now. */
  sessions: number;
  /** The end of the last walk (ms since the epoch); null: never measured. */
  measuredAt: number | null;
  /** What the last reconcile corrected (walked minus ledger); null before the first reconcile. */
  drift: Drift | null;
  /** A walk is running. */
  measuring: boolean;
}

export class UsageLedger implements UsageTotals {
  bytes = 0;
  entries = 0;
  reservedBytes = 0;
  sessions = 0;
  measuredAt: number | null = null;
  drift: Drift | null = null;
  measuring = false;
  /** Counts the charges made: a walk that saw some of them cannot be trusted. */
  version = 0;
  /** Called after each change of the totals (the registry saves them, debounced). */
  onChange: () => void = () => undefined;

  constructor(
    readonly id: string,
    public root: string,
  ) {}

  /** Adds a change's entries and bytes (negative: freed). Never below zero. */
  charge(d: UsageTotals): void {
    if (d.bytes === 0 && d.entries === 0) return;
    this.bytes = Math.max(0, this.bytes + d.bytes);
    this.entries = Math.max(0, this.entries + d.entries);
    this.version++;
    this.onChange();
  }

  /** Changes the bytes reserved for data in flight by `delta` (negative: released). */
  reserve(delta: number): void {
    this.reservedBytes = Math.max(0, this.reservedBytes + delta);
  }

  /** A walk's result: the first measurement, or a reconcile that found `walked - (what the ledger said)`. */
  measured(walked: UsageTotals, before: UsageTotals | null, at: number): void {
    if (before) {
      const drift = { bytes: walked.bytes - before.bytes, entries: walked.entries - before.entries, at };
      this.drift = drift;
      this.bytes = Math.max(0, this.bytes + drift.bytes);
      this.entries = Math.max(0, this.entries + drift.entries);
    } else {
      this.bytes = walked.bytes;
      this.entries = walked.entries;
    }
    this.measuredAt = at;
    this.onChange();
  }

  snapshot(): LedgerSnapshot {
    return {
      id: this.id,
      root: this.root,
      bytes: this.bytes,
      entries: this.entries,
      reservedBytes: this.reservedBytes,
      sessions: this.sessions,
      measuredAt: this.measuredAt,
      drift: this.drift,
      measuring: this.measuring,
    };
  }
}
