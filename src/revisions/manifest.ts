/**
 * Revision manifests (docs/revisions.md): `<name>.manifest.json` beside each published revision,
 * holding who pushed it, what it holds and the sha256 of the manifest before it, so that a
 * removed or edited manifest breaks the chain. Read and written through the sandbox.
 */
import { createHash } from 'node:crypto';
import { SandboxError, type Sandbox } from '../sandbox/sandbox.js';
import { readSmallFile } from '../sandbox/small-file.js';
import { MANIFEST_SUFFIX, revisionsDir, sortRevisionNames, type RevisionMode } from './layout.js';

/** Manifests hold an argv: bounded like a command line, with room for the rest. */
const MAX_MANIFEST_BYTES = 1 << 20;

export interface Manifest {
  version: 1;
  mode: RevisionMode;
  revision: string;
  /** The revision this one was linked against (the pointer's target when it was built). */
  basis: string | null;
  /** The manifest before this one in name order, and the sha256 (hex) of its file. */
  previous: string | null;
  previousSha256: string | null;
  tenant?: string;
  keyFingerprint?: string;
  argv: string[];
  /** Regular files, and all entries (directories, links, … included). */
  files: number;
  entries: number;
  /** Bytes of all regular files, and of those whose inode no earlier revision holds (counted once per inode). */
  bytes: number;
  newBytes: number;
  start: string;
  end: string;
}

export interface TreeCounts {
  files: number;
  entries: number;
  bytes: number;
  newBytes: number;
}

/** Entries counted between two turns of the event loop (other sessions keep moving). */
const YIELD_EVERY = 2000;

/**
 * Counts a staged revision. A file is new data unless the same path of `basisRel` is the same
 * inode (a --link-dest hard link). Walks one directory at a time (no list of the whole tree).
 */
export async function countTree(sandbox: Sandbox, rootRel: string, basisRel: string | null): Promise<TreeCounts> {
  const counts: TreeCounts = { files: 0, entries: 0, bytes: 0, newBytes: 0 };
  const seen = new Set<number>();
  const pending = [''];
  while (pending.length) {
    const dir = pending.pop()!;
    for (const name of sandbox.readdir(dir === '' ? rootRel : `${rootRel}/${dir}`)) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      const st = sandbox.lstat(`${rootRel}/${rel}`);
      if (!st) continue;
      if (++counts.entries % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
      if (st.type === 'dir') pending.push(rel);
      if (st.type !== 'file') continue;
      counts.files++;
      counts.bytes += st.size;
      if (st.nlink > 1 && (seen.has(st.ino) || sameInode(sandbox, basisRel, rel, st.ino))) {
        seen.add(st.ino);
        continue;
      }
      if (st.nlink > 1) seen.add(st.ino);
      counts.newBytes += st.size;
    }
  }
  return counts;
}

function sameInode(sandbox: Sandbox, basisRel: string | null, rel: string, ino: number): boolean {
  if (basisRel === null) return false;
  try {
    return sandbox.lstat(`${basisRel}/${rel}`)?.ino === ino;
  } catch {
    return false;
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function manifestRel(mode: RevisionMode, name: string): string {
  return `${revisionsDir(mode)}/${name}${MANIFEST_SUFFIX}`;
}

/** Names of the manifests present, in revision order. */
function manifestNames(sandbox: Sandbox, mode: RevisionMode): string[] {
  let names: string[];
  try {
    names = sandbox.readdir(revisionsDir(mode));
  } catch (err) {
    if (err instanceof SandboxError && err.code === 'ENOENT') return [];
    throw err;
  }
  return sortRevisionNames(names.filter((n) => n.endsWith(MANIFEST_SUFFIX)).map((n) => n.slice(0, -MANIFEST_SUFFIX.length)));
}

function readManifestFile(sandbox: Sandbox, mode: RevisionMode, name: string): Buffer | null {
  return readSmallFile(sandbox, manifestRel(mode, name), MAX_MANIFEST_BYTES);
}

/** The newest manifest before `name` and the sha256 of its file: the link of the chain. */
export function chainLink(sandbox: Sandbox, mode: RevisionMode, name: string): { previous: string | null; previousSha256: string | null } {
  const all = sortRevisionNames([...manifestNames(sandbox, mode).filter((n) => n !== name), name]);
  const at = all.indexOf(name);
  const previous = at > 0 ? all[at - 1]! : null;
  const data = previous === null ? null : readManifestFile(sandbox, mode, previous);
  return { previous: data === null ? null : previous, previousSha256: data === null ? null : sha256(data) };
}

/** Writes the manifest (a temp name, then renamed into place: never half a manifest). */
export function writeManifest(sandbox: Sandbox, manifest: Manifest): void {
  const data = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
  const dir = revisionsDir(manifest.mode);
  const { fd, rel } = sandbox.createTemp(dir, `${manifest.revision}${MANIFEST_SUFFIX}`, 0o644);
  try {
    sandbox.write(fd, data, 0, data.length, 0);
    sandbox.fsync(fd);
  } finally {
    sandbox.close(fd);
  }
  sandbox.rename(rel, manifestRel(manifest.mode, manifest.revision));
}

export interface ChainReport {
  ok: boolean;
  /** Manifests checked, in order. */
  checked: string[];
  /** One line per break: a manifest that does not name, or hash to, the one before it. */
  problems: string[];
}

/**
 * `rrsyncd revisions verify-chain`: each manifest must name the manifest before it and carry
 * the sha256 of that file. The oldest one may name a predecessor that was pruned (pruning should
 * keep manifests, which are small, so that the chain stays whole). A revision directory without
 * a manifest is a problem too.
 */
export function verifyManifestChain(sandbox: Sandbox, mode: RevisionMode): ChainReport {
  const names = manifestNames(sandbox, mode);
  const problems: string[] = [];
  let prevName: string | null = null;
  let prevSha: string | null = null;
  for (const name of names) {
    const data = readManifestFile(sandbox, mode, name);
    let m: Partial<Manifest> | null = null;
    try {
      m = data === null ? null : (JSON.parse(data.toString('utf8')) as Partial<Manifest>);
    } catch {
      m = null;
    }
    if (m === null || typeof m !== 'object') problems.push(`${name}: manifest unreadable or not JSON`);
    else if (m.revision !== name) problems.push(`${name}: manifest names revision ${JSON.stringify(m.revision)}`);
    else if (prevName !== null && (m.previous !== prevName || m.previousSha256 !== prevSha)) {
      problems.push(`${name}: does not chain to ${prevName} (previous ${JSON.stringify(m.previous)}, sha256 ${m.previousSha256 ?? 'none'})`);
    }
    prevName = name;
    prevSha = data === null ? null : sha256(data);
  }
  const withManifest = new Set(names);
  let dirs: string[] = [];
  try {
    dirs = sortRevisionNames(sandbox.readdir(revisionsDir(mode)));
  } catch {
    dirs = [];
  }
  for (const d of dirs) if (!withManifest.has(d) && sandbox.lstat(`${revisionsDir(mode)}/${d}`)?.type === 'dir') problems.push(`${d}: no manifest`);
  return { ok: problems.length === 0, checked: names, problems };
}
