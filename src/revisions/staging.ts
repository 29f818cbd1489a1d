/**
 * The staging place of a revision push (docs/revisions.md): a fresh directory under
 * `DIR/.rrsyncd-staging/`, named as it will be published, and the published revision the
 * pointer names now (the basis every unchanged file is hard-linked from).
 */
import type { Logger } from 'pino';
import { Sandbox, SandboxError } from '../sandbox/sandbox.js';
import { lockRoot } from '../sandbox/lock.js';
import { STAGING_DIR, revisionBaseName, revisionsDir, uniqueRevisionName, type RevisionMode } from './layout.js';
import { currentRevision } from './pointer.js';

export interface StagedRevision {
  mode: RevisionMode;
  name: string;
  /** Root-relative `.rrsyncd-staging/<name>`. */
  stagingRel: string;
  /** Root-relative `snapshots/<name>` (or `revisions/<name>`) once published. */
  publishedRel: string;
  /** The revision the pointer names now (root-relative), or null for the first one. */
  previousRel: string | null;
  previousName: string | null;
}

/** Makes the staging directory of a new revision (under the root lock: one writer per root). */
export function openStaging(sandbox: Sandbox, mode: RevisionMode, now: Date, log?: Logger): StagedRevision {
  const published = revisionsDir(mode);
  sandbox.mkdirp(published, 0o755);
  sandbox.mkdirp(STAGING_DIR, 0o700);
  const taken = (n: string): boolean => sandbox.lstat(`${published}/${n}`) !== null || sandbox.lstat(`${STAGING_DIR}/${n}`) !== null;
  const name = uniqueRevisionName(revisionBaseName(now), taken);
  const stagingRel = `${STAGING_DIR}/${name}`;
  sandbox.mkdir(stagingRel, 0o755);
  const previousName = currentRevision(sandbox, mode, log);
  return {
    mode,
    name,
    stagingRel,
    publishedRel: `${published}/${name}`,
    previousName,
    previousRel: previousName === null ? null : `${published}/${previousName}`,
  };
}

/**
 * Removes a staging directory (a push that failed, was cut off or vetoed), letting other
 * sessions run meanwhile; never rejects (a failure is logged).
 */
export async function discardStaging(sandbox: Sandbox, staged: StagedRevision, log: Logger): Promise<void> {
  try {
    await sandbox.removeTreeYielding(staged.stagingRel);
    log.info({ event: 'revision.discarded', revision: staged.name }, 'revision discarded');
  } catch (err) {
    log.error({ revision: staged.name, err: (err as Error).message }, 'could not remove the staging of a discarded revision');
  }
}

/**
 * Removes whatever a crashed push left in the staging place. Called with the root lock held
 * (before a push) and at server start; returns the names removed.
 */
export async function removeStaleStaging(sandbox: Sandbox, log: Logger): Promise<string[]> {
  let names: string[];
  try {
    names = sandbox.readdir(STAGING_DIR);
  } catch (err) {
    if (err instanceof SandboxError && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return [];
    throw err;
  }
  for (const name of names) {
    await sandbox.removeTreeYielding(`${STAGING_DIR}/${name}`);
    log.warn({ event: 'revision.discarded', revision: name, stale: true }, 'stale revision staging removed');
  }
  return names;
}

/**
 * At server start: the staging places of every revisions root (missing or busy roots skipped),
 * each removed with the root lock held. Never rejects.
 */
export async function removeStaleStagingAtStart(roots: readonly string[], log: Logger): Promise<void> {
  for (const root of new Set(roots)) {
    let lock;
    let sandbox: Sandbox | undefined;
    try {
      lock = lockRoot(root);
      if (!lock) continue;
      sandbox = Sandbox.open(root);
      await removeStaleStaging(sandbox, log.child({ root }));
    } catch (err) {
      if (!(err instanceof SandboxError && err.code === 'ENOENT') && (err as NodeJS.ErrnoException).code !== 'ENOENT') {
        log.warn({ root, err: (err as Error).message }, 'could not clean the staging place of a revisions root');
      }
    } finally {
      sandbox?.close();
      lock?.release();
    }
  }
}
