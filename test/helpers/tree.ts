/**
 * The one tree snapshot of the tests: compare what our server produced with what a plain local
 * rsync produced from the same source (compareTrees), or a tree with itself earlier (treeChanges:
 * outside the root untouched, what a push changed).
 *
 *   const ref = await localRsync(['-a', 'src/', refDir + '/']);
 *   const diffs = compareTrees(await snapshotTree(refDir), await snapshotTree(ourDir), { ignoreDirMtimes: true });
 *   t.same(diffs, []);
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { run, RSYNC, type RunOptions, type RunResult } from './server.js';

type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

interface TreeEntry {
  /** Relative to the snapshot root; the root itself is '.'. */
  path: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  size: number;
  mtimeNs: bigint;
  uid: number;
  gid: number;
  nlink: number;
  ino: bigint;
  rdev: number;
  /** sha256 hex of the content (regular files). */
  hash?: string;
  /** Link target (symlinks), as bytes decoded latin1. */
  target?: string;
}

export interface TreeSnapshot {
  root: string;
  entries: Map<string, TreeEntry>;
  /** Sets of paths that share an inode (regular files etc. with nlink > 1, within the tree), sorted. */
  hardLinkGroups: string[][];
}

function typeOf(st: import('node:fs').BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  return 'blockdev';
}

/**
 * Walks `dir` without following symlinks (synchronously: hostile and sandbox tests snapshot
 * between steps of a session they drive). Names are kept as bytes decoded latin1.
 */
export function snapshotTreeSync(dir: string): TreeSnapshot {
  const entries = new Map<string, TreeEntry>();
  const walk = (rel: string, abs: Buffer): void => {
    // A name that goes away during the walk (a session or a race still running) is left out.
    const st = lstatSync(abs, { bigint: true, throwIfNoEntry: rel === '.' });
    if (!st) return;
    const type = typeOf(st);
    const entry: TreeEntry = {
      path: rel,
      type,
      mode: Number(st.mode & 0o7777n),
      size: type === 'dir' ? 0 : Number(st.size),
      mtimeNs: st.mtimeNs,
      uid: Number(st.uid),
      gid: Number(st.gid),
      nlink: Number(st.nlink),
      ino: st.ino,
      rdev: Number(st.rdev),
    };
    if (type === 'file') entry.hash = createHash('sha256').update(readFileSync(abs)).digest('hex');
    if (type === 'symlink') entry.target = readlinkSync(abs, { encoding: 'buffer' }).toString('latin1');
    entries.set(rel, entry);
    if (type === 'dir') {
      const names = readdirSync(abs, { encoding: 'buffer' });
      for (const name of names.sort(Buffer.compare)) {
        const childRel = rel === '.' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
        walk(childRel, Buffer.concat([abs, Buffer.from('/'), name]));
      }
    }
  };
  walk('.', Buffer.from(dir));
  const byIno = new Map<bigint, string[]>();
  for (const e of entries.values()) {
    if (e.type === 'dir' || e.nlink < 2) continue;
    const list = byIno.get(e.ino) ?? [];
    list.push(e.path);
    byIno.set(e.ino, list);
  }
  const hardLinkGroups = [...byIno.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  return { root: dir, entries, hardLinkGroups };
}

/** snapshotTreeSync for async callers (the interop tests). */
export async function snapshotTree(dir: string): Promise<TreeSnapshot> {
  return snapshotTreeSync(dir);
}

/** Paths (snapshot-relative) that differ between two snapshots of one tree. */
export interface TreeChanges {
  added: string[];
  removed: string[];
  /** Type, permissions, size, mtime, owner, link count, inode, device number, content or target differ. */
  changed: string[];
}

/** What happened to a tree between two snapshots of it (nothing: three empty lists). */
export function treeChanges(before: TreeSnapshot, after: TreeSnapshot): TreeChanges {
  const same = (x: TreeEntry, y: TreeEntry): boolean =>
    (Object.keys(x) as Array<keyof TreeEntry>).every((k) => x[k] === y[k]) && Object.keys(x).length === Object.keys(y).length;
  const added = [...after.entries.keys()].filter((k) => !before.entries.has(k));
  const removed = [...before.entries.keys()].filter((k) => !after.entries.has(k));
  const changed = [...after.entries].filter(([k, y]) => before.entries.has(k) && !same(before.entries.get(k)!, y)).map(([k]) => k);
  return { added, removed, changed };
}

/** treeChanges as readable lines ([] = identical). */
export function treeChangeLines(before: TreeSnapshot, after: TreeSnapshot): string[] {
  const c = treeChanges(before, after);
  const show = (e: TreeEntry | undefined): string => JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
  return [
    ...c.removed.map((k) => `removed ${k}`),
    ...c.changed.map((k) => `changed ${k}: ${show(before.entries.get(k))} -> ${show(after.entries.get(k))}`),
    ...c.added.map((k) => `added ${k}`),
  ];
}

export interface CompareOptions {
  ignoreDirMtimes?: boolean;
  ignoreSymlinkMtimes?: boolean;
  /** Ignore all mtimes. */
  ignoreMtimes?: boolean;
  /** Compare mtimes only to whole seconds (e.g. protocol < 31 has no nanoseconds). */
  mtimeSecondsOnly?: boolean;
  ignoreOwner?: boolean;
  ignorePerms?: boolean;
  ignoreHardLinks?: boolean;
  /** Skip the root directory's own attributes. */
  ignoreRoot?: boolean;
  /** Paths (relative) to leave out of the comparison. */
  exclude?: (path: string) => boolean;
}

const printable = (p: string) => JSON.stringify(p);

/** Human-readable differences between `expected` (a) and `actual` (b); empty when they match. */
export function compareTrees(a: TreeSnapshot, b: TreeSnapshot, opts: CompareOptions = {}): string[] {
  const diffs: string[] = [];
  const skip = (p: string) => (opts.exclude ? opts.exclude(p) : false);
  const paths = new Set([...a.entries.keys(), ...b.entries.keys()]);
  for (const path of [...paths].sort()) {
    if (skip(path)) continue;
    const x = a.entries.get(path);
    const y = b.entries.get(path);
    if (!x) {
      diffs.push(`${printable(path)}: unexpected ${y!.type}`);
      continue;
    }
    if (!y) {
      diffs.push(`${printable(path)}: missing ${x.type}`);
      continue;
    }
    if (path === '.' && opts.ignoreRoot) continue;
    if (x.type !== y.type) {
      diffs.push(`${printable(path)}: type ${x.type} != ${y.type}`);
      continue;
    }
    if (x.type === 'file' && x.size !== y.size) diffs.push(`${printable(path)}: size ${x.size} != ${y.size}`);
    if (x.hash !== y.hash) diffs.push(`${printable(path)}: content differs`);
    if (x.target !== y.target) diffs.push(`${printable(path)}: symlink target ${printable(x.target ?? '')} != ${printable(y.target ?? '')}`);
    if (!opts.ignorePerms && x.type !== 'symlink' && x.mode !== y.mode) {
      diffs.push(`${printable(path)}: mode ${x.mode.toString(8)} != ${y.mode.toString(8)}`);
    }
    if (!opts.ignoreOwner && (x.uid !== y.uid || x.gid !== y.gid)) {
      diffs.push(`${printable(path)}: owner ${x.uid}:${x.gid} != ${y.uid}:${y.gid}`);
    }
    if ((x.type === 'chardev' || x.type === 'blockdev') && x.rdev !== y.rdev) {
      diffs.push(`${printable(path)}: rdev ${x.rdev} != ${y.rdev}`);
    }
    const skipMtime = opts.ignoreMtimes || (x.type === 'dir' && opts.ignoreDirMtimes) || (x.type === 'symlink' && opts.ignoreSymlinkMtimes);
    if (!skipMtime) {
      const mx = opts.mtimeSecondsOnly ? x.mtimeNs / 1_000_000_000n : x.mtimeNs;
      const my = opts.mtimeSecondsOnly ? y.mtimeNs / 1_000_000_000n : y.mtimeNs;
      if (mx !== my) diffs.push(`${printable(path)}: mtime ${x.mtimeNs} != ${y.mtimeNs} (ns)`);
    }
  }
  if (!opts.ignoreHardLinks) {
    const keep = (g: string[]) => g.filter((p) => !skip(p));
    const ga = a.hardLinkGroups.map(keep).filter((g) => g.length > 1).map((g) => g.join(' = '));
    const gb = b.hardLinkGroups.map(keep).filter((g) => g.length > 1).map((g) => g.join(' = '));
    for (const g of ga) if (!gb.includes(g)) diffs.push(`hard links missing: ${g}`);
    for (const g of gb) if (!ga.includes(g)) diffs.push(`unexpected hard links: ${g}`);
  }
  return diffs;
}

/** The reference run: plain local `/usr/bin/rsync ...args` (no ssh, no server). */
export function localRsync(args: string[], opts?: RunOptions): Promise<RunResult> {
  return run(RSYNC, args, opts);
}

