/**
 * Where revisions live under a revisions root DIR (docs/revisions.md):
 *
 *   snapshot mode                      publish mode
 *   DIR/snapshots/<name>/              DIR/revisions/<name>/
 *   DIR/snapshots/<name>.manifest.json DIR/revisions/<name>.manifest.json
 *   DIR/latest -> snapshots/<name>     DIR/current -> revisions/<name>
 *   DIR/.rrsyncd-staging/<name>/       (same: a push builds here, hidden, then is renamed in)
 *
 * Names are UTC times `2026-12-07T101500Z`, with `-2`, `-3`, … when two land in one second, so
 * that they sort by time as strings.
 */
export type RevisionMode = 'snapshot' | 'publish';

export interface RevisionsConfig {
  mode: RevisionMode;
  /** publish: revisions kept besides `current` (default 3). */
  keep?: number;
  /** publish: seconds an unpublished older revision stays before it is removed (default 60). */
  graceSeconds?: number;
}

export const STAGING_DIR = '.rrsyncd-staging';
export const MANIFEST_SUFFIX = '.manifest.json';

/** The folder that holds published revisions, relative to DIR. */
export function revisionsDir(mode: RevisionMode): string {
  return mode === 'snapshot' ? 'snapshots' : 'revisions';
}

/** The symlink that names the published revision, relative to DIR. */
export function pointerName(mode: RevisionMode): string {
  return mode === 'snapshot' ? 'latest' : 'current';
}

const NAME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-([1-9]\d{0,5}))?$/;

/** The base name for a revision started at `at` (no suffix). */
export function revisionBaseName(at: Date): string {
  const iso = at.toISOString(); // 2026-12-07T10:15:00.000Z
  return `${iso.slice(0, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
}

/** The first of `base`, `base-2`, `base-3`, … that `taken` does not hold. */
export function uniqueRevisionName(base: string, taken: (name: string) => boolean): string {
  if (!taken(base)) return base;
  for (let n = 2; ; n++) {
    const name = `${base}-${n}`;
    if (!taken(name)) return name;
  }
}

/** The time a revision name stands for, or null when `name` is not a revision name. */
export function parseRevisionName(name: string): Date | null {
  const m = NAME.exec(name);
  if (!m) return null;
  const t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  return Number.isNaN(t) ? null : new Date(t);
}

/** Revision names in time order (the suffix orders names of one second). */
export function sortRevisionNames(names: readonly string[]): string[] {
  const key = (n: string): [number, number] => {
    const dash = n.lastIndexOf('-');
    const suffix = n.endsWith('Z') ? 1 : Number(n.slice(dash + 1));
    return [parseRevisionName(n)?.getTime() ?? 0, suffix];
  };
  return names
    .filter((n) => parseRevisionName(n) !== null)
    .sort((a, b) => {
      const [ta, sa] = key(a);
      const [tb, sb] = key(b);
      return ta - tb || sa - sb;
    });
}

/** What a revision event carries (pino records, hooks' JSON on stdin, manifests). */
export interface RevisionEvent {
  event: 'revision.staged' | 'revision.published' | 'revision.vetoed' | 'revision.discarded' | 'session.end';
  tenant?: string;
  /** SHA256 fingerprint of the key, as ssh-keygen -l prints it. */
  keyFingerprint?: string;
  mode?: RevisionMode;
  /** Revision name, and its path relative to the revisions root. */
  revision?: string;
  revisionPath?: string;
  /** Absolute path of the revisions root (hooks run on the server; never shown to a client). */
  root?: string;
  argv?: string[];
  files?: number;
  bytes?: number;
  /** Bytes of the revision's files that no earlier revision holds (hard links not counted). */
  newBytes?: number;
  exitCode?: number;
  start?: string;
  end?: string;
}

/**
 * What the publishing step asks of the operator's hooks (implemented in ops/, wired by the ssh
 * layer). `verify` resolves to null to let the revision be published, or to the reason for a veto.
 */
export interface RevisionHooks {
  verify?(event: RevisionEvent, stagedPath: string): Promise<string | null>;
  published?(event: RevisionEvent): void;
}
