/** Symlink resolution confined to the transfer root, with sandbox lookups only. */
import { SandboxError } from '../../sandbox/errors.js';
import type { Sandbox } from '../../sandbox/sandbox.js';
import type { EntryStat } from '../../sandbox/stat.js';

/** Symlinks followed while resolving one path (Linux's MAXSYMLINKS). */
const MAX_LINK_HOPS = 40;

export type Resolution =
  | { kind: 'ok'; rel: string; st: EntryStat }
  | { kind: 'missing' }
  | { kind: 'escape' }
  | { kind: 'loop' };

/**
 * Resolves a root-relative path whose components may be symlinks to a symlink-free root-relative
 * path, using only sandbox lstat/readlink (the sandbox itself never follows links). Relative
 * targets resolve against the link's directory; a target that climbs above the root, or an
 * absolute one (unless the root is '/', where it names a path below the root), is an escape;
 * more than MAX_LINK_HOPS links is a loop. With `trusted`, a link it rejects is not followed (an
 * escape too).
 */
export function resolveInRoot(sandbox: Sandbox, rel: string, rootIsSlash: boolean, trusted?: (link: EntryStat) => boolean): Resolution {
  const done: string[] = [];
  const todo = rel.split('/').reverse();
  let hops = 0;
  let st: EntryStat | null = null;
  while (todo.length > 0) {
    const c = todo.pop()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (done.length === 0) return { kind: 'escape' };
      done.pop();
      st = null;
      continue;
    }
    done.push(c);
    const cand = done.join('/');
    try {
      st = sandbox.lstat(cand);
    } catch (err) {
      if (err instanceof SandboxError && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return { kind: 'missing' };
      throw err;
    }
    if (!st) return { kind: 'missing' };
    if (st.type === 'symlink') {
      if (trusted && !trusted(st)) return { kind: 'escape' };
      if (++hops > MAX_LINK_HOPS) return { kind: 'loop' };
      let target: string;
      try {
        target = sandbox.readlink(cand);
      } catch (err) {
        // swapped for a non-link (EINVAL) or removed since the lstat: it is not there as a link
        if (err instanceof SandboxError) return { kind: 'missing' };
        throw err;
      }
      done.pop();
      if (target.startsWith('/')) {
        if (!rootIsSlash) return { kind: 'escape' };
        done.length = 0;
      }
      const parts = target.split('/');
      for (let i = parts.length - 1; i >= 0; i--) todo.push(parts[i]);
      st = null;
      continue;
    }
    if (st.type !== 'dir' && todo.some((p) => p !== '' && p !== '.')) return { kind: 'missing' };
  }
  const out = done.join('/');
  if (!st) st = sandbox.lstat(out);
  if (!st) return { kind: 'missing' };
  return { kind: 'ok', rel: out, st };
}
