/**
 * The pointer symlink (`latest` / `current`, docs/revisions.md): which published revision it
 * names, and switching it in one rename(2) so that a reader resolves the old or the new one.
 */
import type { Logger } from 'pino';
import type { Sandbox } from '../sandbox/sandbox.js';
import { parseRevisionName, pointerName, revisionsDir, type RevisionMode } from './layout.js';

/**
 * The published revision `latest`/`current` names, or null when there is none. A pointer that
 * names anything but a revision directory of this mode is ignored (and logged).
 */
export function currentRevision(sandbox: Sandbox, mode: RevisionMode, log?: Logger): string | null {
  const pointer = pointerName(mode);
  const st = sandbox.lstat(pointer);
  if (!st) return null;
  if (st.type !== 'symlink') {
    log?.warn({ pointer }, 'revision pointer is not a symlink: ignored');
    return null;
  }
  const target = sandbox.readlink(pointer);
  const prefix = `${revisionsDir(mode)}/`;
  const name = target.startsWith(prefix) ? target.slice(prefix.length).replace(/\/+$/, '') : '';
  const dir = parseRevisionName(name) ? sandbox.lstat(prefix + name) : null;
  if (!dir || dir.type !== 'dir') {
    log?.warn({ pointer, target }, 'revision pointer names no revision of this mode: ignored');
    return null;
  }
  return name;
}

/**
 * Points `latest`/`current` at the published revision `name` (publish, rollback): a new symlink
 * under a temp name, renamed over the pointer. Throws (and leaves no temp behind) on failure.
 */
export function setPointer(sandbox: Sandbox, mode: RevisionMode, name: string): void {
  const pointer = pointerName(mode);
  const temp = `.${pointer}.rrsyncd-new`;
  if (sandbox.lstat(temp)) sandbox.unlink(temp);
  sandbox.symlink(`${revisionsDir(mode)}/${name}`, temp);
  try {
    sandbox.rename(temp, pointer);
  } catch (err) {
    sandbox.unlink(temp);
    throw err;
  }
}
