/**
 * Publish mode keeps the revision `current` names and the `keep` revisions before it; older ones
 * are removed `graceSeconds` after a publish (a reader that resolved `current` just before the
 * switch may still be reading the old tree). The timers belong to the process (unref'd), not to
 * a session: a session's end does not cancel them. Lost timers (a restart) are made up for at the
 * next publish, which looks at every older revision again.
 */
import { usageLedgers } from '../usage/registry.js';
import type { Logger } from 'pino';
import { Sandbox, SandboxError } from '../sandbox/sandbox.js';
import { lockRoot, type RootLock } from '../sandbox/lock.js';
import { MANIFEST_SUFFIX, revisionsDir, sortRevisionNames, type RevisionsConfig } from './layout.js';
import { currentRevision } from './pointer.js';

const DEFAULT_KEEP = 3;
const DEFAULT_GRACE_SECONDS = 60;
/** A push holds the root: try again this much later. */
const BUSY_RETRY_MS = 5_000;

const timers = new Map<string, NodeJS.Timeout>();

/**
 * Revisions to remove once `published` was published: those older than it beyond the newest
 * `keep`, never the one `current` names, never a newer one.
 */
export function revisionsToRemove(names: readonly string[], published: string, current: string | null, keep: number): string[] {
  const ordered = sortRevisionNames(names);
  const at = ordered.indexOf(published);
  if (at < 0) return [];
  const older = ordered.slice(0, at);
  return older.slice(0, Math.max(0, older.length - keep)).filter((n) => n !== current);
}

/** Removes what revisionsToRemove names now; manifests only as a prefix, so the chain stays whole. */
async function removeOldRevisions(sandbox: Sandbox, cfg: RevisionsConfig, published: string, log: Logger): Promise<string[]> {
  const dir = revisionsDir(cfg.mode);
  const entries = sandbox.readdir(dir);
  const names = entries.filter((n) => !n.endsWith(MANIFEST_SUFFIX));
  const current = currentRevision(sandbox, cfg.mode, log);
  const remove = revisionsToRemove(names, published, current, cfg.keep ?? DEFAULT_KEEP);
  const gone = new Set(remove);
  for (const name of remove) {
    await sandbox.removeTreeYielding(`${dir}/${name}`);
    log.info({ event: 'revision.removed', revision: name }, 'old revision removed');
  }
  const manifests = sortRevisionNames(entries.filter((n) => n.endsWith(MANIFEST_SUFFIX)).map((n) => n.slice(0, -MANIFEST_SUFFIX.length)));
  for (const name of manifests) {
    if (!gone.has(name)) break;
    sandbox.unlink(`${dir}/${name}${MANIFEST_SUFFIX}`);
  }
  return remove;
}

/** A timer's run: takes the root lock (or tries again later) and removes; never rejects. */
async function runRetention(root: string, cfg: RevisionsConfig, published: string, log: Logger): Promise<void> {
  let lock: RootLock | null = null;
  let sandbox: Sandbox | undefined;
  try {
    lock = lockRoot(root);
    if (!lock) {
      void scheduleRetention(root, cfg, published, log, BUSY_RETRY_MS);
      return;
    }
    sandbox = Sandbox.open(root);
    const removed = await removeOldRevisions(sandbox, cfg, published, log);
    const ledger = removed.length ? usageLedgers.peek(root) : undefined;
    if (ledger) void usageLedgers.reconcile(ledger).catch(() => undefined);
  } catch (err) {
    log.error({ err: err instanceof SandboxError ? err.message : String(err) }, 'removing old revisions failed');
  } finally {
    sandbox?.close();
    lock?.release();
  }
}

/**
 * Schedules the removal of old revisions of a publish-mode root (replacing a pending one for
 * the same root). `graceSeconds: 0` removes them at once (settling when they are gone); the
 * caller then holds the root lock.
 */
export async function scheduleRetention(
  root: string,
  cfg: RevisionsConfig,
  published: string,
  log: Logger,
  delayMs?: number,
  sandbox?: Sandbox,
): Promise<void> {
  clearTimeout(timers.get(root));
  timers.delete(root);
  const ms = delayMs ?? (cfg.graceSeconds ?? DEFAULT_GRACE_SECONDS) * 1000;
  if (ms === 0 && sandbox) {
    await removeOldRevisions(sandbox, cfg, published, log);
    return;
  }
  const timer = setTimeout(() => {
    timers.delete(root);
    void runRetention(root, cfg, published, log);
  }, ms);
  timer.unref();
  timers.set(root, timer);
}
