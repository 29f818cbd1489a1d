/**
 * The sender's file-list walk (docs/protocol.md §6.5, §6.7, §6.8), modelled on rsync's
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
import type { ServerOptions } from '../../policy/server-options.js';
import { confinePath } from '../../policy/paths.js';
import { ExitCode, IOERR, RsyncError } from '../../protocol/errors.js';
import { isDir } from '../../protocol/flist/entry.js';
import { SandboxError, errnoText, errorText } from '../../sandbox/errors.js';
import { isUnsafeSymlink, unmungeSymlink } from '../../sandbox/paths.js';
import type { Sandbox } from '../../sandbox/sandbox.js';
import type { EntryStat } from '../../sandbox/stat.js';
import type { FilterSet } from '../filter-match.js';
import type { SessionContext } from '../context.js';
import { sendInfo, sendTransferError, sendWarning } from '../messages.js';
import { joinRel } from '../relpath.js';
import { printable } from '../../printable.js';
import { NameType, makeEntry, physOf, zeroStat, type DirNode, type MakeFlags, type SEntry } from './entry.js';
import { entryOverhead } from '../budget.js';
import { sanitizeFilesFromName } from './files-from.js';
import { resolveInRoot } from './resolve.js';
import { DirQueue } from './dir-queue.js';

/** Longest name we put in a list (the reference's MAXPATHLEN - 1). */
const MAX_NAME = 4095;

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
  /** What each entry is charged to the session's budget besides its name. */
  private readonly entryCost: number;
  private fsDev = -1;
  private readonly dirs = new DirQueue();
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
    this.entryCost = entryOverhead('sender', this.o);
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

  /** A path the session hides from the client (a revisions root's staging place). */
  private hidden(phys: string): boolean {
    const h = this.ctx.hiddenPath;
    return h !== undefined && (phys === h || phys.startsWith(`${h}/`));
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
    if (this.hidden(phys)) return null;
    this.ctx.budget.charge(this.entryCost + name.length, 'the file list');
    return makeEntry(this.o, this.proto, this.sandbox, name, base, phys, st, target, { ...flags, content });
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
    if (this.hidden(phys) || this.hidden(basePhys)) {
      this.error(`link_stat "${printable(joinRel(base, fn))}" failed: ${errnoText('ENOENT')}`, false);
      return;
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
    this.ctx.budget.charge(this.entryCost + fn.length, 'the file list');
    return makeEntry(this.o, this.proto, this.sandbox, fn, base, phys, st, target, { ...flags, content: !!flags.content && st.type === 'dir' });
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

  /** Queues a sorted list's directories for their sub-lists (see DirQueue.register). */
  registerList(sorted: SEntry[], parent: DirNode | null): number {
    return this.dirs.register(sorted, parent);
  }

  /** The next directory to send a sub-list for (depth-first), or null when all are done (EOF). */
  nextDir(): DirNode | null {
    return this.dirs.next();
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

function confineRel(path: string, grant: SessionContext['grant']): string {
  return confinePath(path, grant, 'source').rel;
}
