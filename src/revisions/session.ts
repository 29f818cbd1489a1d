/**
 * How a session on a revisions root differs (docs/revisions.md): a push builds a new revision in
 * the staging place and publishes it when it ends with exit 0; a pull reads the root without the
 * staging place and changes nothing. engine/session.ts calls prepareRevisions() once the options
 * are final and RevisionPush.finish() when the receiver is done.
 */
import type { Logger } from 'pino';
import type { ChangePolicy } from '../gateway/change.js';
import { ExitCode, RsyncError } from '../protocol/errors.js';
import type { Grant } from '../policy/grant.js';
import type { ServerOptions } from '../policy/server-options.js';
import { SandboxError, type Sandbox } from '../sandbox/sandbox.js';
import { STAGING_DIR, type RevisionHooks, type RevisionsConfig } from './layout.js';
import { readOnlyGuard, revisionGuard } from './guard.js';
import { revisionPullOptions, revisionPushOptions } from './options.js';
import { publishRevision } from './publish.js';
import { discardStaging, openStaging, removeStaleStaging, type StagedRevision } from './staging.js';

/** Who pushes, for manifests, events and hooks (from the ssh layer). */
export interface RevisionIdentity {
  tenant?: string;
  keyFingerprint?: string;
  hooks?: RevisionHooks;
  /** The client's command line. */
  argv: string[];
}

export interface PreparedRevisions {
  opts: ServerOptions;
  /** Change rules for the session's gateway (applied before every other policy). */
  guards: ChangePolicy[];
  /** Hidden from a pull. */
  hiddenPath: string;
  /** Set for a push: publish or discard it at the end. */
  push: RevisionPush | null;
}

export class RevisionPush {
  private settled = false;

  constructor(
    private readonly sandbox: Sandbox,
    private readonly grant: Grant & { revisions: RevisionsConfig },
    readonly staged: StagedRevision,
    private readonly log: Logger,
    private readonly start: Date,
    /** -n: the staging holds nothing of the client's: never published. */
    private readonly dryRun: boolean,
  ) {}

  /**
   * Publishes after exit 0 and returns the session's exit code: the receiver's, or the error's
   * when publishing failed or was vetoed (`say` tells the client in one line). Any other exit
   * code, and a dry run, discards the revision.
   */
  async finish(code: number, who: RevisionIdentity, say: (line: string) => void): Promise<number> {
    if (code !== 0 || this.dryRun) return code;
    try {
      await publishRevision({
        sandbox: this.sandbox,
        staged: this.staged,
        config: this.grant.revisions,
        root: this.grant.root,
        log: this.log,
        hooks: who.hooks,
        tenant: who.tenant,
        keyFingerprint: who.keyFingerprint,
        argv: who.argv,
        start: this.start,
      });
      this.settled = true;
      return 0;
    } catch (err) {
      if (!(err instanceof RsyncError)) throw err;
      say(err.message);
      return err.code;
    }
  }

  /**
   * Removes the staging unless it was published (a failed, killed or vetoed push); true when it
   * did. The caller holds the root lock until this settles; it never rejects.
   */
  async discardUnpublished(): Promise<boolean> {
    if (this.settled) return false;
    this.settled = true;
    await discardStaging(this.sandbox, this.staged, this.log);
    return true;
  }
}

/** Rewrites and guards a session on a revisions root (the caller holds the root lock for a push). */
export async function prepareRevisions(
  sandbox: Sandbox,
  grant: Grant & { revisions: RevisionsConfig },
  opts: ServerOptions,
  log: Logger,
): Promise<PreparedRevisions> {
  const mode = grant.revisions.mode;
  if (opts.sender) {
    return { opts: revisionPullOptions(opts, grant, mode), guards: [readOnlyGuard()], hiddenPath: STAGING_DIR, push: null };
  }
  const start = new Date();
  let staged: StagedRevision;
  try {
    await removeStaleStaging(sandbox, log);
    staged = openStaging(sandbox, mode, start, log);
  } catch (err) {
    if (!(err instanceof SandboxError)) throw err;
    log.error({ err: err.message }, 'could not make the staging directory of a revision');
    throw new RsyncError(`rrsyncd: cannot start a new revision (${err.code})`, ExitCode.FILEIO);
  }
  const push = new RevisionPush(sandbox, grant, staged, log, start, opts.dryRun);
  try {
    const rewritten = revisionPushOptions(opts, grant, staged, sandbox);
    log.info({ revision: staged.name, basis: staged.previousName, mode }, 'building revision');
    return { opts: rewritten, guards: [revisionGuard(staged.stagingRel, staged.previousRel)], hiddenPath: STAGING_DIR, push };
  } catch (err) {
    await push.discardUnpublished();
    throw err;
  }
}
