/**
 * -append-only (tenant `appendOnly`): a push may add entries, never destroy or change what was
 * there before it started (docs/revisions-operations.md). Option parsing already refuses the
 * deleting options and forces --ignore-existing (policy/restrict.ts, as for -no-del and
 * -no-overwrite); these rules hold whatever the engine does:
 *
 * - an entry that existed before the session (an inode it did not create) is never deleted,
 *   renamed over, opened for writing, truncated, or given another mode, owner or group; a hard
 *   link to it is a new name, but writes and attribute changes through that name are refused too;
 * - an existing directory keeps its mode and owner silently (an `-a` push names every directory
 *   with its source's mode, and a refusal would fail every push into a directory the operator
 *   made); its mtime may change, as adding an entry changes it anyway. An existing file, symlink
 *   or device whose attributes would change is refused (--ignore-existing never asks for it);
 * - entries made by this session (temp files, new files and directories) are the session's own.
 */
import { SandboxError, type EntryStat, type Sandbox } from '../sandbox/sandbox.js';
import type { Change, ChangePolicy } from './change.js';

const WHY = 'not allowed by this grant (-append-only)';

export function appendOnlyRules(sandbox: Sandbox): ChangePolicy {
  /** dev:ino of every inode this session created (existing ones are not in it). */
  const made = new Set<string>();
  /** The inode a 'delete' of this session's own entry removes (forgotten once it is gone). */
  let removing: string | undefined;
  const keyOf = (st: EntryStat): string => `${st.dev}:${st.ino}`;
  const stat = (rel: string): EntryStat | null => {
    try {
      return sandbox.lstat(rel);
    } catch {
      return null;
    }
  };
  /** The existing entry at `rel` that this session did not make, or null. */
  const older = (rel: string): EntryStat | null => {
    const st = stat(rel);
    return st !== null && !made.has(keyOf(st)) ? st : null;
  };
  const refuse = (c: Change, what: string): never => {
    throw new SandboxError('EPERM', c.path, `${what} is ${WHY}`);
  };
  return {
    before(c: Change): void {
      switch (c.op) {
        case 'delete': {
          if (older(c.path)) refuse(c, 'removing an existing entry');
          const st = stat(c.path);
          removing = st && st.type !== 'dir' ? keyOf(st) : undefined;
          return;
        }
        case 'rename':
          if (c.from !== undefined && older(c.from)) refuse(c, 'renaming an existing entry');
          if (older(c.path)) refuse(c, 'replacing an existing entry');
          return;
        case 'modify':
        case 'truncate':
          if (older(c.path)) refuse(c, 'changing an existing file');
          return;
        case 'attrs': {
          const st = older(c.path);
          if (st === null) return;
          if (st.type === 'dir') {
            c.mode = c.uid = c.gid = undefined; // kept silently; times may change
            return;
          }
          const changes =
            (c.mode !== undefined && (c.mode & 0o7777) !== (st.mode & 0o7777)) ||
            (c.uid !== undefined && c.uid !== st.uid) ||
            (c.gid !== undefined && c.gid !== st.gid) ||
            c.times === true;
          if (changes) refuse(c, 'changing the attributes of an existing entry');
          return;
        }
        default:
          return; // mkdir, create, link, symlink, mknod and write never replace an existing entry
      }
    },
    after(c: Readonly<Change>): void {
      if (c.op === 'mkdir' || c.op === 'create' || c.op === 'symlink' || c.op === 'mknod') {
        const st = stat(c.path);
        if (st) made.add(keyOf(st));
      } else if (c.op === 'delete' && removing !== undefined) {
        // a temp file of this session went: its inode number may be given to anything now
        made.delete(removing);
        removing = undefined;
      }
    },
  };
}
