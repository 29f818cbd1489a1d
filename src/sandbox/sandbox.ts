/**
 * The sandbox: the only filesystem access of a session. Every path is root-relative (a byte
 * string) and is resolved component by component from a held root fd (pinned-root.ts): each
 * directory is opened O_PATH|O_DIRECTORY|O_NOFOLLOW as `/proc/self/fd/<parentfd>/<name>`, so a
 * symlink anywhere in the parent chain fails the operation instead of being followed, also when
 * it is swapped in between check and use (CVE-2024-12087, CVE-2026-29518/43619). Leaf
 * operations are done relative to the pinned parent with no-follow semantics.
 */
import {
  type BigIntStats,
  close as closeCallback,
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  lstatSync,
  openSync,
  readlinkSync,
  readSync,
  writeSync,
} from 'node:fs';
import { OpenFiles } from './open-files.js';
import { PinnedRoot, type DirRef } from './pinned-root.js';
import { SandboxError, hasCode, toSandboxError } from './errors.js';
import { quoted } from '../printable.js';
import { checkLinkTarget, checkName, joinParts, splitRel, tempNamePrefix } from './paths.js';
import { createSpecialAt, splitRdev } from './special.js';
import { type EntryStat, statFd, typeOfMode } from './stat.js';
import { nativeBinding } from './native.js';
import { setAttrsOnFd, setAttrsOnPinned, setSymlinkAttrs, type Attrs } from './attrs.js';
import { removeTree, removeTreeYielding } from './remove-tree.js';
import { punchHoleOnFd } from './punch-hole.js';
import {
  O_PATH,
  linkAt,
  linkFdAt,
  lstatAt,
  lstatManyAt,
  mkdirAt,
  openAt,
  procPath,
  readdirAt,
  renameAt,
  rmdirAt,
  symlinkAt,
  unlinkAt,
} from './at.js';

export { SandboxError } from './errors.js';
export type { EntryStat, EntryType } from './stat.js';
export { isUnsafeSymlink, mungeSymlink, unmungeSymlink } from './paths.js';

export interface SandboxOptions {
  /** Directory fds kept open (LRU). 0 disables the cache. Default 64. */
  dirCacheSize?: number;
  /**
   * Set sub-microsecond digits of times exactly (a `touch` child per call, ~1 ms) instead of
   * truncating to the microsecond. Only matters for clients using --modify-window=-1.
   */
  exactTimes?: boolean;
}

export interface OpenFile {
  fd: number;
  stat: EntryStat;
}

const { O_DIRECTORY, O_NOFOLLOW, O_RDONLY, O_RDWR, O_CREAT, O_EXCL } = constants;
const O_NOATIME = constants.O_NOATIME ?? 0;
const TEMP_ATTEMPTS = 100;
/** O_TMPFILE (Linux >= 3.11): __O_TMPFILE | O_DIRECTORY, whatever O_DIRECTORY is on this architecture. */
const O_TMPFILE = 0o20000000 | O_DIRECTORY;
const TEMP_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function fdLabel(fd: number): string {
  return `<fd ${fd}>`;
}

function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < 6; i++) s += TEMP_CHARS[Math.floor(Math.random() * TEMP_CHARS.length)];
  return s;
}

export class Sandbox {
  private readonly root: PinnedRoot;
  private readonly exactTimes: boolean;
  private noatimeAllowed = O_NOATIME !== 0;
  /** Cleared when the filesystem refuses O_TMPFILE (and never set without the native linkat). */
  private anonymousFiles = nativeBinding?.linkfd !== undefined;
  private readonly files = new OpenFiles();

  private constructor(
    readonly rootPath: string,
    rootFd: number,
    opts: SandboxOptions,
  ) {
    this.root = new PinnedRoot(rootFd, opts.dirCacheSize ?? 64);
    this.exactTimes = opts.exactTimes ?? false;
  }

  /** Opens (pins) the root directory; throws SandboxError if it is missing or not a directory. */
  static open(rootPath: string, opts: SandboxOptions = {}): Sandbox {
    let fd: number;
    try {
      fd = openSync(rootPath, O_PATH | O_DIRECTORY);
    } catch (err) {
      throw toSandboxError(err, 'open root', rootPath);
    }
    try {
      lstatSync(procPath(fd)); // the /proc/self/fd trick is the whole design: fail early without it
    } catch {
      closeSync(fd);
      throw new SandboxError('ENOTSUP', rootPath, 'sandbox needs /proc/self/fd (Linux procfs)');
    }
    return new Sandbox(rootPath, fd, opts);
  }

  /** Forgets all cached directory fds (e.g. after something outside the sandbox moved dirs). */
  dropDirCache(): void {
    this.root.dropCache();
  }

  // ---------------------------------------------------------------- lookups

  lstat(rel: string): EntryStat | null {
    const parts = splitRel(rel);
    if (parts.length === 0) return this.root.guard('lstat', rel, () => statFd(this.root.fd));
    let parent: DirRef;
    try {
      parent = this.root.dir(parts.slice(0, -1), rel);
    } catch (err) {
      if (hasCode(err, 'ENOENT', 'ENOTDIR')) return null;
      throw err;
    }
    return this.root.guard('lstat', rel, () => {
      try {
        return lstatAt(parent.fd, parts[parts.length - 1]);
      } catch (err) {
        if (hasCode(err, 'ENOTDIR')) return null;
        throw err;
      } finally {
        this.root.release(parent);
      }
    });
  }

  /**
   * lstat of many names in the directory relDir, which is resolved once: for each name an
   * EntryStat, null when it is missing, or the SandboxError of that name. Names are single
   * components (as readdir returns them).
   */
  lstatChildren(relDir: string, names: readonly string[]): Array<EntryStat | null | SandboxError> {
    const parts = splitRel(relDir);
    for (const name of names) checkName(name, relDir);
    const ref = this.root.dir(parts, relDir);
    try {
      return lstatManyAt(ref.fd, names).map((r, i) =>
        typeof r === 'string' ? new SandboxError(r, joinParts([...parts, names[i]]), `lstat ${quoted(joinParts([...parts, names[i]]))} failed: ${r}`) : r,
      );
    } finally {
      this.root.release(ref);
    }
  }

  readdir(relDir: string): string[] {
    const ref = this.root.dir(splitRel(relDir), relDir);
    return this.root.guard('readdir', relDir, () => {
      try {
        return readdirAt(ref.fd);
      } finally {
        this.root.release(ref);
      }
    });
  }

  readlink(rel: string): string {
    return this.root.atLeaf('readlink', rel, (dirFd, leaf) =>
      readlinkSync(procPath(dirFd, leaf), { encoding: 'buffer' }).toString('latin1'),
    );
  }

  // ---------------------------------------------------------------- file content

  /** Opens an existing regular file for reading; `expect` guards against a swapped file (CVE-2024-12747). */
  openRead(rel: string, expect?: { dev: number; ino: number }): OpenFile {
    const file = this.openRegular('openRead', rel, O_RDONLY, true);
    if (expect !== undefined && (file.stat.dev !== expect.dev || file.stat.ino !== expect.ino)) {
      this.close(file.fd);
      throw new SandboxError('ECHANGED', rel, `file ${quoted(rel)} changed since it was listed`);
    }
    return file;
  }

  /** Opens an existing regular file read-write (for --inplace / --append). */
  openWrite(rel: string): OpenFile {
    return this.openRegular('openWrite', rel, O_RDWR, false);
  }

  /**
   * Creates rsync's temp file `.<name>.XXXXXX` in relDir (with noLeadingDot: `<name>.XXXXXX`, as
   * for --temp-dir), O_CREAT|O_EXCL|O_NOFOLLOW, mode default 0600 (umask applies).
   */
  createTemp(relDir: string, baseName: string, mode = 0o600, opts: { noLeadingDot?: boolean } = {}): { fd: number; rel: string } {
    return this.withTempName(relDir, baseName, opts, (dirFd, name, rel) => {
      try {
        return { fd: this.files.add(openAt(dirFd, name, O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR, mode & 0o7777)), rel };
      } catch (err) {
        if (!hasCode(err, 'EEXIST')) throw toSandboxError(err, 'createTemp', rel);
        return null;
      }
    });
  }

  /**
   * An unnamed regular file in relDir (O_TMPFILE; mode as createTemp). It gets a name only
   * through linkAnonymous or nameAnonymous, so an abort or a crash leaves nothing behind, and a
   * new file costs one directory entry instead of two (temp name, then rename). Null when the
   * filesystem (or a build without the native addon) cannot do it: use createTemp then.
   */
  createAnonymous(relDir: string, mode = 0o600): number | null {
    if (!this.anonymousFiles) return null;
    const parts = splitRel(relDir);
    const ref = this.root.dir(parts, relDir);
    try {
      return this.files.add(openAt(ref.fd, '.', O_TMPFILE | O_RDWR, mode & 0o7777));
    } catch (err) {
      if (hasCode(err, 'EOPNOTSUPP', 'EISDIR', 'EINVAL')) {
        this.anonymousFiles = false;
        return null;
      }
      throw toSandboxError(err, 'createTemp', relDir);
    } finally {
      this.root.release(ref);
    }
  }

  /** Gives the anonymous file `fd` the name toRel, unless that name exists (then false). */
  linkAnonymous(fd: number, toRel: string): boolean {
    return this.root.atLeaf('link', toRel, (dirFd, leaf) => linkFdAt(fd, dirFd, leaf));
  }

  /** Gives the anonymous file `fd` a fresh temp name in relDir, as createTemp would make it. */
  nameAnonymous(fd: number, relDir: string, baseName: string, opts: { noLeadingDot?: boolean } = {}): string {
    return this.withTempName(relDir, baseName, opts, (dirFd, name, rel) =>
      this.root.guard('link', rel, () => linkFdAt(fd, dirFd, name)) ? rel : null,
    );
  }

  /** Tries fresh `.<base>.XXXXXX` names in relDir until `attempt` takes one (non-null). */
  private withTempName<T>(
    relDir: string,
    baseName: string,
    opts: { noLeadingDot?: boolean },
    attempt: (dirFd: number, name: string, rel: string) => T | null,
  ): T {
    const parts = splitRel(relDir);
    checkName(baseName, relDir);
    const prefix = tempNamePrefix(baseName, opts.noLeadingDot ?? false);
    const ref = this.root.dir(parts, relDir);
    try {
      for (let i = 0; i < TEMP_ATTEMPTS; i++) {
        const name = `${prefix}.${randomSuffix()}`;
        const done = attempt(ref.fd, name, joinParts([...parts, name]));
        if (done !== null) return done;
      }
      throw new SandboxError('EEXIST', relDir, `no unique temp name for ${quoted(baseName)} in ${quoted(relDir)}`);
    } finally {
      this.root.release(ref);
    }
  }

  read(fd: number, buf: Buffer, offset: number, length: number, position: number): number {
    return this.root.guard('read', fdLabel(fd), () => readSync(fd, buf, offset, length, position));
  }

  /** Writes all `length` bytes (looping over short writes); position null = current offset. */
  write(fd: number, buf: Buffer, offset: number, length: number, position: number | null): void {
    this.root.guard('write', fdLabel(fd), () => {
      let done = 0;
      while (done < length) {
        const pos = position === null ? null : position + done;
        const n = writeSync(fd, buf, offset + done, length - done, pos);
        if (n <= 0) throw new SandboxError('EIO', fdLabel(fd), `write to ${fdLabel(fd)} made no progress`);
        done += n;
      }
    });
  }

  truncate(fd: number, len: number): void {
    this.root.guard('truncate', fdLabel(fd), () => ftruncateSync(fd, len));
  }

  fsync(fd: number): void {
    this.root.guard('fsync', fdLabel(fd), () => fsyncSync(fd));
  }

  /** close(fd): a file fd (no-op once the sandbox closed it); close(): root, dir and file fds. */
  close(fd: number): void;
  close(): void;
  close(fd?: number): void {
    if (fd === undefined) {
      this.closeSandbox();
      return;
    }
    if (!this.files.forget(fd) && this.root.closed) return;
    this.root.guard('close', fdLabel(fd), () => closeSync(fd));
  }

  /** File fds handed out and still open (close() closes them). */
  get openFileCount(): number {
    return this.files.count;
  }

  /**
   * close(2) on the thread pool, for a file whose last close frees a lot (a large basis that a
   * rename just unlinked): the event loop does not wait for the kernel to free its blocks.
   */
  closeInBackground(fd: number): void {
    if (!this.files.forget(fd) && this.root.closed) return;
    closeCallback(fd, () => undefined);
  }

  /**
   * Starts writing back fd's data in [offset, offset + length) without waiting (best effort; a
   * no-op without the native addon). Renaming a file over an existing one makes ext4 flush all
   * of it first (auto_da_alloc); started early, that work is spread over the transfer.
   */
  startWriteback(fd: number, offset: number, length: number): void {
    nativeBinding?.startWriteback?.(fd, offset, length);
  }

  /** Deallocates [offset, offset + length) of a file open for writing (see punch-hole.ts). */
  punchHole(fd: number, offset: number, length: number): void {
    this.root.guard('punchHole', fdLabel(fd), () => punchHoleOnFd(fd, offset, length, fdLabel(fd)));
  }

  fstat(fd: number): EntryStat {
    return this.root.guard('fstat', fdLabel(fd), () => statFd(fd));
  }

  // ---------------------------------------------------------------- metadata

  /** Owner, then mode, then times on an open file (chown first: it clears set-id bits). */
  fsetAttrs(fd: number, attrs: Attrs): void {
    const label = fdLabel(fd);
    this.root.guard('fsetAttrs', label, () => setAttrsOnFd(fd, attrs, label, this.exactTimes));
  }

  /**
   * Sets metadata without following a symlink leaf. A symlink leaf gets only owner and times
   * (lchown/lutimes); asking for its mode without opts.isSymlink is an error (ELOOP).
   */
  setAttrs(rel: string, attrs: Attrs, opts: { isSymlink?: boolean } = {}): void {
    const parts = splitRel(rel);
    if (parts.length === 0) {
      this.root.guard('setAttrs', rel, () => setAttrsOnPinned(this.root.fd, attrs, rel, this.exactTimes));
      return;
    }
    this.root.atLeaf('setAttrs', rel, (dirFd, leaf) => {
      const leafFd = openSync(procPath(dirFd, leaf), O_PATH | O_NOFOLLOW);
      try {
        const mode = Number((fstatSync(leafFd, { bigint: true }) as BigIntStats).mode);
        if (typeOfMode(mode) === 'symlink') {
          if (attrs.mode !== undefined && opts.isSymlink !== true) {
            throw new SandboxError('ELOOP', rel, `setAttrs ${quoted(rel)}: is a symlink`);
          }
          setSymlinkAttrs(dirFd, leaf, leafFd, attrs, rel, this.exactTimes);
        } else {
          setAttrsOnPinned(leafFd, attrs, rel, this.exactTimes);
        }
      } finally {
        closeSync(leafFd);
      }
    });
  }

  // ---------------------------------------------------------------- namespace changes

  mkdir(rel: string, mode: number): void {
    this.root.atLeaf('mkdir', rel, (dirFd, leaf) => mkdirAt(dirFd, leaf, mode & 0o7777));
  }

  /** Creates every missing component (no-follow; an existing symlink component is an error). */
  mkdirp(rel: string, mode: number): void {
    const parts = splitRel(rel);
    this.root.release(this.root.dir(parts, rel, mode & 0o7777));
  }

  /** rename(2) with both parents pinned; atomically replaces toRel. */
  rename(fromRel: string, toRel: string): void {
    const [from, to] = this.root.atTwoLeaves('rename', fromRel, toRel, (fromDir, fromLeaf, toDir, toLeaf) =>
      renameAt(fromDir, fromLeaf, toDir, toLeaf),
    );
    // whichever of the two was a directory is now elsewhere (or gone)
    this.root.invalidate(from);
    this.root.invalidate(to);
  }

  unlink(rel: string): void {
    this.root.atLeaf('unlink', rel, (dirFd, leaf) => unlinkAt(dirFd, leaf));
  }

  rmdir(rel: string): void {
    this.root.invalidate(splitRel(rel));
    this.root.atLeaf('rmdir', rel, (dirFd, leaf) => rmdirAt(dirFd, leaf));
  }

  /** rm -rf without following symlinks; a missing path is not an error. */
  removeTree(rel: string): void {
    removeTree(this.root, rel);
  }

  /** removeTree, letting the event loop run every few hundred operations (for big trees). */
  removeTreeYielding(rel: string): Promise<void> {
    return removeTreeYielding(this.root, rel);
  }

  symlink(target: string, rel: string): void {
    checkLinkTarget(target, rel);
    this.root.atLeaf('symlink', rel, (dirFd, leaf) => symlinkAt(target, dirFd, leaf));
  }

  /** Hard link; link(2) does not follow a symlink `existingRel` (links the symlink itself). */
  link(existingRel: string, newRel: string): void {
    this.root.atTwoLeaves('link', existingRel, newRel, (fromDir, fromLeaf, toDir, toLeaf) =>
      linkAt(fromDir, fromLeaf, toDir, toLeaf),
    );
  }

  mkfifo(rel: string, mode: number): void {
    this.root.atLeaf('mkfifo', rel, (dirFd, leaf) => createSpecialAt(dirFd, leaf, rel, 'mkfifo', ['-m', (mode & 0o7777).toString(8)]));
  }

  /** Device or fifo from a full st_mode (S_IFCHR/S_IFBLK/S_IFIFO); sockets are ENOTSUP. */
  mknod(rel: string, mode: number, rdev: number): void {
    const type = typeOfMode(mode);
    const perm = ['-m', (mode & 0o7777).toString(8)];
    if (type === 'fifo') return this.root.atLeaf('mkfifo', rel, (dirFd, leaf) => createSpecialAt(dirFd, leaf, rel, 'mkfifo', perm));
    if (type !== 'chr' && type !== 'blk') {
      throw new SandboxError('ENOTSUP', rel, `mknod ${quoted(rel)}: cannot create a ${type}`);
    }
    const { major, minor } = splitRdev(rdev);
    const node = [type === 'chr' ? 'c' : 'b', String(major), String(minor)];
    this.root.atLeaf('mknod', rel, (dirFd, leaf) => createSpecialAt(dirFd, leaf, rel, 'mknod', perm, node));
  }

  // ---------------------------------------------------------------- internals

  private closeSandbox(): void {
    if (this.root.closed) return;
    this.files.closeAll();
    this.root.close();
  }

  private openRegular(op: string, rel: string, flags: number, noatime: boolean): OpenFile {
    return this.root.atLeaf(op, rel, (dirFd, leaf) => {
      const pathFd = openAt(dirFd, leaf, O_PATH | O_NOFOLLOW);
      try {
        const type = typeOfMode(Number((fstatSync(pathFd, { bigint: true }) as BigIntStats).mode));
        if (type !== 'file') {
          const code = type === 'symlink' ? 'ELOOP' : type === 'dir' ? 'EISDIR' : 'EBADTYPE';
          throw new SandboxError(code, rel, `${op} ${quoted(rel)}: not a regular file (${type})`);
        }
        // Re-opening the pinned inode through its magic link never opens a fifo/device by name.
        const fd = this.files.add(this.reopen(pathFd, flags, noatime));
        return { fd, stat: statFd(fd) };
      } finally {
        closeSync(pathFd);
      }
    });
  }

  private reopen(pathFd: number, flags: number, noatime: boolean): number {
    if (noatime && this.noatimeAllowed) {
      try {
        return openSync(procPath(pathFd), flags | O_NOATIME);
      } catch (err) {
        if (!hasCode(err, 'EPERM')) throw err;
        this.noatimeAllowed = false; // not the owner and no CAP_FOWNER
      }
    }
    return openSync(procPath(pathFd), flags);
  }
}
