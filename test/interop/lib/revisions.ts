/**
 * Helpers for the revisions interop tests: a metadata fingerprint of each published revision
 * (everything but nlink and ctime, which a later revision's hard links change), the revision
 * list, and pushes through the in-process engine host.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { run, RSYNC, type RunResult } from '../../helpers/server.js';
import type { EngineHost } from './engine-host.js';

/** path → type, ino, mode, owner, size, mtime, content hash or link target. */
export function fingerprint(top: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    const p = rel ? join(top, rel) : top;
    const st = lstatSync(p, { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
    const body = type === 'file' ? createHash('sha256').update(readFileSync(p)).digest('hex') : type === 'symlink' ? readlinkSync(p) : '';
    out.set(rel, [type, st.ino, st.mode.toString(8), st.uid, st.gid, st.size, st.mtimeNs, body].join(' '));
    if (type === 'dir') for (const name of readdirSync(p).sort()) walk(rel ? `${rel}/${name}` : name);
  };
  walk('');
  return out;
}

/** Published revision names under root/<dir> (manifests left out), in name order. */
export function revisionNames(root: string, dir = 'snapshots'): string[] {
  if (!existsSync(join(root, dir))) return [];
  return readdirSync(join(root, dir)).filter((n) => !n.endsWith('.manifest.json') && !n.startsWith('.')).sort();
}

/** Entries left in the staging place. */
export function stagingLeft(root: string): string[] {
  return existsSync(join(root, '.rrsyncd-staging')) ? readdirSync(join(root, '.rrsyncd-staging')) : [];
}

export interface Pusher {
  (args: string[], grant?: object): Promise<RunResult>;
}

/** `rsync -e <engine host> ARGS` against `root` with a revisions grant. */
export function pusher(host: EngineHost, root: string, grant: object): Pusher {
  return (args, g = grant) =>
    run(RSYNC, ['-e', host.rsh, ...args], {
      env: { ...host.env, RRSYNCD_TEST_ROOT: root, RRSYNCD_TEST_GRANT: JSON.stringify(g) },
      timeoutMs: 120_000,
    });
}
