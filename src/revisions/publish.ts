/**
 * Publishing a staged revision once its push ended with exit 0 (docs/revisions.md): the verify
 * hook may veto it; then it is renamed into `snapshots/` (`revisions/`), its manifest is written
 * beside it, and the pointer symlink is replaced atomically (a new symlink renamed over it), so
 * a reader that resolves `latest`/`current` sees the old tree or the new one, never a mix.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ExitCode, RsyncError } from '../protocol/errors.js';
import { SandboxError, type Sandbox } from '../sandbox/sandbox.js';
import { MANIFEST_SUFFIX, type RevisionEvent, type RevisionHooks, type RevisionsConfig } from './layout.js';
import { chainLink, countTree, writeManifest, type Manifest } from './manifest.js';
import { setPointer } from './pointer.js';
import { scheduleRetention } from './retention.js';
import type { StagedRevision } from './staging.js';

export interface PublishRequest {
  sandbox: Sandbox;
  staged: StagedRevision;
  config: RevisionsConfig;
  /** Absolute root (hooks and the log only; never shown to the client). */
  root: string;
  log: Logger;
  hooks?: RevisionHooks;
  tenant?: string;
  keyFingerprint?: string;
  /** The client's command line. */
  argv: string[];
  start: Date;
}

function failure(err: unknown): RsyncError {
  const why = err instanceof SandboxError ? err.code : 'internal error';
  return new RsyncError(`rrsyncd: publishing the revision failed (${why}); nothing was published`, ExitCode.FILEIO);
}

async function verify(req: PublishRequest, event: RevisionEvent): Promise<void> {
  if (!req.hooks?.verify) return;
  let reason: string | null;
  try {
    reason = await req.hooks.verify({ ...event, event: 'revision.staged', revisionPath: req.staged.stagingRel }, join(req.root, req.staged.stagingRel));
  } catch (err) {
    reason = `hook failed: ${(err as Error).message}`;
  }
  if (reason === null) return;
  req.log.warn({ ...event, event: 'revision.vetoed', reason }, 'revision vetoed');
  throw new RsyncError(`rrsyncd: revision refused by verify hook: ${reason}`, ExitCode.SYNTAX);
}

/** Moves the staged revision in, writes its manifest, switches the pointer; undone on failure. */
async function install(req: PublishRequest, manifest: Omit<Manifest, 'previous' | 'previousSha256' | 'end'>): Promise<Manifest> {
  const { sandbox, staged } = req;
  sandbox.rename(staged.stagingRel, staged.publishedRel);
  sandbox.dropDirCache();
  try {
    const full: Manifest = { ...manifest, ...chainLink(sandbox, staged.mode, staged.name), end: new Date().toISOString() };
    writeManifest(sandbox, full);
    setPointer(sandbox, staged.mode, staged.name);
    return full;
  } catch (err) {
    try {
      await sandbox.removeTreeYielding(staged.publishedRel);
      const manifest = `${staged.publishedRel}${MANIFEST_SUFFIX}`;
      if (sandbox.lstat(manifest)) sandbox.unlink(manifest);
    } catch (undo) {
      req.log.error({ revision: staged.name, err: (undo as Error).message }, 'could not remove a revision that failed to publish');
    }
    throw err;
  }
}

/**
 * Publishes the staged revision, or throws an RsyncError with the one line the client gets
 * (the staging is then still there: the caller discards it).
 */
export async function publishRevision(req: PublishRequest): Promise<RevisionEvent> {
  const { sandbox, staged } = req;
  let counts;
  try {
    counts = await countTree(sandbox, staged.stagingRel, staged.previousRel);
  } catch (err) {
    throw failure(err);
  }
  const event: RevisionEvent = {
    event: 'revision.published',
    tenant: req.tenant,
    keyFingerprint: req.keyFingerprint,
    mode: staged.mode,
    revision: staged.name,
    revisionPath: staged.publishedRel,
    root: req.root,
    // byte strings (latin1) as the text the client typed
    argv: req.argv.map((a) => Buffer.from(a, 'latin1').toString('utf8')),
    files: counts.files,
    bytes: counts.bytes,
    newBytes: counts.newBytes,
    exitCode: 0,
    start: req.start.toISOString(),
  };
  await verify(req, event);
  let manifest: Manifest;
  try {
    manifest = await install(req, {
      version: 1,
      mode: staged.mode,
      revision: staged.name,
      basis: staged.previousName,
      tenant: req.tenant,
      keyFingerprint: req.keyFingerprint,
      argv: event.argv!,
      ...counts,
      start: event.start!,
    });
  } catch (err) {
    req.log.error({ revision: staged.name, err: (err as Error).message }, 'publishing the revision failed');
    throw failure(err);
  }
  event.end = manifest.end;
  req.log.info(event, 'revision published');
  try {
    req.hooks?.published?.(event);
  } catch (err) {
    req.log.error({ revision: staged.name, err: (err as Error).message }, 'published hook failed');
  }
  if (staged.mode === 'publish') {
    try {
      await scheduleRetention(req.root, req.config, staged.name, req.log, undefined, sandbox);
    } catch (err) {
      req.log.error({ err: (err as Error).message }, 'removing old revisions failed');
    }
  }
  return event;
}
