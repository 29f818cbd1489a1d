// The keep rules of `rrsyncd prune` (src/revisions/keep-rules.ts): table-driven cases worked out
// by hand the way restic's `forget` counts, plus invariants checked over random histories.
import t from 'tap';
import { decideKeep, hasKeepRule, isoWeekKey, parseDuration, type KeepRules, type RevisionTime } from '../../src/revisions/keep-rules.js';
import { parseRevisionName, revisionBaseName } from '../../src/revisions/layout.js';

const H = 3600e3;
const D = 24 * H;

function revs(...names: string[]): RevisionTime[] {
  return names.map((name) => ({ name, time: parseRevisionName(name)! }));
}

function kept(list: RevisionTime[], rules: KeepRules, now: string, pinned?: string): string[] {
  return decideKeep(list, rules, new Date(now), pinned).filter((d) => d.keep).map((d) => d.name);
}

t.test('durations', async (t) => {
  t.equal(parseDuration('12h'), 12 * H);
  t.equal(parseDuration('7d'), 7 * D);
  t.equal(parseDuration('2w'), 14 * D);
  t.equal(parseDuration('1d12h'), 36 * H);
  t.equal(parseDuration('90s'), 90e3);
  for (const bad of ['', '7', 'd', '7x', '-1d', '1.5d', '7d ', '1234567d']) t.equal(parseDuration(bad), null, bad);
});

t.test('ISO weeks', async (t) => {
  t.equal(isoWeekKey(new Date('2026-12-07T10:00:00Z')), '2026-W50', 'a Monday');
  t.equal(isoWeekKey(new Date('2026-12-13T23:59:59Z')), '2026-W50', 'its Sunday');
  t.equal(isoWeekKey(new Date('2027-01-01T00:00:00Z')), '2026-W53', 'a Friday Jan 1 belongs to the old year');
  t.equal(isoWeekKey(new Date('2025-12-29T00:00:00Z')), '2026-W01', 'a Monday Dec 29 can start week 1');
});

t.test('no rule: hasKeepRule is false (prune refuses); minAge alone is not a keep rule', async (t) => {
  t.notOk(hasKeepRule({}));
  t.notOk(hasKeepRule({ minAge: D }));
  t.ok(hasKeepRule({ keepLast: 0 }));
});

const history = revs(
  '2026-11-01T010000Z', // Sun, W44
  '2026-11-15T010000Z', // Sun, W46
  '2026-11-30T010000Z', // Mon, W49
  '2026-12-05T010000Z', // Sat, W49
  '2026-12-05T220000Z', // Sat, W49 (newest of the day)
  '2026-12-06T010000Z', // Sun, W49
  '2026-12-07T010000Z', // Mon, W50
  '2026-12-07T010000Z-2', // same second, later
);
const NOW = '2026-12-07T120000Z'.replace(/T(\d\d)(\d\d)(\d\d)Z/, 'T$1:$2:$3Z');

const cases: [string, KeepRules, string[], string?][] = [
  ['keep-last 2', { keepLast: 2 }, ['2026-12-07T010000Z', '2026-12-07T010000Z-2']],
  ['keep-last 0 keeps only the pinned one', { keepLast: 0 }, ['2026-11-01T010000Z'], '2026-11-01T010000Z'],
  ['keep-daily 3: newest of each of the last 3 days with revisions', { keepDaily: 3 }, ['2026-12-05T220000Z', '2026-12-06T010000Z', '2026-12-07T010000Z-2']],
  ['keep-weekly 2', { keepWeekly: 2 }, ['2026-12-06T010000Z', '2026-12-07T010000Z-2']],
  ['keep-weekly 4 skips weeks without revisions', { keepWeekly: 4 }, ['2026-11-01T010000Z', '2026-11-15T010000Z', '2026-12-06T010000Z', '2026-12-07T010000Z-2']],
  ['keep-monthly 2', { keepMonthly: 2 }, ['2026-11-30T010000Z', '2026-12-07T010000Z-2']],
  ['keep-within 2d', { keepWithin: 2 * D }, ['2026-12-05T220000Z', '2026-12-06T010000Z', '2026-12-07T010000Z', '2026-12-07T010000Z-2']],
  ['keep-last 1 + min-age 3d', { keepLast: 1, minAge: 3 * D }, ['2026-12-05T010000Z', '2026-12-05T220000Z', '2026-12-06T010000Z', '2026-12-07T010000Z', '2026-12-07T010000Z-2']],
  ['rules add up', { keepLast: 1, keepMonthly: 2 }, ['2026-11-30T010000Z', '2026-12-07T010000Z-2']],
];
for (const [what, rules, expect, pinned] of cases) {
  t.test(what, async (t) => {
    t.same(kept(history, rules, NOW, pinned), expect);
  });
}

t.test('reasons name every rule that keeps a revision, or say none does', async (t) => {
  const d = decideKeep(history, { keepLast: 1, keepDaily: 1 }, new Date(NOW), '2026-12-06T010000Z');
  t.same(d.at(-1)!.reasons, ['last 1', 'daily']);
  t.same(d.find((x) => x.name === '2026-12-06T010000Z')!.reasons, ['the published revision']);
  t.same(d[0]!.reasons, ['no rule keeps it']);
  t.notOk(d[0]!.keep);
});

// A small deterministic generator (no dependency): random histories, invariants that must hold.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

t.test('invariants over random histories', async (t) => {
  const rand = rng(13);
  const failures: unknown[] = [];
  const fail = (what: string, ctx: object) => failures.push({ what, ...ctx });
  for (let round = 0; round < 300; round++) {
    const n = Math.floor(rand() * 40);
    const start = Date.UTC(2026, 0, 1);
    const times = Array.from({ length: n }, () => start + Math.floor(rand() * 400 * D)).sort((a, b) => a - b);
    const names = new Set<string>();
    const list: RevisionTime[] = [];
    for (const ms of times) {
      const base = revisionBaseName(new Date(ms));
      let name = base;
      for (let k = 2; names.has(name); k++) name = `${base}-${k}`;
      names.add(name);
      list.push({ name, time: new Date(ms - (ms % 1000)) });
    }
    const rules: KeepRules = {};
    if (rand() < 0.5) rules.keepLast = Math.floor(rand() * 5);
    if (rand() < 0.5) rules.keepDaily = Math.floor(rand() * 10);
    if (rand() < 0.5) rules.keepWeekly = Math.floor(rand() * 6);
    if (rand() < 0.5) rules.keepMonthly = Math.floor(rand() * 6);
    if (rand() < 0.3) rules.keepWithin = Math.floor(rand() * 60) * D;
    const now = new Date(start + 420 * D);
    const pinned = list.length && rand() < 0.7 ? list[Math.floor(rand() * list.length)]!.name : undefined;
    const d = decideKeep(list, rules, now, pinned);
    const keptNames = new Set(d.filter((x) => x.keep).map((x) => x.name));
    const ctx = { round, rules, n };
    if (pinned && !keptNames.has(pinned)) fail('the pinned revision is kept', ctx);
    const newest = list.slice(-(rules.keepLast ?? 0));
    if (rules.keepLast && newest.some((r) => !keptNames.has(r.name))) fail('keep-last keeps the newest N', ctx);
    for (const [rule, key] of [
      [rules.keepDaily, (x: Date) => x.toISOString().slice(0, 10)],
      [rules.keepMonthly, (x: Date) => x.toISOString().slice(0, 7)],
      [rules.keepWeekly, isoWeekKey],
    ] as const) {
      if (!rule) continue;
      const periods = [...new Set(list.map((r) => key(r.time)))].slice(-rule);
      for (const p of periods) {
        const newestOfPeriod = list.filter((r) => key(r.time) === p).at(-1)!;
        if (!keptNames.has(newestOfPeriod.name)) fail('the newest of each of the last N periods is kept', { ...ctx, p });
      }
    }
    if (!hasKeepRule(rules) && keptNames.size > (pinned ? 1 : 0)) fail('without rules only the pinned one is kept', ctx);
    for (const x of d) {
      if (!x.keep && x.reasons.join() !== 'no rule keeps it') fail('a removed revision says no rule keeps it', ctx);
      const young = rules.keepWithin !== undefined && now.getTime() - x.time.getTime() < rules.keepWithin;
      if (young && !x.keep) fail('keep-within keeps every younger revision', ctx);
    }
  }
  t.same(failures.slice(0, 3), [], '300 random histories: no invariant broken');
});
