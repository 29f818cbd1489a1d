/**
 * The administrator's revision verbs (docs/revisions-operations.md), run on the server machine
 * against a revisions root, never through a key:
 *   rrsyncd revisions --root DIR | --config FILE --tenant NAME  [--mode M] [--json]
 *   rrsyncd prune     (same)  --keep-last N --keep-daily N --keep-weekly N --keep-monthly N
 *                             --keep-within D --min-age D [--dry-run] [--json] [--wait S]
 *   rrsyncd publish   (same)  --rollback [NAME] [--wait S]
 * Pruning and rollback take the root's lock (one writer per root; a running push holds it),
 * waiting up to --wait seconds (30) for it.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { Sandbox } from '../sandbox/sandbox.js';
import { lockRoot, type RootLock } from '../sandbox/lock.js';
import { tenantGrant } from '../ssh/key-ring.js';
import { detectMode, readInventory, RevisionsError, type Inventory } from '../revisions/inventory.js';
import { hasKeepRule, parseDuration, type KeepRules } from '../revisions/keep-rules.js';
import { pointerName, type RevisionMode } from '../revisions/layout.js';
import { prune, type PruneOutcome } from '../revisions/prune.js';
import { rollback } from '../revisions/rollback.js';
import { VerbUsageError } from './cli-verbs.js';

const OPTIONS = {
  root: { type: 'string' },
  config: { type: 'string' },
  tenant: { type: 'string' },
  mode: { type: 'string' },
  json: { type: 'boolean' },
  'dry-run': { type: 'boolean', short: 'n' },
  'keep-last': { type: 'string' },
  'keep-daily': { type: 'string' },
  'keep-weekly': { type: 'string' },
  'keep-monthly': { type: 'string' },
  'keep-within': { type: 'string' },
  'min-age': { type: 'string' },
  rollback: { type: 'boolean' },
  wait: { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** Where a verb writes (the console passes its PTY). */
export interface VerbOutput {
  out(text: string): void;
  err(text: string): void;
}

const STDIO: VerbOutput = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

interface Target {
  root: string;
  mode?: RevisionMode;
}

/** Runs `revisions`, `prune` or `publish`; resolves with the exit code. */
export async function runRevisionVerb(verb: 'revisions' | 'prune' | 'publish', args: string[], io: VerbOutput = STDIO): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  if (verb !== 'publish' && positionals.length) throw new VerbUsageError(`unexpected argument "${positionals[0]}"`);
  const rules = keepRules(values);
  if (verb === 'prune' && !hasKeepRule(rules)) {
    io.err('rrsyncd: prune needs at least one --keep-* rule (without one it would remove every revision but the published one); nothing removed\n');
    return 2;
  }
  if (verb === 'publish' && (!values.rollback || positionals.length > 1)) {
    throw new VerbUsageError('publish needs --rollback [NAME] (pushes publish; this only switches back)');
  }
  const target = resolveTarget(values);
  let sandbox: Sandbox;
  try {
    sandbox = Sandbox.open(target.root);
  } catch (err) {
    io.err(`rrsyncd: ${target.root}: ${(err as Error).message}\n`);
    return 1;
  }
  // removing or switching revisions waits for the root's writer (a push, publish-mode retention)
  const changes = verb === 'publish' || (verb === 'prune' && !values['dry-run']);
  const lock = changes ? await waitForRootLock(target.root, waitSeconds(values) * 1000) : null;
  if (changes && !lock) {
    sandbox.close();
    io.err(`rrsyncd: ${target.root} is busy (a push is running there); nothing changed, try again later\n`);
    return 1;
  }
  try {
    const mode = detectMode(sandbox, target.mode);
    const print = <T>(value: T, text: (v: T) => string): number => {
      io.out(values.json ? `${JSON.stringify(value, null, 2)}\n` : text(value));
      return 0;
    };
    if (verb === 'revisions') return print(readInventory(sandbox, mode), formatInventory);
    if (verb === 'prune') {
      const outcome = await prune(sandbox, mode, rules, { dryRun: !!values['dry-run'] });
      return print({ dryRun: !!values['dry-run'], ...outcome }, formatPrune);
    }
    const done = rollback(sandbox, mode, positionals[0]);
    return print({ pointer: pointerName(mode), ...done }, (r) => `${r.pointer}: ${r.from ?? '(none)'} -> ${r.to}\n`);
  } catch (err) {
    if (!(err instanceof RevisionsError)) throw err;
    io.err(`rrsyncd: ${err.message}\n`);
    return 1;
  } finally {
    sandbox.close();
    lock?.release();
  }
}

/** `--wait SECONDS` for the root's lock (default 30). */
function waitSeconds(values: Values): number {
  const v = values.wait;
  if (v === undefined) return 30;
  if (!/^\d{1,6}$/.test(v)) throw new VerbUsageError(`--wait needs a whole number of seconds, not "${v}"`);
  return Number(v);
}

/** The root's single-writer lock (sandbox/lock.ts), polled for up to `waitMs`. */
async function waitForRootLock(root: string, waitMs: number): Promise<RootLock | null> {
  const until = Date.now() + waitMs;
  for (;;) {
    const lock = lockRoot(root);
    if (lock || Date.now() >= until) return lock;
    await new Promise((r) => setTimeout(r, 500));
  }
}

function count(values: Values, name: 'keep-last' | 'keep-daily' | 'keep-weekly' | 'keep-monthly'): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (!/^\d{1,9}$/.test(v)) throw new VerbUsageError(`--${name} needs a whole number, not "${v}"`);
  return Number(v);
}

function duration(values: Values, name: 'keep-within' | 'min-age'): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms === null) throw new VerbUsageError(`--${name} needs a duration such as 12h, 7d or 2w, not "${v}"`);
  return ms;
}

function keepRules(values: Values): KeepRules {
  const rules: KeepRules = {
    keepLast: count(values, 'keep-last'),
    keepDaily: count(values, 'keep-daily'),
    keepWeekly: count(values, 'keep-weekly'),
    keepMonthly: count(values, 'keep-monthly'),
    keepWithin: duration(values, 'keep-within'),
    minAge: duration(values, 'min-age'),
  };
  return Object.fromEntries(Object.entries(rules).filter(([, v]) => v !== undefined)) as KeepRules;
}

function resolveTarget(values: Values): Target {
  const mode = values.mode;
  if (mode !== undefined && mode !== 'snapshot' && mode !== 'publish') throw new VerbUsageError(`--mode is snapshot or publish, not "${mode}"`);
  if (values.root !== undefined) {
    if (values.tenant !== undefined) throw new VerbUsageError('give --root DIR or --config FILE --tenant NAME, not both');
    return { root: values.root, mode };
  }
  if (values.tenant === undefined) throw new VerbUsageError('needs --root DIR or --config FILE --tenant NAME');
  const config = loadConfig({ file: values.config ?? process.env.RRSYNCD_CONFIG });
  const tenant = config.tenants.find((t) => t.name === values.tenant);
  if (!tenant) throw new VerbUsageError(`no tenant named "${values.tenant}" in the configuration`);
  // a tenant's `revisions.mode` (when the configuration has one) says which layout its root has
  const configured = (tenant as { revisions?: { mode?: RevisionMode } }).revisions?.mode;
  return { root: tenantGrant(tenant, config.root).root, mode: mode ?? configured };
}

function formatInventory(inv: Inventory): string {
  if (inv.revisions.length === 0) return `no revisions (${inv.mode} mode)\n`;
  const lines = inv.revisions.map((r) => {
    const size = [r.files !== undefined ? `${r.files} files` : '', r.bytes !== undefined ? `${r.bytes} bytes` : ''].filter(Boolean).join(', ');
    const marks = [r.name === inv.pointer ? pointerName(inv.mode) : '', r.present ? '' : 'pruned'].filter(Boolean).join(', ');
    return `${r.name}  ${r.time.toISOString()}${size ? `  ${size}` : ''}${marks ? `  (${marks})` : ''}`;
  });
  return `${lines.join('\n')}\n`;
}

function formatPrune(o: PruneOutcome & { dryRun: boolean }): string {
  const lines = o.decisions.map((d) => `${d.keep ? 'keep  ' : o.dryRun ? 'would remove' : 'remove'}  ${d.name}  ${d.reasons.join(', ')}`);
  const gone = o.decisions.filter((d) => !d.keep).length;
  lines.push(
    o.dryRun
      ? `${o.decisions.length - gone} kept, ${gone} would be removed (dry run: nothing removed)`
      : `${o.decisions.length - gone} kept, ${o.removed.length} removed (their manifests stay)`,
  );
  return `${lines.join('\n')}\n`;
}
