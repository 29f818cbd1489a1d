/**
 * backup.c: -b / --backup-dir / --suffix. The current file is kept as its backup (a hard link
 * when new data will replace it, a rename when it is deleted, a copy across filesystems) before
 * anything replaces or removes it.
 */
import { isUnsafeSymlink, SandboxError, type EntryStat } from '../../sandbox/sandbox.js';
import { type Attrs } from '../../sandbox/attrs.js';
import { sendInfo, sendTransferError } from '../messages.js';
import { baseOf, dirOf, joinRel } from '../relpath.js';
import { printable } from '../../printable.js';
import { copyFd, discardTemp } from './file-io.js';
import type { ReceiverState } from './state.js';
import type { ChangePurpose } from '../../gateway/change.js';

/**
 * make_backup()'s outcome: `dest` was renamed to its backup, linked or copied there (`dest`
 * stays), there was nothing to back up, or it failed (then `dest` must not be replaced or removed).
 */
export type BackupResult = 'renamed' | 'kept' | 'nothing' | 'failed';

export class Backups {
  private readonly dirsMade = new Set<string>();

  constructor(private readonly s: ReceiverState) {}

  /** Backups are off while redoing a file whose failed data already replaced it (--partial). */
  active(redo: boolean): boolean {
    return this.s.opts.backup && !(redo && this.s.keepPartial && !this.s.places.partialDir);
  }

  /** Whether a name is itself a backup (`name~` beside its file: never backed up again). */
  isBackupName(rel: string): boolean {
    return this.s.places.backupDirRel === undefined && rel.endsWith(this.s.backupSuffix);
  }

  /**
   * backup.c make_backup(): keeps the current `dest` as its backup, by a hard link (the new data
   * then replaces `dest`) or, with preferRename (deletions), a rename. A backup dir on another
   * filesystem gets a copy (robust_move()), and `dest` is removed when a rename was asked for.
   * Whatever holds the backup's name goes first; a directory tree there (the tenant's own) is
   * removed a few hundred entries per event-loop turn.
   */
  async make(dest: string, preferRename: boolean): Promise<BackupResult> {
    const st = this.s.lstatQuiet(dest);
    if (!st || st.type === 'dir') return 'nothing';
    const backup = this.nameFor(dest);
    try {
      if (st.type === 'symlink' && this.unsafeLinkDropped(dest)) {
        this.reportBackedUp(dest);
        return 'kept';
      }
      this.ensureDirs(backup);
      let ret: BackupResult;
      try {
        ret = await this.attempt(dest, backup, st, preferRename);
      } catch (err) {
        if (!(err instanceof SandboxError) || !['EEXIST', 'EISDIR', 'ENOTEMPTY', 'ENOTDIR'].includes(err.code)) throw err;
        await this.s.fs.removeTreeYielding(backup, 'backup');
        ret = await this.attempt(dest, backup, st, preferRename);
      }
      this.reportBackedUp(dest);
      return ret;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      sendTransferError(this.s.ctx, `rsync: [generator] make_backup "${printable(this.s.relToBase(dest))}": ${err.message}`);
      return 'failed';
    }
  }

  /**
   * --safe-links: a symlink that points out of the transfer is not backed up (the caller then
   * replaces or removes it, as it does after a copy). An unreadable target counts as unsafe.
   */
  private unsafeLinkDropped(dest: string): boolean {
    const o = this.s.opts;
    if (!o.links || !o.safeLinks) return false;
    const name = printable(this.s.relToBase(dest));
    let target = '';
    try {
      target = this.s.sandbox.readlink(dest);
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
    }
    if (target === '') {
      if (this.s.info.gte('SYMSAFE')) sendInfo(this.s.ctx, `not backing up symlink with unreadable target "${name}"\n`);
      return true;
    }
    if (!isUnsafeSymlink(target, this.s.relToBase(dest))) return false;
    if (this.s.info.gte('SYMSAFE')) sendInfo(this.s.ctx, `not backing up unsafe symlink "${name}" -> "${printable(target)}"\n`);
    return true;
  }

  /**
   * --inplace --backup: the old data is copied to the backup first (it is then the basis, 0x82).
   * False: a directory holds the backup's name, which the reference cannot unlink, so it skips
   * the file (generator.c recv_generator()).
   */
  async copyToBackup(dest: string): Promise<string | null | false> {
    const backup = this.nameFor(dest);
    if (this.s.lstatQuiet(backup)?.type === 'dir') {
      sendTransferError(this.s.ctx, `rsync: [generator] unlink "${printable(this.shownName(dest))}": Is a directory (21)`);
      return false;
    }
    try {
      this.ensureDirs(backup);
      await this.copyFile(dest, backup, 'backup');
      this.reportBackedUp(dest);
      return backup;
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      sendTransferError(this.s.ctx, `rsync: [generator] keep_backup failed: "${printable(this.s.relToBase(dest))}": ${err.message}`);
      return null;
    }
  }

  private async attempt(dest: string, backup: string, st: EntryStat, preferRename: boolean): Promise<BackupResult> {
    const fs = this.s.fs;
    if (!preferRename) {
      try {
        fs.link(dest, backup, 'backup');
        return 'kept';
      } catch (err) {
        if (!(err instanceof SandboxError) || err.code === 'EEXIST' || err.code === 'EISDIR') throw err;
      }
    }
    try {
      fs.rename(dest, backup, 'backup');
      return 'renamed';
    } catch (err) {
      if (!(err instanceof SandboxError) || err.code !== 'EXDEV') throw err;
    }
    await this.copyAcross(dest, backup, st);
    if (!preferRename) return 'kept';
    fs.unlink(dest, 'backup');
    return 'renamed';
  }

  /** backup.c get_backup_name(): `<name><suffix>` beside the file, or under --backup-dir. */
  private nameFor(dest: string): string {
    const dir = this.s.places.backupDirRel;
    if (dir === undefined) return `${dest}${this.s.backupSuffix}`;
    return joinRel(dir, `${this.s.relToBase(dest)}${this.s.backupSuffix}`);
  }

  private reportBackedUp(dest: string): void {
    if (this.s.info.gte('BACKUP')) sendInfo(this.s.ctx, `backed up ${this.s.relToBase(dest)} to ${this.shownName(dest)}\n`);
  }

  /** The backup's name as the reference prints it (relative to the destination). */
  private shownName(dest: string): string {
    const rel = `${this.s.relToBase(dest)}${this.s.backupSuffix}`;
    if (this.s.opts.backupDir === undefined || this.s.places.backupDirRel === undefined) return rel;
    const dir = this.s.opts.backupDir.replace(/^(\.\/)+/, '');
    return `${dir.endsWith('/') ? dir : `${dir}/`}${rel}`;
  }

  /**
   * backup.c copy_valid_path(): the backup dir and each missing directory below it, created one
   * component at a time and given the attributes of the matching destination directory.
   */
  private ensureDirs(backupPath: string): void {
    const top = this.s.places.backupDirRel;
    if (top === undefined) return;
    const fs = this.s.fs;
    if (!this.dirsMade.has(top)) {
      if (top !== '') fs.mkdirp(top, 0o777, 'backup');
      this.dirsMade.add(top);
    }
    const relDir = dirOf(backupPath.slice(top === '' ? 0 : top.length + 1));
    if (relDir === '') return;
    const parts = relDir.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join('/');
      const bdir = joinRel(top, sub);
      if (this.dirsMade.has(bdir)) continue;
      const st = this.s.lstatQuiet(bdir);
      if (st && st.type !== 'dir') fs.removeTree(bdir, 'backup');
      if (!st || st.type !== 'dir') {
        fs.mkdir(bdir, 0o777, 'backup');
        this.copyDirAttrs(joinRel(this.s.places.baseDir, sub), bdir);
      }
      this.dirsMade.add(bdir);
    }
  }

  private copyDirAttrs(from: string, to: string): void {
    const src = this.s.lstatQuiet(from);
    if (!src || src.type !== 'dir') return;
    const attrs: Attrs = { mode: src.mode & 0o7777 };
    if (this.s.opts.times) attrs.mtime = { sec: src.mtimeSec, nsec: src.mtimeNsec };
    if (this.s.isRoot && (this.s.opts.owner || this.s.opts.group)) {
      attrs.uid = src.uid;
      attrs.gid = src.gid;
    }
    this.s.fs.setAttrs(to, attrs, {}, 'backup');
  }

  /**
   * util1.c robust_move() across filesystems: a regular file's data and attributes are copied to
   * `backup` through a temp file there; a symlink, a fifo and (with devices granted, as root) a
   * device are made again (backup.c make_backup()); a socket cannot be kept.
   */
  private async copyAcross(dest: string, backup: string, st: EntryStat): Promise<void> {
    const fs = this.s.fs;
    if (st.type === 'symlink') {
      fs.symlink(this.s.sandbox.readlink(dest), backup, 'backup');
      fs.setAttrs(backup, { mtime: { sec: st.mtimeSec, nsec: st.mtimeNsec } }, { isSymlink: true }, 'backup');
      return;
    }
    const device = st.type === 'chr' || st.type === 'blk';
    if (st.type === 'fifo' || (device && this.s.ctx.grant.limits.allowDevices && this.s.isRoot)) {
      fs.mknod(backup, device ? st.mode : st.mode & 0o7777, device ? st.rdev : null, 'backup');
      const attrs: Attrs = { mode: st.mode & 0o7777, mtime: { sec: st.mtimeSec, nsec: st.mtimeNsec } };
      if (this.s.isRoot) [attrs.uid, attrs.gid] = [st.uid, st.gid];
      fs.setAttrs(backup, attrs, {}, 'backup');
      return;
    }
    if (st.type !== 'file') throw new SandboxError('EXDEV', dest, `rename "${printable(dest)}" -> "${printable(backup)}" failed: EXDEV`);
    await this.copyFile(dest, backup, 'backup');
  }

  /**
   * Copies regular file `src` with its mode, mtime (and, as root, owner) to `to`, replacing it
   * atomically (util1.c copy_file(), through a temp file beside `to`); a directory tree in the
   * way is removed a few hundred entries per event-loop turn.
   */
  async copyFile(src: string, to: string, purpose: ChangePurpose): Promise<void> {
    const { sandbox, fs } = this.s;
    let inFd = -1;
    let tmp: { fd: number; rel: string } | null = null;
    try {
      const opened = sandbox.openRead(src);
      inFd = opened.fd;
      tmp = fs.createTemp(dirOf(to), baseOf(to), 0o600, purpose === 'backup' ? { dest: to, purpose } : { dest: to });
      copyFd(sandbox, fs, inFd, tmp.fd, opened.stat.size);
      const attrs: Attrs = { mode: opened.stat.mode & 0o7777, mtime: { sec: opened.stat.mtimeSec, nsec: opened.stat.mtimeNsec } };
      if (this.s.isRoot) {
        attrs.uid = opened.stat.uid;
        attrs.gid = opened.stat.gid;
      }
      fs.fsetAttrs(tmp.fd, attrs);
      fs.close(tmp.fd);
      tmp.fd = -1;
      const st = this.s.lstatQuiet(to);
      if (st && st.type === 'dir') await fs.removeTreeYielding(to, purpose);
      fs.rename(tmp.rel, to, purpose);
      tmp = null;
    } finally {
      if (inFd >= 0) sandbox.close(inFd);
      if (tmp) discardTemp(fs, tmp);
    }
  }
}
