/**
 * Where data is written before it takes its final name (receiver.c open_tmpfile(), O_TMPFILE),
 * the --partial-dir (util1.c handle_partial_dir()) and --delay-updates (handle_delayed_updates()).
 */
import type { FileEntry } from '../../protocol/flist/entry.js';
import { SandboxError } from '../../sandbox/sandbox.js';
import { sendTransferError } from '../messages.js';
import { baseOf, dirOf, joinRel } from '../relpath.js';
import { printable } from '../../printable.js';
import { PROCESS_UMASK } from './attrs.js';
import type { Backups } from './backup.js';
import { unlinkQuiet } from './file-io.js';
import type { ReceiverState } from './state.js';


/** A temp file's mode while it is written: owner-writable, private (receiver.c open_tmpfile()). */
function tempMode(mode: number): number {
  return (mode | 0o200) & 0o700;
}

/** A transfer whose data sits in the partial dir until the end of the transfer phase (--delay-updates). */
interface Delayed {
  entry: FileEntry;
  dest: string;
  partialRel: string;
}

export class TempFiles {
  private readonly delayed: Delayed[] = [];
  private readonly delayedNdx = new Set<number>();
  /** --delay-updates: the final renames have been done. */
  private delayedDone = false;

  constructor(private readonly s: ReceiverState) {}

  /**
   * A temp name beside `dest` for an item made and then renamed into place (symlinks, specials,
   * hard links: atomic_create()).
   */
  nameBeside(dest: string): string {
    const base = baseOf(dest).replace(/^\./, '').slice(0, 200);
    return joinRel(dirOf(dest), `.${base}.${process.pid}${Math.floor(Math.random() * 1e6)}`);
  }

  /** receiver.c open_tmpfile(): `.<name>.XXXXXX` next to the file, or `<name>.XXXXXX` in --temp-dir. */
  create(dest: string, mode: number): { fd: number; rel: string } {
    const tempDir = this.s.places.tempDirRel;
    if (tempDir !== undefined) return this.s.fs.createTemp(tempDir, baseOf(dest), tempMode(mode), { noLeadingDot: true, dest });
    return this.s.fs.createTemp(dirOf(dest), baseOf(dest), tempMode(mode), { dest });
  }

  /**
   * The temp file of a new file (nothing at the destination, no --temp-dir): unnamed (O_TMPFILE)
   * where the filesystem allows, else null. It appears under its name only when complete, so it
   * can be created with its final permissions right away (modeSet: no fchmod needed later).
   */
  createUnnamed(dest: string, destMissing: boolean, mode: number): { fd: number; modeSet: boolean } | null {
    if (!destMissing || this.s.places.tempDirRel !== undefined) return null;
    const modeSet = (mode & 0o7000) === 0 && (mode & 0o777 & ~PROCESS_UMASK) === (mode & 0o777);
    const fd = this.s.fs.createUnnamed(dirOf(dest), modeSet ? mode & 0o777 : tempMode(mode), dest);
    return fd === null ? null : { fd, modeSet };
  }

  /** Gives an unnamed temp file the name open_tmpfile() would have given it. */
  name(fd: number, dest: string): string {
    return this.s.fs.nameUnnamed(fd, dirOf(dest), baseOf(dest));
  }

  /** handle_partial_dir(PDIR_CREATE): mkdir DIR (0700) for a partial path; a non-dir in the way goes. */
  makePartialDir(partialPath: string): boolean {
    if (!this.s.places.partialDir) return true;
    const dir = dirOf(partialPath);
    const fs = this.s.fs;
    try {
      const st = this.s.lstatQuiet(dir);
      if (st && st.type !== 'dir') {
        fs.unlink(dir, 'partial');
        fs.mkdir(dir, 0o700, 'partial');
      } else if (!st) {
        fs.mkdir(dir, 0o700, 'partial');
      }
      return true;
    } catch (err) {
      if (err instanceof SandboxError) return false;
      throw err;
    }
  }

  /** Unlinks a consumed/obsolete --partial-dir file and its dir when that became empty. */
  removePartial(partialRel: string): void {
    if (this.s.opts.dryRun) return;
    unlinkQuiet(this.s.fs, partialRel, 'partial');
    this.removePartialDir(partialRel);
  }

  /** handle_partial_dir(PDIR_DELETE): rmdir a relative partial dir (fails quietly when not empty). */
  removePartialDir(partialRel: string): void {
    const pd = this.s.places.partialDir;
    if (!pd || pd.absolute) return;
    try {
      this.s.fs.rmdir(dirOf(partialRel), 'partial');
    } catch {
      // not empty, or gone
    }
  }

  /** --delay-updates: the data of `e` waits at partialRel for the end of the transfer phase. */
  delay(entry: FileEntry, dest: string, partialRel: string): void {
    this.delayed.push({ entry, dest, partialRel });
    this.delayedNdx.add(entry.ndx);
  }

  /** The entry's data still waits in the partial dir. */
  isDelayed(ndx: number): boolean {
    return this.delayedNdx.has(ndx) && !this.delayedDone;
  }

  /** receiver.c handle_delayed_updates(): the partial-dir files go into place after the transfer phase. */
  async applyDelayed(backups: Backups): Promise<void> {
    this.delayed.sort((a, b) => a.entry.ndx - b.entry.ndx);
    for (const d of this.delayed.splice(0)) {
      if (backups.active(false) && (await backups.make(d.dest, false)) === 'failed') continue;
      try {
        this.s.fs.rename(d.partialRel, d.dest);
      } catch (err) {
        if (!(err instanceof SandboxError)) throw err;
        sendTransferError(
          this.s.ctx,
          `rsync: [receiver] rename failed for "${printable(this.s.fnameOf(d.entry))}" (from ${printable(this.s.relToBase(d.partialRel))}): ${err.message}`,
        );
        continue;
      }
      if (this.s.opts.removeSourceFiles) this.s.sendSuccess(d.entry.ndx);
      this.removePartialDir(d.partialRel);
    }
    this.delayedDone = true;
  }
}
