/**
 * The destination gateway: the only way a session changes its tree. It sits between the roles
 * and the sandbox (which confines every path and does the system calls) and hands each change
 * to the policies the session composed (quota, the grant's -no-del / -no-overwrite, audit), in
 * order, before and after it is made. Reading stays on the sandbox.
 *
 * Files written through a descriptor (temp files, unnamed O_TMPFILE files, --inplace targets)
 * are tracked from the call that opens them to close(), so a policy sees their growth ('write')
 * and the name they finally get ('create' / 'rename').
 */
import { SandboxError, type EntryStat, type Sandbox } from '../sandbox/sandbox.js';
import { type Attrs } from '../sandbox/attrs.js';
import type { Change, ChangePolicy, ChangePurpose } from './change.js';

interface WriteHandle {
  /** Root-relative name; null while the file is unnamed. */
  path: string | null;
  /** The directory an unnamed file was made in. */
  dir: string;
  /** The name the data is meant for (its current size is freed when the data lands there). */
  dest?: string;
  /** Highest offset written so far. */
  size: number;
}

export class Gateway {
  private readonly handles = new Map<number, WriteHandle>();
  private readonly policies: ChangePolicy[];
  /** Some policy checks changes before they are made (else a write needs no Change record). */
  private checksBefore: boolean;

  constructor(
    private readonly sandbox: Sandbox,
    policies: readonly ChangePolicy[] = [],
  ) {
    this.policies = [...policies];
    this.checksBefore = this.policies.some((p) => p.before);
  }

  /** Adds a policy after those given at construction (e.g. a test's recorder). */
  use(policy: ChangePolicy): void {
    this.policies.push(policy);
    this.checksBefore ||= policy.before !== undefined;
  }

  // ---- namespace ----------------------------------------------------------------------------

  mkdir(rel: string, mode: number, purpose: ChangePurpose = 'entry'): void {
    this.apply({ op: 'mkdir', path: rel, purpose, type: 'dir', mode }, (p) => this.sandbox.mkdir(p, mode));
  }

  /** Every missing component, each one a 'mkdir' change (no-follow: a symlink on the way is an error). */
  mkdirp(rel: string, mode: number, purpose: ChangePurpose = 'entry'): void {
    const parts = rel.split('/').filter((s) => s !== '' && s !== '.');
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join('/');
      const st = this.sandbox.lstat(sub);
      if (st && st.type === 'dir') continue;
      // Anything else in the way: the sandbox says why in its own words.
      if (st) return this.sandbox.mkdirp(rel, mode);
      this.mkdir(sub, mode, purpose);
    }
  }

  symlink(target: string, rel: string, purpose: ChangePurpose = 'entry'): void {
    this.apply({ op: 'symlink', path: rel, purpose, type: 'symlink', target }, (p) => this.sandbox.symlink(target, p));
  }

  /** A device or a fifo from a full st_mode (mknod), or a fifo from permission bits (mkfifo). */
  mknod(rel: string, mode: number, rdev: number | null, purpose: ChangePurpose = 'entry'): void {
    const type = rdev === null ? 'fifo' : (mode & 0o170000) === 0o060000 ? 'blk' : (mode & 0o170000) === 0o010000 ? 'fifo' : 'chr';
    this.apply({ op: 'mknod', path: rel, purpose, type, mode }, (p) =>
      rdev === null ? this.sandbox.mkfifo(p, mode) : this.sandbox.mknod(p, mode, rdev),
    );
  }

  link(existingRel: string, newRel: string, purpose: ChangePurpose = 'entry'): void {
    this.apply({ op: 'link', path: newRel, from: existingRel, purpose }, (p) => this.sandbox.link(existingRel, p));
  }

  rename(fromRel: string, toRel: string, purpose: ChangePurpose = 'entry'): void {
    this.apply({ op: 'rename', path: toRel, from: fromRel, purpose }, (p) => {
      this.sandbox.rename(fromRel, p);
      for (const h of this.handles.values()) if (h.path === fromRel) h.path = p;
    });
  }

  unlink(rel: string, purpose: ChangePurpose = 'entry'): void {
    this.apply({ op: 'delete', path: rel, purpose }, (p) => this.sandbox.unlink(p));
  }

  rmdir(rel: string, purpose: ChangePurpose = 'entry'): void {
    this.apply({ op: 'delete', path: rel, purpose, type: 'dir' }, (p) => this.sandbox.rmdir(p));
  }

  /** rm -rf (no-follow); a missing path is not an error and no change. */
  removeTree(rel: string, purpose: ChangePurpose = 'entry'): void {
    const st = this.sandbox.lstat(rel);
    if (!st) return;
    this.apply({ op: 'delete', path: rel, purpose, type: st.type }, (p) => this.sandbox.removeTree(p));
  }

  /** removeTree, letting the event loop run every few hundred operations (a tenant's big tree). */
  async removeTreeYielding(rel: string, purpose: ChangePurpose = 'entry'): Promise<void> {
    const st = this.sandbox.lstat(rel);
    if (!st) return;
    await this.applyAsync({ op: 'delete', path: rel, purpose, type: st.type }, (p) => this.sandbox.removeTreeYielding(p));
  }

  setAttrs(rel: string, attrs: Attrs, opts: { isSymlink?: boolean } = {}, purpose: ChangePurpose = 'entry'): void {
    if (attrs.mode === undefined && attrs.mtime === undefined && attrs.atime === undefined && attrs.uid === undefined && attrs.gid === undefined) {
      return this.sandbox.setAttrs(rel, attrs, opts);
    }
    const change = attrsChange(rel, purpose, attrs);
    this.apply(change, (p) => this.sandbox.setAttrs(p, narrowed(attrs, change), opts));
  }

  // ---- file data ----------------------------------------------------------------------------

  /**
   * rsync's temp file `.<name>.XXXXXX` in relDir (see Sandbox.createTemp). `dest`: the name the
   * data is for. Policies see the directory as `path` before, the temp's name after.
   */
  createTemp(
    relDir: string,
    baseName: string,
    mode: number,
    opts: { noLeadingDot?: boolean; dest?: string; purpose?: ChangePurpose } = {},
  ): { fd: number; rel: string } {
    const change: Change = { op: 'create', path: relDir, purpose: opts.purpose ?? 'temp', type: 'file', mode, size: 0 };
    const made = this.apply(change, (dir) => {
      const t = this.sandbox.createTemp(dir, baseName, mode, { noLeadingDot: opts.noLeadingDot });
      change.path = t.rel;
      return t;
    });
    this.handles.set(made.fd, { path: made.rel, dir: relDir, dest: opts.dest, size: 0 });
    return made;
  }

  /** An unnamed (O_TMPFILE) file in relDir, or null where the filesystem cannot: no change until it is named. */
  createUnnamed(relDir: string, mode: number, dest?: string): number | null {
    // Asked only: nothing has a name before linkUnnamed/nameUnnamed (which are recorded).
    for (const p of this.policies) {
      const to = p.before?.({ op: 'create', path: relDir, purpose: 'temp', type: 'file', mode, size: 0 });
      if (typeof to === 'string') return null; // redirected: a named temp file goes there instead
    }
    const fd = this.sandbox.createAnonymous(relDir, mode);
    if (fd !== null) this.handles.set(fd, { path: null, dir: relDir, dest, size: 0 });
    return fd;
  }

  /** Gives an unnamed file the name toRel unless it exists (false): the file appears complete. */
  linkUnnamed(fd: number, toRel: string, purpose: ChangePurpose = 'entry'): boolean {
    const h = this.handle(fd);
    let done = false;
    this.apply({ op: 'create', path: toRel, purpose, type: 'file', size: h.size }, (p) => {
      done = this.sandbox.linkAnonymous(fd, p);
      if (!done) throw new NotLinked();
      h.path = p;
    }, true);
    return done;
  }

  /** Gives an unnamed file a temp name in relDir (as createTemp would have made it). */
  nameUnnamed(fd: number, relDir: string, baseName: string, opts: { noLeadingDot?: boolean } = {}): string {
    const h = this.handle(fd);
    const change: Change = { op: 'create', path: relDir, purpose: 'temp', type: 'file', size: h.size };
    return this.apply(change, (dir) => {
      const rel = this.sandbox.nameAnonymous(fd, dir, baseName, opts);
      change.path = h.path = rel;
      return rel;
    });
  }

  /** Opens an existing regular file to write into it (--inplace, --append, a partial-dir basis). */
  openInPlace(rel: string, purpose: ChangePurpose = 'entry'): { fd: number; stat: EntryStat } {
    const f = this.apply({ op: 'modify', path: rel, purpose, type: 'file' }, (p) => this.sandbox.openWrite(p));
    this.handles.set(f.fd, { path: rel, dir: '', dest: rel, size: f.stat.size });
    return f;
  }

  /** Writes all of buf[offset, offset + length) at `position` of a file opened here. */
  write(fd: number, buf: Buffer, offset: number, length: number, position: number): void {
    const h = this.handle(fd);
    const end = position + length;
    if (end > h.size) {
      if (this.checksBefore) this.checkWrite(h, end);
      h.size = end;
    }
    this.sandbox.write(fd, buf, offset, length, position);
  }

  truncate(fd: number, length: number): void {
    const h = this.handle(fd);
    if (h.path === null) this.sandbox.truncate(fd, length);
    else this.apply({ op: 'truncate', path: h.path, purpose: 'entry', type: 'file', size: length }, () => this.sandbox.truncate(fd, length));
    h.size = length;
  }

  /** Deallocates a range inside the file's current size (-S in place): no size change. */
  punchHole(fd: number, offset: number, length: number): void {
    this.handle(fd);
    this.sandbox.punchHole(fd, offset, length);
  }

  fsetAttrs(fd: number, attrs: Attrs): void {
    const h = this.handle(fd);
    // An unnamed file is nobody's yet: its attributes are part of the 'create' that names it.
    if (h.path === null) return this.sandbox.fsetAttrs(fd, attrs);
    const change = attrsChange(h.path, 'entry', attrs);
    this.apply(change, () => this.sandbox.fsetAttrs(fd, narrowed(attrs, change)));
  }

  /** Starts writeback of a range (see Sandbox.startWriteback). */
  startWriteback(fd: number, offset: number, length: number): void {
    this.sandbox.startWriteback(fd, offset, length);
  }

  fsync(fd: number): void {
    this.sandbox.fsync(fd);
  }

  /** Closes a file opened here (it is forgotten even when close fails). */
  close(fd: number): void {
    this.handles.delete(fd);
    this.sandbox.close(fd);
  }

  /** The session is over (however it ended): each policy releases what it holds. */
  end(): void {
    for (const p of this.policies) p.end?.();
  }

  /** The name a file opened here has now (null: unnamed). */
  nameOf(fd: number): string | null {
    return this.handle(fd).path;
  }

  // ---- internals ------------------------------------------------------------------------------

  /** The policies' before hooks see a file grow to `end` ('write' changes are never recorded after). */
  private checkWrite(h: WriteHandle, end: number): void {
    const change: Change = { op: 'write', path: h.path ?? h.dir, purpose: 'entry', size: end };
    if (h.dest !== undefined) change.dest = h.dest;
    for (const p of this.policies) p.before?.(change);
  }

  private handle(fd: number): WriteHandle {
    const h = this.handles.get(fd);
    if (!h) throw new SandboxError('EBADF', `fd ${fd}`, `fd ${fd} was not opened for writing through the gateway`);
    return h;
  }

  /**
   * Runs `act` on the (possibly redirected) path between the policies' before and after hooks.
   * `quietAfter`: an act that may decline (linkUnnamed: the name exists) reports nothing then.
   */
  private apply<T>(change: Change, act: (path: string) => T, quietAfter = false): T {
    this.before(change);
    let result: T;
    try {
      result = act(change.path);
    } catch (err) {
      if (quietAfter && err instanceof NotLinked) return undefined as T;
      throw err;
    }
    this.after(change);
    return result;
  }

  /** apply() around an awaited act (a removal that yields to the event loop). */
  private async applyAsync(change: Change, act: (path: string) => Promise<void>): Promise<void> {
    this.before(change);
    await act(change.path);
    this.after(change);
  }

  /** The policies' before hooks, in order; one may redirect the change's path. */
  private before(change: Change): void {
    for (const p of this.policies) {
      const to = p.before?.(change);
      if (typeof to === 'string') change.path = to;
    }
  }

  private after(change: Change): void {
    for (const p of this.policies) p.after?.(change);
  }
}

function attrsChange(path: string, purpose: ChangePurpose, a: Attrs): Change {
  const times = a.mtime !== undefined || a.atime !== undefined;
  return { op: 'attrs', path, purpose, mode: a.mode, uid: a.uid, gid: a.gid, times };
}

/** The attributes a policy left in an 'attrs' change. */
function narrowed(a: Attrs, c: Change): Attrs {
  const out: Attrs = { mode: c.mode, uid: c.uid, gid: c.gid };
  if (c.times) {
    out.mtime = a.mtime;
    out.atime = a.atime;
  }
  return out;
}

/** linkUnnamed found the name taken: no change happened. */
class NotLinked extends Error {}

export type { Change, ChangePolicy, ChangePurpose };
