/**
 * Which revisions `rrsyncd prune` keeps (docs/revisions-operations.md). The rules work like
 * restic's and borg's `forget`: a revision is kept when any rule keeps it.
 *
 * - keepLast N: the N newest revisions.
 * - keepDaily / keepWeekly / keepMonthly N: the newest revision of each of the last N UTC days /
 *   ISO weeks / months that have revisions (periods without a revision do not count).
 * - keepWithin D: every revision younger than D.
 * - minAge D: nothing younger than D is removed, whatever the other rules say.
 * - the revision `latest` / `current` points to is never removed.
 */

export interface KeepRules {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  /** Milliseconds. */
  keepWithin?: number;
  /** Milliseconds. */
  minAge?: number;
}

export interface RevisionTime {
  name: string;
  time: Date;
}

export interface KeepDecision {
  name: string;
  time: Date;
  keep: boolean;
  /** Why it is kept (every rule that keeps it), or why it goes. */
  reasons: string[];
}

/** True when at least one rule keeps something (prune refuses to run without one). */
export function hasKeepRule(rules: KeepRules): boolean {
  return (
    rules.keepLast !== undefined ||
    rules.keepDaily !== undefined ||
    rules.keepWeekly !== undefined ||
    rules.keepMonthly !== undefined ||
    rules.keepWithin !== undefined
  );
}

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3, y: 365 * 86400e3 };

/** `90s`, `30m`, `12h`, `7d`, `2w`, `1y`, or a sequence like `1d12h`; null when not one. */
export function parseDuration(text: string): number | null {
  if (!/^(\d{1,6}[smhdwy])+$/.test(text)) return null;
  let ms = 0;
  for (const m of text.matchAll(/(\d+)([smhdwy])/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
  return ms;
}

function dayKey(t: Date): string {
  return t.toISOString().slice(0, 10);
}

function monthKey(t: Date): string {
  return t.toISOString().slice(0, 7);
}

/** ISO 8601 week (weeks start on Monday; week 1 holds the year's first Thursday), UTC. */
export function isoWeekKey(t: Date): string {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const weekday = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - weekday); // the Thursday of this week decides the year
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86400e3 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/** Newest first: the newest revision of each of the first `count` distinct periods. */
function newestPerPeriod(newestFirst: readonly RevisionTime[], count: number, key: (t: Date) => string): Set<string> {
  const kept = new Set<string>();
  let last: string | undefined;
  for (const r of newestFirst) {
    if (kept.size >= count) break;
    const k = key(r.time);
    if (k === last) continue;
    last = k;
    kept.add(r.name);
  }
  return kept;
}

/**
 * Decides for every revision (given in time order, oldest first). `pinned`: the pointer's
 * target, never removed. `now` for keepWithin and minAge.
 */
export function decideKeep(
  oldestFirst: readonly RevisionTime[],
  rules: KeepRules,
  now: Date,
  pinned?: string,
): KeepDecision[] {
  const newestFirst = [...oldestFirst].reverse();
  const periodic: [string, number | undefined, (t: Date) => string][] = [
    ['daily', rules.keepDaily, dayKey],
    ['weekly', rules.keepWeekly, isoWeekKey],
    ['monthly', rules.keepMonthly, monthKey],
  ];
  const sets = periodic.map(([label, n, key]) => [label, n === undefined ? new Set<string>() : newestPerPeriod(newestFirst, n, key)] as const);
  const lastN = new Set(newestFirst.slice(0, rules.keepLast ?? 0).map((r) => r.name));
  return oldestFirst.map((r) => {
    const age = now.getTime() - r.time.getTime();
    const reasons: string[] = [];
    if (r.name === pinned) reasons.push('the published revision');
    if (lastN.has(r.name)) reasons.push(`last ${rules.keepLast}`);
    for (const [label, set] of sets) if (set.has(r.name)) reasons.push(label);
    if (rules.keepWithin !== undefined && age < rules.keepWithin) reasons.push('within');
    if (rules.minAge !== undefined && age < rules.minAge) reasons.push('younger than the minimum age');
    return { name: r.name, time: r.time, keep: reasons.length > 0, reasons: reasons.length ? reasons : ['no rule keeps it'] };
  });
}
