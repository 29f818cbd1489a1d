/**
 * What a revisions root holds, read through the sandbox (the operator's view: `rrsyncd
 * revisions`, prune, rollback). The layout is src/revisions/layout.ts.
 */
import type { Sandbox } from '../sandbox/sandbox.js';
import { readSmallFile } from '../sandbox/small-file.js';
import { currentRevision } from './pointer.js';
import {
  MANIFEST_SUFFIX,
  parseRevisionName,
  revisionsDir,
  sortRevisionNames,
  type RevisionMode,
} from './layout.js';

/** A manifest larger than this is not read (its revision is listed without size). */
const MANIFEST_MAX_BYTES = 1 << 20;

interface RevisionInfo {
  name: string;
  time: Date;
  /** The tree is there (false: pruned, only its manifest is left). */
  present: boolean;
  /** From the manifest, when there is one. */
  files?: number;
  bytes?: number;
  end?: string;
}

export interface Inventory {
  mode: RevisionMode;
  /** Revisions oldest first (trees and manifests of pruned ones). */
  revisions: RevisionInfo[];
  /** The revision `latest` / `current` points to (undefined: no pointer, or not to a revision). */
  pointer?: string;
}

export class RevisionsError extends Error {}

/** The mode a root is in: given, or found from which of snapshots/ and revisions/ exists. */
export function detectMode(sandbox: Sandbox, given?: RevisionMode): RevisionMode {
  if (given) return given;
  const found = (['snapshot', 'publish'] as const).filter((m) => sandbox.lstat(revisionsDir(m))?.type === 'dir');
  if (found.length === 1) return found[0]!;
  throw new RevisionsError(
    found.length === 0
      ? 'no snapshots/ or revisions/ directory: not a revisions root'
      : 'both snapshots/ and revisions/ exist: say which with --mode snapshot|publish',
  );
}

export function readInventory(sandbox: Sandbox, mode: RevisionMode): Inventory {
  const dir = revisionsDir(mode);
  const entries = sandbox.readdir(dir);
  const names = new Set<string>();
  const trees = new Set<string>();
  for (const e of entries) {
    if (e.endsWith(MANIFEST_SUFFIX)) {
      const n = e.slice(0, -MANIFEST_SUFFIX.length);
      if (parseRevisionName(n)) names.add(n);
    } else if (parseRevisionName(e) && sandbox.lstat(`${dir}/${e}`)?.type === 'dir') {
      names.add(e);
      trees.add(e);
    }
  }
  const revisions = sortRevisionNames([...names]).map((name) => ({
    name,
    time: parseRevisionName(name)!,
    present: trees.has(name),
    ...manifestFacts(sandbox, `${dir}/${name}${MANIFEST_SUFFIX}`),
  }));
  return { mode, revisions, pointer: (currentRevision(sandbox, mode) ?? undefined) };
}

function manifestFacts(sandbox: Sandbox, rel: string): Pick<RevisionInfo, 'files' | 'bytes' | 'end'> {
  let raw: Buffer | null;
  try {
    raw = readSmallFile(sandbox, rel, MANIFEST_MAX_BYTES);
  } catch {
    return {};
  }
  if (!raw) return {};
  try {
    const m = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    const facts: Pick<RevisionInfo, 'files' | 'bytes' | 'end'> = {};
    if (typeof m.files === 'number') facts.files = m.files;
    if (typeof m.bytes === 'number') facts.bytes = m.bytes;
    if (typeof m.end === 'string') facts.end = m.end;
    return facts;
  } catch {
    return {};
  }
}
