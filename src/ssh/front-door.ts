/**
 * Admission of connections before they authenticate, as OpenSSH's sshd does it:
 *
 * - `maxStartups` "start:rate:full" (sshd's MaxStartups): with `start` or more unauthenticated
 *   connections, a new one is dropped with probability `rate`%, rising linearly to 100% at `full`.
 *   A single number N means N:100:N (drop everything past N).
 * - `maxStartupsPerSource` (sshd's PerSourceMaxStartups): unauthenticated connections from one
 *   source (an IPv4 address, or an IPv6 /64) beyond this are dropped, so one address cannot fill
 *   the MaxStartups budget and lock everybody else out until the handshake timeout.
 *
 * A connection leaves the count when it authenticates or closes.
 */
import { isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import { addressBytes, normalizeAddress } from './address.js';
import type { MaxStartups } from '../config/max-startups.js';

/** sshd's drop(): the chance in percent that a new connection is dropped with `pending` unauthenticated ones. */
export function dropPercent(pending: number, limits: MaxStartups): number {
  if (pending < limits.start) return 0;
  if (pending >= limits.full) return 100;
  return limits.rate + Math.floor(((100 - limits.rate) * (pending - limits.start)) / (limits.full - limits.start));
}

/** The address a per-source limit counts under: IPv4 (also v4-mapped) as is, IPv6 by its /64. */
export function sourceKey(address: string): string {
  const ip = normalizeAddress(address);
  const bytes = isIP(ip) === 6 ? addressBytes(ip) : undefined;
  if (!bytes) return ip;
  const hex = (i: number) => ((bytes[i]! << 8) | bytes[i + 1]!).toString(16);
  return `${[0, 2, 4, 6].map(hex).join(':')}::/64`;
}

/** `leave()` takes an admitted connection out of the count (when it authenticates or closes); idempotent. */
export type Admission = { ok: true; leave: () => void } | { ok: false; reason: string };

/** Counts unauthenticated connections, in total and per source. */
export class StartupGate {
  private pending = 0;
  private readonly perSource = new Map<string, number>();

  constructor(
    private limits: MaxStartups,
    private perSourceLimit: number,
    private readonly random: (percent: number) => boolean = (p) => randomInt(100) < p,
  ) {}

  /** New limits (SIGHUP); connections already counted stay counted. */
  update(limits: MaxStartups, perSourceLimit: number): void {
    this.limits = limits;
    this.perSourceLimit = perSourceLimit;
  }

  get unauthenticated(): number {
    return this.pending;
  }

  /**
   * Admits a new connection from `address`, or says why it is dropped.
   */
  admit(address: string): Admission {
    const key = sourceKey(address);
    const fromSource = this.perSource.get(key) ?? 0;
    if (fromSource >= this.perSourceLimit) {
      return { ok: false, reason: `too many unauthenticated connections from this source (maxStartupsPerSource ${this.perSourceLimit})` };
    }
    const p = dropPercent(this.pending, this.limits);
    if (p > 0 && this.random(p)) {
      return { ok: false, reason: `${this.pending} unauthenticated connections: dropped past maxStartups ${this.describe()}` };
    }
    this.pending++;
    this.perSource.set(key, fromSource + 1);
    let counted = true;
    const leave = () => {
      if (!counted) return;
      counted = false;
      this.pending--;
      const n = (this.perSource.get(key) ?? 1) - 1;
      if (n <= 0) this.perSource.delete(key);
      else this.perSource.set(key, n);
    };
    return { ok: true, leave };
  }

  private describe(): string {
    return `${this.limits.start}:${this.limits.rate}:${this.limits.full}`;
  }
}
