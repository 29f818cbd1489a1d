/**
 * What every part of the receiving role reads (the role's `struct sess`): the session, the
 * options as the receiving side sees them, and where things go. Settled before the generator
 * starts (destination.ts) and read-only afterwards; each collaborator keeps its own mutable state.
 */
import type { IdMapRules } from '../../policy/idmap-rules.js';
import type { ServerOptions } from '../../policy/server-options.js';
import type { ChmodFn } from '../../policy/chmod.js';
import type { FileEntry } from '../../protocol/flist/entry.js';
import { MsgTag } from '../../protocol/mux.js';
import { SandboxError, type EntryStat, type Sandbox } from '../../sandbox/sandbox.js';
import type { Gateway } from '../../gateway/gateway.js';
import type { FilterSet } from '../filter-match.js';
import type { SessionContext } from '../context.js';
import { sendTransferError } from '../messages.js';
import { Notifier } from '../notifier.js';
import { baseOf, joinRel } from '../relpath.js';
import { printable } from '../../printable.js';
import type { AltDestType, PartialDir } from './basis-dirs.js';
import { InfoLevels } from '../info-levels.js';
import { DirLinks } from './dir-links.js';

/** One received file list: the whole list, or (incremental recursion) one directory's children. */
export interface FileList {
  ndxStart: number;
  /** Sorted entries; entries[i].ndx === ndxStart + i. Emptied once the list is finished. */
  entries: FileEntry[];
  /** The directory this sub-list belongs to (incremental recursion lists after the first). */
  parent?: FileEntry;
  /** Transfers requested from this list that have not completed yet. */
  pending: number;
  /** Files of this list that failed verification once and must be requested again. */
  redo: FileEntry[];
  processed: boolean;
  finished: boolean;
  /** -H: each hard-link group's last regular-file member in this list. */
  lastOfGroup?: Map<number, FileEntry>;
}

/** Where the destination and the helper directories are (destination.ts settles them). */
export interface Places {
  /** Root-relative destination: a directory, or the file itself (singleFile). */
  destRel: string;
  singleFile: boolean;
  /** The reference's cwd: the destination dir (its parent when the destination is one file). */
  baseDir: string;
  partialDir: PartialDir | undefined;
  tempDirRel: string | undefined;
  backupDirRel: string | undefined;
  altType: AltDestType | undefined;
  /** Root-relative alt-dest dirs, in option order (fnamecmp_type = index). */
  basisDirs: string[];
  /** -y: 1 = the file's own dir; 2 (-yy) also the alt-dest dirs. */
  fuzzyLevels: number;
}

export class ReceiverState {
  readonly opts: ServerOptions;
  readonly protocol: number;
  /** Reads; every change goes through `fs`. */
  readonly sandbox: Sandbox;
  readonly fs: Gateway;
  readonly inc: boolean;
  readonly infoName: number;
  /** The client's --info levels (BACKUP, SKIP, …) as -v and --info set them. */
  readonly info: InfoLevels;
  /** stdout_format_has_i on the server: 0, 1 (%i) or 2 (%i%I). */
  readonly hasI: number;
  readonly isRoot = process.getuid?.() === 0;
  /** --partial / --partial-dir / --delay-updates keep interrupted or delayed data (keep_partial). */
  readonly keepPartial: boolean;
  readonly backupSuffix: string;
  /** Forced permissions (rsyncd's incoming chmod), or null. */
  readonly incomingChmod: ChmodFn | null;
  /** Wakes the generator when the receiving half or the file lists move on. */
  readonly progress = new Notifier();
  places: Places = {
    destRel: '',
    singleFile: false,
    baseDir: '',
    partialDir: undefined,
    tempDirRel: undefined,
    backupDirRel: undefined,
    altType: undefined,
    basisDirs: [],
    fuzzyLevels: 0,
  };
  /** Destination symlinks gone through as directories (-K; at a root of `/`, more). */
  readonly dirLinks: DirLinks;
  /** The client's filter rules (receiver side: protect from deletion), set with the first list. */
  filters: FilterSet | undefined;
  /** Owner and group names of the id lists (no incremental recursion). */
  userNames = new Map<number, string>();
  groupNames = new Map<number, string>();
  /** --usermap / --groupmap (--chown) rules, set up with the destination (attrs.ts). */
  uidRules: IdMapRules | null = null;
  gidRules: IdMapRules | null = null;
  /** The sender's phase as its NDX_DONEs tell it (receive.ts advances it). */
  senderPhase = 0;
  /** Why the role stops early (one half failed, or the session timed out); null while it runs. */
  cancelled: Error | null = null;
  /** Rejects with `cancelled` when the role is cancelled (what a blocked wait races). */
  private readonly cancellation: Promise<never>;
  private rejectCancellation!: (err: Error) => void;

  constructor(
    readonly ctx: SessionContext,
    init: { opts: ServerOptions; inc: boolean; keepPartial: boolean; backupSuffix: string; incomingChmod: ChmodFn | null },
  ) {
    this.opts = init.opts;
    this.protocol = ctx.protocol;
    this.sandbox = ctx.sandbox;
    this.fs = ctx.gateway;
    this.dirLinks = new DirLinks(ctx.sandbox, ctx.grant.root);
    this.inc = init.inc;
    this.keepPartial = init.keepPartial;
    this.backupSuffix = init.backupSuffix;
    this.incomingChmod = init.incomingChmod;
    this.infoName = init.opts.verbose;
    this.info = new InfoLevels(init.opts.verbose, init.opts.info);
    const fmt = init.opts.logFormat ?? '';
    this.hasI = fmt.includes('%i%I') || fmt.includes('%I') ? 2 : fmt.includes('%i') ? 1 : 0;
    this.cancellation = new Promise<never>((_, reject) => {
      this.rejectCancellation = reject;
    });
    this.cancellation.catch(() => undefined); // observed by whoever races it
    ctx.resources.onCancel((err) => this.cancel(err));
  }

  /**
   * Stops both halves: the generator's waits end, a read blocked on the client fails, and each
   * half throws `err` at its next check. Only the first reason counts.
   */
  cancel(err: Error): void {
    if (this.cancelled) return;
    this.cancelled = err;
    this.rejectCancellation(err);
    this.ctx.reader.interrupt(err);
    this.progress.notify();
  }

  /** Waits while the client is not reading our output, unless the role is cancelled. */
  writable(): Promise<void> {
    const w = this.ctx.writer;
    const ready = w.writable();
    return w.isBlocked ? Promise.race([ready, this.cancellation]) : ready;
  }

  get maxPhase(): number {
    return this.protocol >= 29 ? 2 : 1;
  }

  /** Stops the calling half when the role is being cancelled (the other half failed). */
  checkCancelled(): void {
    if (this.cancelled) throw this.cancelled;
  }

  /** The entry's name as the reference sees it (relative to its cwd, baseDir). */
  fnameOf(e: FileEntry): string {
    return this.places.singleFile ? baseOf(this.places.destRel) : e.name;
  }

  /** The entry's root-relative destination path. */
  destOf(e: FileEntry): string {
    return this.places.singleFile ? this.places.destRel : this.dirLinks.physical(joinRel(this.places.destRel, e.name));
  }

  /** A path relative to the destination (the reference's cwd). */
  relToBase(dest: string): string {
    const base = this.places.baseDir;
    const name = this.dirLinks.logical(dest);
    return base === '' ? name : name.slice(base.length + 1);
  }

  lstatQuiet(rel: string): EntryStat | null {
    try {
      return this.sandbox.lstat(rel);
    } catch (err) {
      if (err instanceof SandboxError) return null;
      throw err;
    }
  }

  /** MSG_SUCCESS for --remove-source-files: the client may remove its copy. */
  sendSuccess(ndx: number): void {
    if (this.opts.dryRun) return;
    const b = Buffer.alloc(4);
    b.writeInt32LE(ndx, 0);
    this.ctx.writer.message(MsgTag.SUCCESS, b);
  }

  reportEntryError(e: FileEntry, err: SandboxError): void {
    sendTransferError(this.ctx, `rsync: [generator] ${printable(e.name)}: ${err.message}`);
  }
}

export function modeType(mode: number): number {
  return mode & 0o170000;
}

export function makedev(major: number, minor: number): number {
  return ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12);
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
