/**
 * `rrsyncd usage [--tenant NAME] [--json]`, the console's `usage` and the quota gauges: what each
 * tenant's usage ledger holds (usage/registry.ts), beside the tenant's quota. Read from the
 * ledgers only: nothing here walks a tree (a root not opened yet is opened, and measured in the
 * background, and says so).
 */
import type { Config } from '../config/load.js';
import { tenantGrant } from '../ssh/key-ring.js';
import type { UsageLedger } from '../usage/ledger.js';
import type { UsageLedgers } from '../usage/registry.js';

/** One line of `usage --json`. */
export interface UsageView {
  /** The tenant; absent for a root granted by an authorized_keys line. */
  tenant?: string;
  root: string;
  bytes: number | null;
  entries: number | null;
  reservedBytes: number;
  sessions: number;
  quotaBytes?: number;
  quotaFiles?: number;
  /** ISO time of the last walk; null: never measured. */
  measuredAt: string | null;
  /** What the last reconcile corrected (walked minus ledger). */
  drift: { bytes: number; entries: number; at: string } | null;
  measuring: boolean;
  /** The root is missing or unusable. */
  unavailable?: true;
}

function view(ledger: UsageLedger | null, root: string, tenant?: string): UsageView {
  if (!ledger) return { tenant, root, bytes: null, entries: null, reservedBytes: 0, sessions: 0, measuredAt: null, drift: null, measuring: false, unavailable: true };
  const s = ledger.snapshot();
  const measured = s.measuredAt !== null;
  return {
    tenant,
    root,
    bytes: measured ? s.bytes : null,
    entries: measured ? s.entries : null,
    reservedBytes: s.reservedBytes,
    sessions: s.sessions,
    measuredAt: measured ? new Date(s.measuredAt!).toISOString() : null,
    drift: s.drift ? { bytes: s.drift.bytes, entries: s.drift.entries, at: new Date(s.drift.at).toISOString() } : null,
    measuring: s.measuring,
  };
}

/** Every tenant (or the one named), then any other root a session wrote to; null: no such tenant. */
export function usageViews(config: Config, ledgers: UsageLedgers, tenant?: string): UsageView[] | null {
  const tenants = config.tenants.filter((t) => tenant === undefined || t.name === tenant);
  if (tenant !== undefined && tenants.length === 0) return null;
  const seen = new Set<UsageLedger>();
  const out = tenants.map((t): UsageView => {
    const root = tenantGrant(t, config.root).root;
    const ledger = ledgers.forRoot(root);
    if (ledger) seen.add(ledger);
    return { ...view(ledger, root, t.name), quotaBytes: t.limits?.quotaBytes, quotaFiles: t.limits?.quotaFiles };
  });
  if (tenant === undefined) for (const l of ledgers.list()) if (!seen.has(l)) out.push(view(l, l.root));
  return out;
}

/** The quota gauges: used and limit per tenant, from ledgers already open (a scrape opens nothing). */
export function quotaGauges(config: Config, ledgers: UsageLedgers): Array<{ tenant: string; limitBytes?: number; usedBytes?: number; limitFiles?: number; usedFiles?: number }> {
  return config.tenants.map((t) => {
    const l = ledgers.peek(tenantGrant(t, config.root).root);
    const measured = l !== undefined && l.measuredAt !== null;
    return {
      tenant: t.name,
      limitBytes: t.limits?.quotaBytes,
      limitFiles: t.limits?.quotaFiles,
      usedBytes: measured ? l.bytes : undefined,
      usedFiles: measured ? l.entries : undefined,
    };
  });
}

const size = (n: number | null) => (n === null ? '?' : String(n));

/** The table `rrsyncd usage` and the console print. */
export function formatUsage(list: UsageView[]): string {
  if (list.length === 0) return 'no usage ledgers yet (no tenants configured, nothing pushed)\n';
  return list
    .map((u) => {
      const name = u.tenant ?? '(key root)';
      if (u.unavailable) return `${name}  root ${u.root}  unavailable\n`;
      const quota = [u.quotaBytes !== undefined ? `${u.quotaBytes} bytes` : '', u.quotaFiles !== undefined ? `${u.quotaFiles} files` : ''].filter(Boolean).join(', ');
      const state = u.measuredAt === null ? 'measuring' : `measured ${u.measuredAt}${u.measuring ? ', reconciling' : ''}`;
      const drift = u.drift ? `  drift ${u.drift.bytes} bytes, ${u.drift.entries} entries` : '';
      return `${name}  ${size(u.bytes)} bytes  ${size(u.entries)} entries${quota ? `  quota ${quota}` : ''}  root ${u.root}  ${state}${drift}\n`;
    })
    .join('');
}
