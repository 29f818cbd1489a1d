/**
 * The sender's file-list walk (protocol-notes §6.5, §6.7, §6.8), modelled on rsync's
 * send_file_list / send_directory / send1extra / send_extra_file_list:
 *
 * - the first list holds the transfer args (or the --files-from names); with incremental
 *   recursion the directories found there are "diverted": `dir/` args list their direct children,
 *   every other directory gets its own sub-list later;
 * - sub-lists are produced one directory at a time, depth-first in sorted order, and each is built
 *   (readdir + lstat) only when it is about to be sent, so memory stays proportional to the lists
 *   the client has not finished plus the directories still waiting (never the whole tree);
 * - symlink-following options (-L, -k, --copy-unsafe-links, and rsync's implicit following of
 *   `dir/` args and -R implied dirs) resolve targets component by component with sandbox calls
 *   only, confined to the grant root (see resolveInRoot).
 */
import type { ServerOptions } from '../policy/server-options.js';
import { confinePath } from '../policy/paths.js';
import { ExitCode, IOERR, RsyncError } from '../protocol/errors.js';
import { isDir, type FileEntry } from '../protocol/flist/entry.js';
import { XMIT } from '../protocol/flist/xmit.js';
import { FORMAT_OF_TYPE } from '../protocol/file-mode.js';
import { errnoText, errorText } from '../sandbox/errors.js';
import { SandboxError, isUnsafeSymlink, unmungeSymlink, type EntryStat, type Sandbox } from '../sandbox/sandbox.js';
import type { FilterSet } from './filter-match.js';
import type { SessionContext } from './context.js';
import { sendInfo, sendTransferError, sendWarning } from './messages.js';
import { joinRel } from './relpath.js';
import { printable } from '../printable.js';

/** Longest name we put in a list (the reference's MAXPATHLEN - 1). */
const MAX_NAME = 4095;
/** Symlinks followed while resolving one path (Linux's MAXSYMLINKS). */
const MAX_LINK_HOPS = 40;

export const enum NameType {
  Normal,
  DotDir,
  SlashEnding,
  Missing,
}

/** A list entry as the sender keeps it: where its data lives and what it was when listed. */
export interface SEntry extends FileEntry {
  /** The transfer base (root-relative dir of the arg; shared string). */
  base: string;
  /** Root-relative, symlink-free path of the data when it is not joinRel(base, name). */
  phys?: string;
  /** Identity when listed (the open checks it: CVE-2024-12747). */
  sdev: number;
  sino: number;
  /** Directory whose children are listed (rsync's FLAG_CONTENT_DIR). */
  content?: boolean;
  /** -R with incremental recursion: names still to be sent below this (implied) dir. */
  relnames?: Array<{ rest: string; type: NameType }>;
  /** The data went out once; a later request for it is a redo. */
  sent?: boolean;
}

export function physOf(e: SEntry): string {
  return e.phys ?? joinRel(e.base, e.name);
}

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
 * more than MAX_LINK_HOPS links is a loop.
 */
export function resolveInRoot(sandbox: Sandbox, rel: string, rootIsSlash: boolean): Resolution {
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

/** rsync's sanitize_path(…, SP_KEEP_DOT_DIRS) for --files-from names: no leading '/', '..' collapsed. */
export function sanitizeFilesFromName(name: string, keepDots: boolean): string {
  const out: string[] = [];
  const parts = name.split('/');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (p === '') continue;
    if (p === '.' && !keepDots) continue;
    if (p === '..') {
      out.pop();
      continue;
    }
    out.push(p);
  }
  let s = out.join('/');
  if (s === '') return '.';
  if (name.endsWith('/') && s !== '.') s += '/';
  return s;
}

interface DirNode {
  /** dir_flist index of the first member: the sub-list is announced with it. */
  index: number;
  /** The directory entry and any duplicates of it (equal names), sent together in one sub-list. */
  members: SEntry[];
  parent: DirNode | null;
}

interface Frame {
  nodes: DirNode[];
  pos: number;
}

interface MakeFlags {
  top?: boolean;
  content?: boolean;
  implied?: boolean;
  /** apply the client's filters (rsync's ALL_FILTERS) */
  filtered?: boolean;
  /** follow every symlink (implied dirs: rsync forces copy_links there) */
  followAll?: boolean;
  /** follow a symlink to a directory (link_stat's follow_dirlinks) */
  followDirs?: boolean;
  /** -x checks apply (a directory below a top dir) */
  mountCheck?: boolean;
}

export interface WalkOptions {
  inc: boolean;
  filters: FilterSet | undefined;
  /** Tells the filter merge-file reader where a directory named `name` lives. */
  setMergeDir: (name: string, phys: string, base: string) => void;
}

export class SenderWalker {
  ioError = 0;
  private readonly o: ServerOptions;
  private readonly proto: number;
  private readonly sandbox: Sandbox;
  private readonly inc: boolean;
  private readonly recurse: boolean;
  private readonly xferDirs: boolean;
  private readonly following: boolean;
  private readonly rootIsSlash: boolean;
  private fsDev = -1;
  private nextDirIndex = 0;
  private readonly stack: Frame[] = [];
  private lastImplied: { base: string; path: string; entry: SEntry | null } | null = null;
  private impliedDotDir = 0;
  /** Last resolved parent directory of a top-level name (files-from names come grouped). */
  private parentCache: { key: string; phys: string } | null = null;

  constructor(
    private readonly ctx: SessionContext,
    private readonly wo: WalkOptions,
  ) {
    this.o = ctx.opts;
    this.proto = ctx.protocol;
    this.sandbox = ctx.sandbox;
    this.inc = wo.inc;
    this.recurse = this.o.recursive;
    this.xferDirs = this.o.dirs || this.o.recursive || this.o.filesFrom !== undefined || this.o.listOnly;
    this.following = this.o.copyLinks || this.o.copyDirlinks || this.o.copyUnsafeLinks;
    this.rootIsSlash = /^\/+$/.test(ctx.grant.root);
  }

  // ---- messages --------------------------------------------------------------------------

  private error(text: string, general = true, prefix = true): void {
    if (general) this.ioError |= IOERR.GENERAL;
    sendTransferError(this.ctx, prefix ? `rsync: [sender] ${text}` : text);
  }

  private vanished(name: string): void {
    this.ioError |= IOERR.VANISHED;
    sendWarning(this.ctx, `file has vanished: "${printable(name)}"`);
  }

  // ---- stat with the symlink options ---------------------------------------------------------

  /**
   * rsync's readlink_stat/link_stat for one name: lstat, and follow a symlink when the options
   * (or `flags`) say so. Returns the stat to list, the data's path and a symlink's target.
   * `pre` is the lstat result when the caller already has it (Sandbox.lstatChildren).
   */
  private statEntry(
    name: string,
    phys: string,
    flags: MakeFlags,
    pre?: EntryStat | null | SandboxError,
  ): { st: EntryStat; phys: string; target?: string } | 'missing' | 'error' | 'skip' {
    let lst: EntryStat | null;
    try {
      if (pre instanceof SandboxError) throw pre;
      lst = pre === undefined ? this.sandbox.lstat(phys) : pre;
    } catch (err) {
      if (err instanceof SandboxError && err.code === 'ENOENT') return 'missing';
      if (err instanceof SandboxError && (err.code === 'ELOOP' || err.code === 'ENOTDIR')) {
        // a symlink in the parent chain (the sandbox never follows one): resolve the parent, confined
        const slash = phys.lastIndexOf('/');
        if (slash < 0) return 'missing';
        const r = resolveInRoot(this.sandbox, phys.slice(0, slash), this.rootIsSlash);
        if (r.kind !== 'ok' || r.st.type !== 'dir') return 'missing';
        return this.statEntry(name, joinRel(r.rel, phys.slice(slash + 1)), flags);
      }
      this.error(`readlink_stat("${printable(name)}") failed: ${errorText(err)}`);
      return 'error';
    }
    if (!lst) return 'missing';
    if (lst.type !== 'symlink') return { st: lst, phys };
    let target: string;
    try {
      target = this.sandbox.readlink(phys);
    } catch (err) {
      if (err instanceof SandboxError && err.code === 'ENOENT') return 'missing';
      this.error(`readlink_stat("${printable(name)}") failed: ${errorText(err)}`);
      return 'error';
    }
    if (this.o.mungeLinks) target = unmungeSymlink(target);
    const o = this.o;
    let mode: 'all' | 'dirs' | null = null;
    if (o.copyLinks || flags.followAll) mode = 'all';
    else if (o.copyUnsafeLinks && isUnsafeSymlink(target, name)) mode = 'all';
    else if (o.copyDirlinks || flags.followDirs) mode = 'dirs';
    if (!mode) return { st: lst, phys, target };
    const r = resolveInRoot(this.sandbox, phys, this.rootIsSlash);
    if (r.kind === 'ok') {
      if (mode === 'dirs' && r.st.type !== 'dir') return { st: lst, phys, target };
      if (mode === 'all' && o.copyUnsafeLinks && !o.copyLinks && !flags.followAll && o.verbose > 0) {
        sendInfo(this.ctx, `copying unsafe symlink "${printable(name)}" -> "${printable(target)}"\n`);
      }
      return { st: r.st, phys: r.rel };
    }
    if (mode === 'dirs') return { st: lst, phys, target };
    if (r.kind === 'missing') {
      if (flags.filtered && this.excludedEither(name)) return 'skip';
      this.error(`symlink has no referent: "${printable(name)}"`, true, false);
      return 'error';
    }
    // The referent is outside the root (or a loop): it cannot be followed from here.
    if (o.copyLinks || flags.followAll) {
      // -L: send the link itself, as plain -l would (the client skips it without -l).
      if (o.verbose > 0) sendInfo(this.ctx, `not following symlink outside the transfer root: "${printable(name)}"\n`);
      return { st: lst, phys, target };
    }
    // --copy-unsafe-links: the link must not arrive as an (unsafe) link; skip it, loudly.
    if (flags.filtered && this.excludedEither(name)) return 'skip';
    this.error(`cannot copy unsafe symlink "${printable(name)}": its referent is outside the transfer root`);
    return 'error';
  }

  private excludedEither(name: string): boolean {
    const f = this.filterFor(name);
    return !!f && (f.excluded(name, false) || f.excluded(name, true));
  }

  private filterFor(name: string): ReturnType<FilterSet['enterDir']> | undefined {
    if (!this.wo.filters) return undefined;
    const slash = name.lastIndexOf('/');
    return this.wo.filters.enterDir(slash < 0 ? '' : name.slice(0, slash));
  }

  // ---- make_file ---------------------------------------------------------------------------

  /** rsync's make_file + send_file_name: one list entry, or null (skipped, reported). */
  private makeFile(
    name: string,
    base: string,
    phys: string,
    flags: MakeFlags,
    given?: EntryStat,
    pre?: EntryStat | null | SandboxError,
  ): SEntry | null {
    if (name.length > MAX_NAME) {
      this.error(`skipping overly long name: ${printable(name.slice(0, 200))}...`);
      return null;
    }
    let st: EntryStat;
    let target: string | undefined;
    if (given && (given.type === 'dir' || given.mode === 0)) {
      st = given;
    } else {
      const r = this.statEntry(name, phys, flags, pre);
      if (r === 'skip' || r === 'error') return null;
      if (r === 'missing') {
        if (flags.filtered && this.excludedEither(name)) return null;
        this.vanished(joinRel(base, name));
        return null;
      }
      st = r.st;
      phys = r.phys;
      target = r.target;
    }
    const dir = st.type === 'dir';
    let content = !!flags.content && dir;
    if (flags.filtered) {
      if (dir) {
        if (!this.xferDirs) {
          sendInfo(this.ctx, `skipping directory ${printable(name)}\n`);
          return null;
        }
        if (this.o.oneFileSystem && flags.mountCheck && !flags.top && this.fsDev !== -1 && st.dev !== this.fsDev) {
          if (this.o.oneFileSystem > 1) {
            if (this.o.verbose > 1) sendInfo(this.ctx, `[sender] skipping mount-point dir ${printable(name)}\n`);
            return null;
          }
          content = false;
        }
      }
      const f = this.filterFor(name);
      if (f && f.excluded(name, dir)) return null;
    }
    return this.entry(name, base, phys, st, target, { ...flags, content });
  }

  private entry(name: string, base: string, phys: string, st: EntryStat, target: string | undefined, flags: MakeFlags): SEntry {
    const o = this.o;
    const dir = st.type === 'dir';
    const e: SEntry = {
      name,
      mode: st.mode === 0 ? 0 : (st.mode & 0o7777) | FORMAT_OF_TYPE[st.type],
      size: st.type === 'file' || st.type === 'symlink' || st.type === 'dir' ? st.size : 0,
      mtime: st.mtimeSec,
      mtimeNsec: this.proto >= 31 ? st.mtimeNsec : 0,
      uid: o.owner ? st.uid : 0,
      gid: o.group ? st.gid : 0,
      rdevMajor: 0,
      rdevMinor: 0,
      xflags: 0,
      ndx: 0,
      arrival: 0,
      base,
      sdev: st.dev,
      sino: st.ino,
    };
    if (phys !== joinRel(base, name)) e.phys = phys;
    if (o.atimes && !dir) e.atime = st.atimeSec;
    if (st.type === 'symlink') {
      if (target === undefined) {
        try {
          target = this.sandbox.readlink(phys);
          if (o.mungeLinks) target = unmungeSymlink(target);
        } catch {
          target = '';
        }
      }
      if (o.links) {
        e.linkTarget = target;
        e.size = target.length;
      }
    } else if (st.type === 'chr' || st.type === 'blk') {
      e.rdevMajor = ((st.rdev >> 8) & 0xfff) | (Math.floor(st.rdev / 2 ** 32) & ~0xfff);
      e.rdevMinor = (st.rdev & 0xff) | ((st.rdev >> 12) & ~0xff);
    }
    if (o.hardLinks && !dir && (this.proto >= 28 ? st.nlink > 1 : st.type === 'file')) {
      e.dev = st.dev;
      e.ino = st.ino;
    }
    if (dir) {
      if (flags.content) e.content = true;
      if (this.proto >= 30) {
        if (flags.content) e.xflags = flags.top ? XMIT.TOP_DIR : 0;
        else if (flags.implied) e.xflags = XMIT.TOP_DIR | XMIT.NO_CONTENT_DIR;
        else e.xflags = XMIT.NO_CONTENT_DIR;
      } else if (flags.top) e.xflags = XMIT.TOP_DIR;
    }
    return e;
  }

  // ---- directories -------------------------------------------------------------------------

  /** rsync's send_directory: the children of `dir`; recursing into them unless diverted (inc). */
  private scanDir(dir: SEntry, divert: boolean, out: SEntry[]): void {
    const dirName = dir.name === '.' ? '' : dir.name;
    const dirPhys = physOf(dir);
    this.wo.setMergeDir(dirName, dirPhys, dir.base);
    let names: string[];
    try {
      names = this.sandbox.readdir(dirPhys);
    } catch (err) {
      if (err instanceof SandboxError && err.code === 'ENOENT') this.vanished(joinRel(dir.base, dir.name));
      else this.error(`opendir "${printable(joinRel(dir.base, dir.name))}" failed: ${errorText(err)}`);
      return;
    }
    const start = out.length;
    const flags: MakeFlags = { content: this.recurse, filtered: true, mountCheck: true };
    if (names.includes('')) {
      this.error(`cannot send file with empty name in "${printable(dirName)}"`);
      names = names.filter((n) => n !== '');
    }
    // One lstat call for the whole directory; entry by entry (as before) if that fails.
    let stats: Array<EntryStat | null | SandboxError> | undefined;
    try {
      stats = this.sandbox.lstatChildren(dirPhys, names);
    } catch {
      stats = undefined;
    }
    for (let i = 0; i < names.length; i++) {
      const child = names[i];
      const name = dirName === '' ? child : `${dirName}/${child}`;
      const e = this.makeFile(name, dir.base, joinRel(dirPhys, child), flags, undefined, stats?.[i]);
      if (e) out.push(e);
    }
    if (!divert && this.recurse) {
      const end = out.length;
      this.ancestry.push(dir);
      for (let i = start; i < end; i++) {
        const e = out[i];
        if (!e.content || !isDir(e)) continue;
        if (this.following && this.ancestry.some((a) => a.sdev === e.sdev && a.sino === e.sino)) {
          this.error(`not descending into "${printable(e.name)}": symlink loop`);
          continue;
        }
        this.scanDir(e, false, out);
      }
      this.ancestry.pop();
    }
  }

  /** Directories being listed (non-incremental recursion), for the symlink-loop check. */
  private readonly ancestry: SEntry[] = [];

  // ---- the first list -------------------------------------------------------------------------

  /** The first file list in send order: args (or files-from names) and, for `dir/` args, their contents. */
  buildFirstList(args: string[], filesFrom: string[] | null): SEntry[] {
    const out: SEntry[] = [];
    if (filesFrom) {
      const top = confinePath(args[0] ?? '.', this.ctx.grant, 'source');
      for (const raw of filesFrom) {
        const name = sanitizeFilesFromName(raw, this.o.relative);
        this.addItem(out, top.rel, name);
      }
    } else {
      for (const arg of args) this.addItem(out, null, arg);
    }
    return out;
  }

  /** One arg (ffBase === null) or files-from name: rsync's send_file_list loop body. */
  private addItem(out: SEntry[], ffBase: string | null, item: string): void {
    const parsed = this.parseItem(ffBase, item);
    if (!parsed) return;
    const { base, fn, type } = parsed;
    let basePhys = base;
    if (base !== '') {
      const r = this.resolveCached(base);
      if (r === null) {
        this.error(`change_dir "${printable(base)}" failed: ${errnoText('ENOENT')}`, false);
        return;
      }
      basePhys = r;
    }
    if (this.impliedDotDir < 0) {
      this.impliedDotDir = 1;
      const dot = this.makeFile('.', base, basePhys, { implied: true, followAll: true });
      if (dot) out.push(dot);
    }
    let phys = joinRel(basePhys, fn);
    // A name with directories (-R, files-from) may pass through symlinked dirs: resolve the parent.
    const slash = fn.lastIndexOf('/');
    if (slash > 0) {
      const parent = this.resolveCached(joinRel(basePhys, fn.slice(0, slash)));
      if (parent !== null) phys = joinRel(parent, fn.slice(slash + 1));
    }
    const follow = this.o.copyDirlinks || type !== NameType.Normal;
    let st: EntryStat;
    const r = this.statEntry(fn, phys, { followDirs: follow });
    if (r === 'skip' || r === 'error') return;
    if (r === 'missing') {
      if (this.o.ignoreMissingArgs) return;
      if (this.o.deleteMissingArgs) {
        st = zeroStat();
      } else {
        // ENOENT is not an io_error in rsync (deletions still happen); the exit code is 23.
        this.error(`link_stat "${printable(joinRel(base, fn))}" failed: ${errnoText('ENOENT')}`, false);
        return;
      }
    } else {
      st = r.st;
      phys = r.phys;
    }
    if (fn === '.' && st.mode !== 0 && st.type !== 'dir') {
      // The transfer root "." must be a directory (receivers reject anything else, CVE-2026-70459);
      // e.g. `d/` whose d was swapped for a symlink out of the root after it was resolved.
      this.error(`change_dir "${printable(base)}" failed: ${errnoText('ENOTDIR')}`, false);
      return;
    }
    const dir = st.type === 'dir';
    if (type !== NameType.DotDir && st.mode !== 0) {
      const f = this.filterFor(fn);
      this.wo.setMergeDir('', basePhys, base);
      if (f && f.excluded(fn, dir)) return;
    }
    if (dir && !this.xferDirs) {
      sendInfo(this.ctx, `skipping directory ${printable(fn)}\n`);
      return;
    }
    if (this.o.relative && fn !== '.') {
      const firstSlash = fn.indexOf('/', 1);
      if (this.inc && firstSlash > 0) {
        this.sendImpliedDirs(out, base, (p) => this.physUnder(basePhys, p), fn, 0, firstSlash, st.mode === 0 ? NameType.Missing : type);
        return;
      }
      const lastSlash = fn.lastIndexOf('/');
      if (!this.inc && this.impliedDirsOn() && lastSlash > 0) {
        this.sendImpliedDirs(out, base, (p) => this.physUnder(basePhys, p), fn, 0, lastSlash, NameType.Normal);
      }
    }
    if (this.o.oneFileSystem) this.fsDev = st.dev;
    if (this.recurse || (this.xferDirs && type !== NameType.Normal)) {
      const e = this.entryFor(fn, base, phys, st, r, { top: true, content: true });
      if (!e) return;
      out.push(e);
      if (this.inc) {
        if (type === NameType.DotDir && isDir(e)) this.scanDir(e, true, out);
      } else if (isDir(e) && e.content) {
        this.scanDir(e, false, out);
      }
    } else {
      const e = this.entryFor(fn, base, phys, st, r, { content: this.recurse });
      if (e) out.push(e);
    }
  }

  private entryFor(
    fn: string,
    base: string,
    phys: string,
    st: EntryStat,
    r: ReturnType<SenderWalker['statEntry']>,
    flags: MakeFlags,
  ): SEntry | null {
    if (fn.length > MAX_NAME) {
      this.error(`skipping overly long name: ${printable(fn.slice(0, 200))}...`);
      return null;
    }
    const target = typeof r === 'object' ? r.target : undefined;
    return this.entry(fn, base, phys, st, target, { ...flags, content: !!flags.content && st.type === 'dir' });
  }

  private impliedDirsOn(): boolean {
    return this.proto >= 30 || this.o.impliedDirs;
  }

  /**
   * Splits an arg like rsync: non -R `a/b` sends `b` from base `a` (`a/b/` sends `.`); with -R the
   * part after `/./` (or all of it) is the name. Returns null after reporting an unusable arg.
   */
  private parseItem(ffBase: string | null, item: string): { base: string; fn: string; type: NameType } | null {
    const grant = this.ctx.grant;
    if (this.o.relative) {
      let dirPart: string | null = null;
      let fnPart = item;
      const marker = item.indexOf('/./');
      if (marker >= 0) {
        dirPart = item.slice(0, marker) || '/';
        fnPart = item.slice(marker + 3).replace(/^\/+/, '');
      }
      if (/^\.\/+[^/]/.test(fnPart) && !this.impliedDotDir) this.impliedDotDir = -1;
      const base = ffBase !== null ? joinRel(ffBase, dirPart === null ? '' : confineRel(dirPart, grant)) : dirPart === null ? '' : confineRel(dirPart, grant);
      // clean_fname(CFN_KEEP_TRAILING_SLASH | CFN_DROP_TRAILING_DOT_DIR) and the ".." refusal
      const trailing = /\/\.?$/.test(fnPart) || fnPart === '.' || fnPart === '';
      const comps: string[] = [];
      // An absolute name (no /./ anchor) is confined like any arg (grant.absolute maps the root's
      // own path); its leading '/' is not kept: the client strips it after sorting anyway.
      if (dirPart === null && ffBase === null && /^[/~]/.test(fnPart)) fnPart = confinePath(fnPart, grant, 'source').rel;
      for (const c of fnPart.split('/')) {
        if (c === '' || c === '.') continue;
        if (c === '..') {
          throw new RsyncError(`rsync: found ".." dir in relative path: ${printable(fnPart)}`, ExitCode.SYNTAX);
        }
        comps.push(c);
      }
      if (comps.length === 0) return { base, fn: '.', type: NameType.DotDir };
      return { base, fn: comps.join('/'), type: trailing ? NameType.SlashEnding : NameType.Normal };
    }
    const c = ffBase !== null ? { rel: joinRel(ffBase, confineRel(item, grant)), trailingSlash: /\/\.?$/.test(item) || item === '.' } : confinePath(item, grant, 'source');
    if (c.trailingSlash || c.rel === '' || (ffBase !== null && c.rel === ffBase)) return { base: c.rel, fn: '.', type: NameType.DotDir };
    const slash = c.rel.lastIndexOf('/');
    return slash < 0 ? { base: '', fn: c.rel, type: NameType.Normal } : { base: c.rel.slice(0, slash), fn: c.rel.slice(slash + 1), type: NameType.Normal };
  }

  /** A symlink-free path for a directory path (cached for the last one), or null. */
  private resolveCached(rel: string): string | null {
    if (this.parentCache?.key === rel) return this.parentCache.phys;
    let phys: string | null = rel;
    try {
      const st = this.sandbox.lstat(rel);
      if (!st || st.type !== 'dir') phys = null;
    } catch {
      phys = null;
    }
    if (phys === null) {
      const r = resolveInRoot(this.sandbox, rel, this.rootIsSlash);
      phys = r.kind === 'ok' && r.st.type === 'dir' ? r.rel : null;
    }
    if (phys !== null) this.parentCache = { key: rel, phys };
    return phys;
  }

  /**
   * rsync's send_implied_dirs: the directories leading to `fn[0..limit)` as implied (no-content)
   * dirs. Incremental: only the last one is sent now and the rest of the name is remembered on it.
   */
  private sendImpliedDirs(
    out: SEntry[],
    base: string,
    physFor: (path: string) => string,
    fn: string,
    start: number,
    limit: number,
    type: NameType,
  ): void {
    const path = fn.slice(0, limit);
    if (this.inc) {
      const last = this.lastImplied;
      const needNew = !(last && last.entry && last.base === base && last.path === path);
      if (needNew) {
        const e = this.makeFile(path, base, physFor(path), { implied: true, followAll: true });
        if (e) out.push(e);
        this.lastImplied = { base, path, entry: e && isDir(e) ? e : null };
      }
      const holder = this.lastImplied?.entry;
      if (!holder) return; // the dir vanished
      (holder.relnames ??= []).push({ rest: fn.slice(limit + 1), type });
      return;
    }
    // Non-incremental: every component not already sent for the previous arg.
    const lastPath = this.lastImplied?.path ?? '';
    let s = start;
    let i = 0;
    for (;;) {
      if (i === limit) {
        if (i >= lastPath.length || lastPath[i] === '/') return;
        break;
      }
      if (lastPath[i] !== fn[i]) break;
      if (fn[i] === '/') s = i;
      i++;
    }
    for (let slash = fn.indexOf('/', s + 1); slash >= 0 && slash < limit; slash = fn.indexOf('/', slash + 1)) {
      const p = fn.slice(0, slash);
      const e = this.makeFile(p, base, physFor(p), { implied: true, followAll: true });
      if (e) out.push(e);
    }
    const e = this.makeFile(path, base, physFor(path), { implied: true, followAll: true });
    if (e) out.push(e);
    this.lastImplied = { base, path, entry: null };
  }

  private physUnder(basePhys: string, name: string): string {
    const slash = name.lastIndexOf('/');
    if (slash < 0) return joinRel(basePhys, name);
    const parent = this.resolveCached(joinRel(basePhys, name.slice(0, slash)));
    return joinRel(parent ?? joinRel(basePhys, name.slice(0, slash)), name.slice(slash + 1));
  }

  // ---- incremental recursion: the dir list and the sub-lists ---------------------------------

  /**
   * Registers a sorted list's directories in the dir list (their indexes are what
   * NDX_FLIST_OFFSET - d names) and queues them, after any still-pending siblings of `parent`'s
   * subtree, in depth-first order. Returns the number of directories.
   */
  registerList(sorted: SEntry[], parent: DirNode | null): number {
    const nodes: DirNode[] = [];
    let count = 0;
    let prev: DirNode | null = null;
    for (const e of sorted) {
      if (!isDir(e)) continue;
      const index = this.nextDirIndex++;
      count++;
      if (e.name === '.' || e.name.endsWith('/.')) continue;
      if (prev && prev.members[0].name === e.name) {
        prev.members.push(e);
        continue;
      }
      prev = { index, members: [e], parent };
      nodes.push(prev);
    }
    if (nodes.length > 0) this.stack.push({ nodes, pos: 0 });
    return count;
  }

  /** The next directory to send a sub-list for (depth-first), or null when all are done (EOF). */
  nextDir(): DirNode | null {
    while (this.stack.length > 0) {
      const top = this.stack[this.stack.length - 1];
      if (top.pos < top.nodes.length) {
        const node = top.nodes[top.pos];
        top.nodes[top.pos++] = undefined as unknown as DirNode; // let it go once listed
        return node;
      }
      this.stack.pop();
    }
    return null;
  }

  /** rsync's send1extra for every member of `node`: the sub-list's entries in send order. */
  buildSubList(node: DirNode): SEntry[] {
    const out: SEntry[] = [];
    let scanned: string | null = null;
    for (const dir of node.members) {
      if (dir.content) {
        const phys = physOf(dir);
        if (scanned !== phys) {
          if (this.o.oneFileSystem) this.fsDev = dir.sdev;
          if (this.following && this.inAncestry(node, dir)) {
            this.error(`not descending into "${printable(dir.name)}": symlink loop`);
          } else {
            this.scanDir(dir, true, out);
          }
          scanned = phys;
        }
      }
      const rel = dir.relnames;
      if (!rel) continue;
      dir.relnames = undefined;
      for (const { rest, type } of rel) {
        const fbuf = `${dir.name}/${rest}`;
        const slash = rest.indexOf('/');
        if (slash >= 0) {
          const dirPhys = physOf(dir);
          const skip = dir.name.length + 1;
          this.sendImpliedDirs(out, dir.base, (p) => this.physUnder(dirPhys, p.slice(skip)), fbuf, skip, skip + slash, type);
          continue;
        }
        const phys = this.physUnder(physOf(dir), rest);
        let e: SEntry | null;
        if (type === NameType.Missing) {
          e = this.makeFile(fbuf, dir.base, phys, { top: true, content: true, filtered: true }, zeroStat());
        } else {
          e = this.makeFile(fbuf, dir.base, phys, { top: true, content: true, filtered: true, followDirs: type !== NameType.Normal });
        }
        if (e) out.push(e);
      }
    }
    return out;
  }

  /** With symlink following: is this directory (by dev/ino) one of its own ancestors? */
  private inAncestry(node: DirNode, dir: SEntry): boolean {
    for (let n = node.parent; n; n = n.parent) {
      const m = n.members[0];
      if (m.sdev === dir.sdev && m.sino === dir.sino) return true;
    }
    return false;
  }
}

export type { DirNode };

function confineRel(path: string, grant: SessionContext['grant']): string {
  return confinePath(path, grant, 'source').rel;
}

function zeroStat(): EntryStat {
  return { type: 'file', mode: 0, size: 0, mtimeSec: 0, mtimeNsec: 0, atimeSec: 0, atimeNsec: 0, uid: 0, gid: 0, dev: 0, ino: 0, nlink: 1, rdev: 0 };
}
