/**
 * What the ssh layer tells the operations side (metrics, live sessions, the operator console).
 * Every hook is optional: a server without them behaves exactly as before.
 */
import type { Session } from 'ssh2';
import type { Logger } from 'pino';
import type { KeyEntry, KeyRing } from '../ssh/authorized-keys.js';
import type { RevisionHooks } from '../revisions/layout.js';
import type { ExecSummary } from './metrics.js';
import type { SessionRegistry } from './sessions.js';

export interface AdminSessionInfo {
  conn: number;
  entry: KeyEntry;
  user?: string;
  address: string;
  log: Logger;
}

export interface ServerHooks {
  /** Running execs, for `rrsyncd sessions` and `kick`. */
  sessions?: SessionRegistry;
  /** A connection closed without authenticating; `reason` is its last refusal. */
  authFailed?(reason: string): void;
  /** After the exec summary record was logged. */
  execEnded?(summary: ExecSummary & Record<string, unknown>): void;
  /** The `admins` keys (current configuration), tried before the rsync keys. */
  adminRing?(): KeyRing | undefined;
  /** A session channel opened by an admin key: the console, never rsync. */
  adminSession?(session: Session, info: AdminSessionInfo): void;
  /** The operator's verify/published hooks, for sessions that publish revisions. */
  revisionHooks?: RevisionHooks;
}
