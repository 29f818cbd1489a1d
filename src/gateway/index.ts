/**
 * The destination gateway of one session, with the policies every session gets: the usage ledger
 * and the grant's quota (receiving sessions), the grant's restrictions, an audit record of each
 * change at debug level, and whatever the caller adds (a test's recorder; later revisions'
 * staging rules).
 */
import type { Logger } from 'pino';
import type { Grant } from '../policy/grant.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { ChangePolicy } from './change.js';
import { Gateway } from './gateway.js';
import { appendOnlyRules } from './append-only.js';
import { grantRules } from './grant-rules.js';
import { Quota } from './quota.js';
import type { UsageLedger } from '../usage/ledger.js';

export interface GatewayOptions {
  /** The root's usage ledger (receiving sessions): every change is charged, the grant's quota enforced. */
  ledger?: UsageLedger | null;
  /** The session keeps backups (-b / --backup-dir): a replaced file frees nothing. */
  keepsBackups?: boolean;
  /** Policies applied after the built-in ones. */
  extra?: readonly ChangePolicy[];
  /** Policies applied before all others (a revision push's confinement to its staging). */
  guards?: readonly ChangePolicy[];
}

export function openGateway(sandbox: Sandbox, grant: Grant, log: Logger, opts: GatewayOptions): Gateway {
  const policies: ChangePolicy[] = [...(opts.guards ?? [])];
  // -append-only's own rules first (their refusals name it), then -no-del / -no-overwrite it implies
  if (grant.appendOnly) policies.push(appendOnlyRules(sandbox));
  const rules = grantRules(grant.appendOnly ? { ...grant, noDelete: true, noOverwrite: true } : grant, sandbox);
  if (rules) policies.push(rules);
  if (opts.ledger) policies.push(new Quota(sandbox, opts.ledger, grant.limits, opts.keepsBackups));
  if (log.isLevelEnabled('debug')) policies.push(auditLog(log));
  policies.push(...(opts.extra ?? []));
  return new Gateway(sandbox, policies);
}

/** "record this change": one debug record per change made. */
function auditLog(log: Logger): ChangePolicy {
  return { after: (c) => log.debug({ change: c }, 'destination change') };
}

export { Gateway } from './gateway.js';
export type { Change, ChangePolicy } from './change.js';
