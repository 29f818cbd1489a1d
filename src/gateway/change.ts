/**
 * What the destination gateway reports about each change a session makes to its tree, and the
 * interface of the policies a session composes around it (quota, grant checks, audit; later the
 * revisions' staging and append-only rules).
 */
import type { EntryType } from '../sandbox/sandbox.js';

type ChangeOp =
  /** A new directory (mkdir, or each missing component of mkdirp). */
  | 'mkdir'
  /** A regular file gets a name: a temp file, or a finished unnamed (O_TMPFILE) file. */
  | 'create'
  /** An existing regular file is opened to be written in place (--inplace, --append, partial dir). */
  | 'modify'
  /** Data written to a file being made or modified has reached `size` bytes (checked, never recorded). */
  | 'write'
  | 'truncate'
  /** `from` is renamed to `path` (replacing whatever `path` was). */
  | 'rename'
  /** A hard link `path` to `from`. */
  | 'link'
  | 'symlink'
  | 'mknod'
  /** unlink, rmdir or a whole tree (`type` says which). */
  | 'delete'
  /** chmod/chown/utime. */
  | 'attrs';

/** Why a change is made: lets a policy tell a --delete from the temp file of a transfer. */
export type ChangePurpose =
  /** An entry of the file list (the client's data). */
  | 'entry'
  /** A temp file, or a temp name on the way to a final name. */
  | 'temp'
  /** --partial / --partial-dir / --delay-updates data. */
  | 'partial'
  /** -b / --backup-dir. */
  | 'backup'
  /** --copy-dest / --link-dest: a local copy or link of an alt-dest file. */
  | 'copy'
  /** --delete*, --delete-missing-args. */
  | 'delete'
  /** An entry of another type is removed so a new one can take its name (--force, replacing). */
  | 'make-room'
  /** --remove-source-files on the sending side. */
  | 'remove-source';

export interface Change {
  op: ChangeOp;
  /** Root-relative path that changes. */
  path: string;
  purpose: ChangePurpose;
  /** The type of what is made (or removed: 'dir' for rmdir). */
  type?: EntryType;
  /** rename / link: the existing path. */
  from?: string;
  /** symlink: its target. */
  target?: string;
  /** write: the name the data is for (what is there now is replaced when it lands). */
  dest?: string;
  /** write / truncate / create of a finished file: its length. */
  size?: number;
  /** mkdir, create, symlink, mknod: permission bits asked for; attrs: the mode to set. */
  mode?: number;
  /** attrs: the owner / group to set, and whether times are set. */
  uid?: number;
  gid?: number;
  times?: boolean;
}

/**
 * One concern the gateway applies to every change. `before` may refuse the change (throw an
 * RsyncError or SandboxError) or redirect it (return another root-relative path for `path`), and
 * may narrow an 'attrs' change by clearing its `mode`, `uid`, `gid` or `times` (that attribute
 * then stays as it is); `after` sees it once it is done (not when it failed); `end` when the
 * session is over, however it ended (what the policy holds for the session is released there).
 */
export interface ChangePolicy {
  before?(change: Change): string | void;
  after?(change: Readonly<Change>): void;
  end?(): void;
}
