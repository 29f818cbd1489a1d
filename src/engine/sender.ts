/**
 * The sending side of a pull (`rsync --server --sender`): builds and sends the file list, then
 * answers the client generator's requests with token streams (protocol-notes §8).
 */
import type { ServerOptions } from '../policy/server-options.js';
import { confinePath } from '../policy/paths.js';
import { ExitCode, ProtocolError, RsyncError } from '../protocol/errors.js';
import { createFileListHasher, createTransferHasher, digestLength } from '../protocol/checksum.js';
import { readFilterList, type FilterRule } from '../protocol/filter.js';
import { FlistWriter, isDir, isRegular, sortFileList, XMIT, type FileEntry, type FlistOptions } from '../protocol/flist.js';
import { MsgTag } from '../protocol/mux.js';
import { NDX_DEL_STATS, NDX_DONE, NDX_FLIST_EOF } from '../protocol/ndx.js';
import { readBlockSums, readSumHead, validateSumHead, writeSumHead, type SumHead } from '../protocol/sumhead.js';
import { createTokenEncoder, type TokenEncoder } from '../protocol/token.js';
import { SandboxError, type EntryStat, type Sandbox } from '../sandbox/sandbox.js';
import { localIds } from '../sandbox/idmap.js';
import { DeltaMatcher } from './delta.js';
import { FilterSet, type DirFilter } from './filter-match.js';
import { IOERR, incRecurse, type SessionContext } from './context.js';
import { ITEM } from './itemize.js';
import { installMessageHandler, sendInfo, sendTransferError } from './messages.js';
import { yieldToLoop } from './notifier.js';
import { dirOf, joinRel, printable } from './relpath.js';

const READ_CHUNK = 256 * 1024;
const MAX_FILES_FROM_NAME = 4096;

export function allowIncRecurseForSender(opts: ServerOptions): boolean {
  void opts;
  return false;
}

/** Where an entry's data lives in the sandbox, and what it was when listed (race check). */
interface Source {
  rel: string;
  dev: number;
  ino: number;
}

const S_IFMT = 0o170000;
const TYPE_BITS: Record<string, number> = {
  file: 0o100000,
  dir: 0o040000,
  symlink: 0o120000,
  chr: 0o020000,
  blk: 0o060000,
  fifo: 0o010000,
  sock: 0o140000,
};

function major(rdev: number): number {
  return ((rdev >> 8) & 0xfff) | ((rdev >>> 32) & ~0xfff);
}
function minor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >> 12) & ~0xff);
}

class Sender {
  private readonly opts: ServerOptions;
  private readonly protocol: number;
  private readonly sandbox: Sandbox;
  private filters: FilterSet | undefined;
  private list: FileEntry[] = [];
  private readonly sources = new Map<FileEntry, Source>();
  private ioError = 0;
  private encoder!: TokenEncoder;
  private flistBuildMs = 0;
  private flistXferMs = 0;
  private totalSize = 0;
  private topDev: number | undefined;
  private readonly filesFromNames: string[] | null = null;

  constructor(private readonly ctx: SessionContext) {
    this.opts = ctx.opts;
    this.protocol = ctx.protocol;
    this.sandbox = ctx.sandbox;
  }

  private get maxPhase(): number {
    return this.protocol >= 29 ? 2 : 1;
  }

  async run(): Promise<number> {
    installMessageHandler(this.ctx, (tag, payload) => this.onRoleMessage(tag, payload));
    const r = this.ctx.reader;
    const rules = await readFilterList(r, this.protocol);
    this.setupFilters(rules);
    const names = this.opts.filesFrom !== undefined ? await this.readFilesFrom() : null;
    const t0 = Date.now();
    this.buildList(names);
    this.flistBuildMs = Date.now() - t0;
    const t1 = Date.now();
    this.sendList();
    this.flistXferMs = Date.now() - t1;
    if (this.list.length === 0) {
      // Nothing to send: the reference exits right after the list (protocol-notes §9.5).
      await this.ctx.writer.drain();
      return this.ioError ? ExitCode.PARTIAL : ExitCode.OK;
    }
    this.encoder = createTokenEncoder(this.ctx.writer, this.ctx.compress, this.ctx.compressLevel, this.protocol);
    await this.serveRequests();
    return this.exitCode();
  }

  private exitCode(): number {
    if (this.ctx.hadTransferError || this.ioError & IOERR.GENERAL) return ExitCode.PARTIAL;
    if (this.ioError & IOERR.VANISHED) return ExitCode.VANISHED;
    return ExitCode.OK;
  }

  private onRoleMessage(tag: number, payload: Buffer): boolean {
    if (tag === MsgTag.SUCCESS) {
      if (payload.length < 4) throw new ProtocolError('invalid MSG_SUCCESS');
      this.removeSent(payload.readInt32LE(0));
      return true;
    }
    return false;
  }

  // ---- filters and files-from --------------------------------------------------------------

  private setupFilters(rules: FilterRule[]): void {
    if (rules.length === 0 && !this.opts.cvsExclude) return;
    this.filters = new FilterSet(rules, {
      side: 'sender',
      cvsExclude: this.opts.cvsExclude,
      protocol: this.protocol,
      readMergeFile: (dirRel, name) => this.readMergeFile(dirRel, name),
    });
  }

  private mergeBase = '';

  private readMergeFile(dirRel: string, name: string): Buffer | null {
    const rel = joinRel(joinRel(this.mergeBase, dirRel), name);
    try {
      const st = this.sandbox.lstat(rel);
      if (!st || st.type !== 'file' || st.size > 1024 * 1024) return null;
      const { fd } = this.sandbox.openRead(rel);
      try {
        const buf = Buffer.alloc(st.size);
        this.sandbox.read(fd, buf, 0, st.size, 0);
        return buf;
      } finally {
        this.sandbox.close(fd);
      }
    } catch {
      return null;
    }
  }

  /** --files-from=- : names follow the filter list; raw (not multiplexed) for protocol < 31. */
  private async readFilesFrom(): Promise<string[]> {
    if (this.opts.filesFrom !== '-') {
      throw new RsyncError('rrsyncd: --files-from must name a client-side file here', ExitCode.SYNTAX);
    }
    const r = this.ctx.reader;
    const raw = this.protocol < 31 && r.isMultiplexed;
    if (raw) r.setMultiplexed(false);
    const names: string[] = [];
    let cur: number[] = [];
    const eol = this.opts.from0 ? 0 : 0x0a;
    for (;;) {
      const b = await r.readU8();
      if (b === eol || b === 0 || (!this.opts.from0 && b === 0x0d)) {
        if (cur.length === 0) {
          if (b === 0 || this.opts.from0) break;
          continue;
        }
        names.push(Buffer.from(cur).toString('latin1'));
        cur = [];
        if (names.length > 10_000_000) throw new ProtocolError('too many --files-from names');
        continue;
      }
      if (cur.length >= MAX_FILES_FROM_NAME) throw new ProtocolError('--files-from name too long');
      cur.push(b);
    }
    if (raw) r.setMultiplexed(true);
    return names;
  }

  // ---- building the file list ---------------------------------------------------------------

  private entryFromStat(name: string, st: EntryStat, rel: string): FileEntry | null {
    const o = this.opts;
    const e: FileEntry = {
      name,
      mode: (st.mode & 0o7777) | TYPE_BITS[st.type],
      size: st.type === 'file' ? st.size : 0,
      mtime: st.mtimeSec,
      mtimeNsec: this.protocol >= 31 ? st.mtimeNsec : 0,
      uid: o.owner ? st.uid : 0,
      gid: o.group ? st.gid : 0,
      rdevMajor: 0,
      rdevMinor: 0,
      xflags: 0,
      ndx: 0,
      arrival: 0,
    };
    if (o.atimes) e.atime = st.atimeSec;
    if (st.type === 'symlink') {
      if (!o.links) return null;
      e.linkTarget = this.sandbox.readlink(rel);
      e.size = e.linkTarget.length;
    } else if (st.type === 'chr' || st.type === 'blk') {
      if (!o.devices) return null;
      e.rdevMajor = major(st.rdev);
      e.rdevMinor = minor(st.rdev);
    } else if (st.type === 'fifo' || st.type === 'sock') {
      if (!o.specials) return null;
    }
    if (o.hardLinks && st.type !== 'dir' && st.nlink > 1) {
      e.dev = st.dev;
      e.ino = st.ino;
    }
    this.sources.set(e, { rel, dev: st.dev, ino: st.ino });
    return e;
  }

  private excluded(filter: DirFilter | undefined, name: string, isDirectory: boolean): boolean {
    return filter ? filter.excluded(name, isDirectory) : false;
  }

  /** Splits a transfer arg like rsync: `dir/` sends the contents as `.`; `a/b` sends `b` (or `a/b` with -R). */
  private topOfArg(arg: string): { base: string; name: string; contentsOnly: boolean } {
    const confined = confinePath(arg, this.ctx.grant, 'source');
    const rel = confined.rel;
    if (this.opts.relative) {
      const marker = rel.indexOf('/./');
      if (marker >= 0) return { base: rel.slice(0, marker), name: rel.slice(marker + 3) || '.', contentsOnly: confined.trailingSlash };
      return { base: '', name: rel || '.', contentsOnly: confined.trailingSlash };
    }
    if (confined.trailingSlash || rel === '') return { base: rel, name: '.', contentsOnly: true };
    const slash = rel.lastIndexOf('/');
    return slash < 0 ? { base: '', name: rel, contentsOnly: false } : { base: rel.slice(0, slash), name: rel.slice(slash + 1), contentsOnly: false };
  }

  private buildList(filesFrom: string[] | null): void {
    const args = this.opts.args.length ? this.opts.args : ['.'];
    const out: FileEntry[] = [];
    if (filesFrom) {
      const { base } = this.topOfArg(args[0].endsWith('/') ? args[0] : `${args[0]}/`);
      this.mergeBase = base;
      for (const n of filesFrom) this.addArg(out, base, n.replace(/^\/+/, '').replace(/\/+$/, '') || '.', false, true);
    } else {
      for (const arg of args) {
        const top = this.topOfArg(arg);
        this.mergeBase = top.base;
        this.addArg(out, top.base, top.name, top.contentsOnly, false);
      }
    }
    this.list = sortFileList(out, this.protocol, 0).filter((e) => !e.inactive);
    this.list.forEach((e, i) => {
      e.ndx = i;
      e.arrival = i;
    });
    this.assignHardLinkGroups();
  }

  private addArg(out: FileEntry[], base: string, name: string, contentsOnly: boolean, fromList: boolean): void {
    const rel = joinRel(base, name);
    let st: EntryStat | null;
    try {
      st = this.sandbox.lstat(rel);
    } catch (err) {
      this.reportListError(name, err);
      return;
    }
    if (!st) {
      if (this.opts.ignoreMissingArgs) return;
      this.ioError |= IOERR.GENERAL;
      sendTransferError(this.ctx, `rsync: [sender] link_stat "${printable(name)}" failed: No such file or directory (2)`);
      return;
    }
    if (this.opts.relative && name !== '.') this.addImpliedDirs(out, base, name);
    const e = this.entryFromStat(name, st, rel);
    if (!e) {
      if (st.type === 'symlink' || st.type === 'fifo' || st.type === 'sock' || st.type === 'chr' || st.type === 'blk') {
        sendInfo(this.ctx, `skipping non-regular file "${printable(name)}"\n`);
      }
      return;
    }
    if (st.type === 'dir') {
      if (!this.opts.recursive && !this.opts.dirs && !contentsOnly) {
        sendInfo(this.ctx, `skipping directory ${printable(name)}\n`);
        return;
      }
      e.xflags |= XMIT.TOP_DIR;
      out.push(e);
      this.topDev ??= st.dev;
      if (this.opts.recursive || (contentsOnly && !fromList)) {
        this.walk(out, base, name, st.dev, this.opts.recursive);
      }
      return;
    }
    out.push(e);
  }

  private addImpliedDirs(out: FileEntry[], base: string, name: string): void {
    if (!this.opts.impliedDirs) return;
    const parts = name.split('/');
    let path = '';
    for (let i = 0; i < parts.length - 1; i++) {
      path = path ? `${path}/${parts[i]}` : parts[i];
      const st = this.sandbox.lstat(joinRel(base, path));
      if (!st || st.type !== 'dir') return;
      const e = this.entryFromStat(path, st, joinRel(base, path));
      if (!e) return;
      if (this.protocol >= 30) e.xflags |= XMIT.TOP_DIR | XMIT.NO_CONTENT_DIR;
      out.push(e);
    }
  }

  private walk(out: FileEntry[], base: string, dirName: string, dev: number, recurse: boolean): void {
    const dirRel = joinRel(base, dirName);
    const filter = this.filters?.enterDir(dirName === '.' ? '' : dirName);
    let names: string[];
    try {
      names = this.sandbox.readdir(dirRel);
    } catch (err) {
      this.reportListError(dirName, err);
      return;
    }
    for (const child of names) {
      const name = dirName === '.' ? child : `${dirName}/${child}`;
      const rel = joinRel(dirRel, child);
      let st: EntryStat | null;
      try {
        st = this.sandbox.lstat(rel);
      } catch (err) {
        this.reportListError(name, err);
        continue;
      }
      if (!st) {
        this.ioError |= IOERR.VANISHED;
        sendInfo(this.ctx, `file has vanished: "${printable(name)}"\n`);
        continue;
      }
      const isDirectory = st.type === 'dir';
      if (this.excluded(filter, name, isDirectory)) continue;
      if (isDirectory && this.opts.oneFileSystem && st.dev !== dev) {
        if (this.opts.oneFileSystem > 1) continue;
      }
      const e = this.entryFromStat(name, st, rel);
      if (!e) continue;
      if (isDirectory && !recurse && !this.opts.dirs) continue;
      out.push(e);
      if (isDirectory && recurse && !(this.opts.oneFileSystem && st.dev !== dev)) this.walk(out, base, name, dev, recurse);
    }
  }

  private reportListError(name: string, err: unknown): void {
    this.ioError |= IOERR.GENERAL;
    const msg = err instanceof Error ? err.message : String(err);
    sendTransferError(this.ctx, `rsync: [sender] ${printable(name)}: ${msg}`);
  }

  private assignHardLinkGroups(): void {
    if (!this.opts.hardLinks) return;
    const first = new Map<string, number>();
    for (const e of this.list) {
      if (e.dev === undefined || e.ino === undefined) continue;
      const key = `${e.dev}:${e.ino}`;
      const leader = first.get(key);
      if (leader === undefined) first.set(key, e.arrival);
      e.hlinkGroup = leader ?? e.arrival;
    }
    // An entry alone in its group is not a hard link as far as the transfer is concerned.
    const counts = new Map<number, number>();
    for (const e of this.list) if (e.hlinkGroup !== undefined) counts.set(e.hlinkGroup, (counts.get(e.hlinkGroup) ?? 0) + 1);
    for (const e of this.list) {
      if (e.hlinkGroup !== undefined && counts.get(e.hlinkGroup) === 1 && this.protocol >= 30) {
        e.hlinkGroup = undefined;
        e.dev = undefined;
        e.ino = undefined;
      }
    }
  }

  private flistOptions(): FlistOptions {
    const o = this.opts;
    return {
      protocol: this.protocol,
      varintFlags: (this.ctx.compatFlags & 0x80) !== 0,
      safeFlist: (this.ctx.compatFlags & 0x08) !== 0 || this.protocol >= 31,
      incRecurse: incRecurse(this.ctx),
      id0Names: (this.ctx.compatFlags & 0x100) !== 0,
      links: o.links,
      owner: o.owner,
      group: o.group,
      devices: o.devices,
      specials: o.specials,
      hardLinks: o.hardLinks > 0,
      atimes: o.atimes > 0,
      crtimes: o.crtimes,
      numericIds: o.numericIds,
      checksumLength: o.checksum ? digestLength(this.ctx.fileSum.name) : 0,
      relative: o.relative,
    };
  }

  private sendList(): void {
    const w = this.ctx.writer;
    const flw = new FlistWriter(this.flistOptions());
    const users = new Map<number, string>();
    const groups = new Map<number, string>();
    const ids = localIds();
    for (const e of this.list) {
      if (this.opts.checksum && isRegular(e)) e.checksum = this.checksumOf(e);
      if (isRegular(e)) this.totalSize += e.size;
      else if (e.linkTarget !== undefined) this.totalSize += e.linkTarget.length;
      if (this.opts.owner && e.uid !== 0 && !users.has(e.uid)) {
        const n = ids.userName(e.uid);
        if (n) users.set(e.uid, n);
      }
      if (this.opts.group && e.gid !== 0 && !groups.has(e.gid)) {
        const n = ids.groupName(e.gid);
        if (n) groups.set(e.gid, n);
      }
      flw.writeEntry(w, e);
    }
    flw.writeEnd(w, this.ioError);
    if (incRecurse(this.ctx)) {
      w.ndx(NDX_FLIST_EOF);
    } else if ((this.opts.owner || this.opts.group) && !this.opts.numericIds) {
      flw.writeIdLists(w, users, groups);
    }
    if (this.protocol < 30) flw.writeTrailingIoError(w, this.ioError);
    w.flush();
  }

  private checksumOf(e: FileEntry): Buffer | undefined {
    const src = this.sources.get(e);
    if (!src) return undefined;
    const h = createFileListHasher(this.ctx.fileSum);
    try {
      const { fd, stat } = this.sandbox.openRead(src.rel);
      try {
        const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK * 4, Math.max(1, stat.size)));
        for (let pos = 0; pos < stat.size; ) {
          const n = this.sandbox.read(fd, buf, 0, Math.min(buf.length, stat.size - pos), pos);
          if (n <= 0) break;
          h.update(buf.subarray(0, n));
          pos += n;
        }
      } finally {
        this.sandbox.close(fd);
      }
    } catch {
      return Buffer.alloc(digestLength(this.ctx.fileSum.name));
    }
    return h.digest();
  }

  // ---- serving requests --------------------------------------------------------------------

  private async serveRequests(): Promise<void> {
    const r = this.ctx.reader;
    const w = this.ctx.writer;
    let phase = 0;
    for (;;) {
      const ndx = await r.readNdx();
      if (ndx === NDX_DONE) {
        phase++;
        if (phase > this.maxPhase) break;
        w.ndx(NDX_DONE);
        w.flush();
        continue;
      }
      if (ndx === NDX_DEL_STATS && this.protocol >= 31) {
        await this.echoDeleteStats();
        continue;
      }
      if (ndx < 0 || ndx > this.list.length) throw new ProtocolError(`Invalid file index: ${ndx} (count=${this.list.length})`);
      const iflags = this.protocol >= 29 ? await r.readU16() : ITEM.TRANSFER;
      if (ndx === this.list.length) {
        // Protocol 29 keep-alive: a fake request for ndx == count with ITEM_IS_NEW.
        if (this.protocol >= 29 && iflags === ITEM.IS_NEW) {
          w.keepAlive();
          continue;
        }
        throw new ProtocolError(`Invalid file index: ${ndx} (count=${this.list.length})`);
      }
      const basisType = iflags & ITEM.BASIS_TYPE_FOLLOWS ? await r.readU8() : undefined;
      const xname = iflags & ITEM.XNAME_FOLLOWS ? await r.readVstring(4095) : undefined;
      const echo = (): void => {
        w.ndx(ndx);
        if (this.protocol >= 29) w.u16(iflags);
        if (basisType !== undefined) w.u8(basisType);
        if (xname !== undefined) w.vstring(xname);
      };
      if (!(iflags & ITEM.TRANSFER)) {
        echo();
        continue;
      }
      if (phase >= 2 && this.protocol >= 29) throw new ProtocolError('got transfer request in phase 2');
      const e = this.list[ndx];
      if (!isRegular(e)) throw new ProtocolError(`transfer request for a non-regular file: ${printable(e.name)}`);
      if (this.opts.dryRun) {
        echo();
        continue;
      }
      const head = await readSumHead(r);
      validateSumHead(head, this.protocol, digestLength(this.ctx.xferSum.name));
      const sums = await readBlockSums(r, head);
      await this.sendFile(e, ndx, head, sums, echo);
      await w.writable();
    }
    if (this.ioError && this.protocol >= 30) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(this.ioError, 0);
      w.message(MsgTag.IO_ERROR, b);
    }
    w.ndx(NDX_DONE);
    this.writeStats();
    w.flush();
    await this.goodbye();
  }

  private async echoDeleteStats(): Promise<void> {
    const r = this.ctx.reader;
    const w = this.ctx.writer;
    const counts: number[] = [];
    for (let i = 0; i < 5; i++) counts.push(await r.readVarint());
    w.ndx(NDX_DEL_STATS);
    for (const c of counts) w.varint(c);
    w.flush();
  }

  private async sendFile(
    e: FileEntry,
    ndx: number,
    head: SumHead,
    sums: Awaited<ReturnType<typeof readBlockSums>>,
    echo: () => void,
  ): Promise<void> {
    const w = this.ctx.writer;
    const src = this.sources.get(e)!;
    let fd: number;
    let size: number;
    try {
      const opened = this.sandbox.openRead(src.rel, { dev: src.dev, ino: src.ino });
      fd = opened.fd;
      size = opened.stat.size;
    } catch (err) {
      this.reportOpenFailure(e, ndx, err);
      return;
    }
    try {
      echo();
      writeSumHead(w, head);
      const hasher = createTransferHasher(this.ctx.xferSum);
      this.encoder.beginFile({ level: this.levelFor(e) });
      const enc = this.encoder;
      const matcher = head.count > 0 ? new DeltaMatcher(sums, this.ctx.xferSum, { literal: (d) => enc.literal(d), match: (i, d) => enc.match(i, d) }, { inplace: this.opts.inplace }) : null;
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      let pos = 0;
      let lastYield = Date.now();
      while (pos < size) {
        const n = this.sandbox.read(fd, buf, 0, Math.min(READ_CHUNK, size - pos), pos);
        if (n <= 0) break;
        const chunk = buf.subarray(0, n);
        hasher.update(chunk);
        if (matcher) matcher.push(chunk);
        else enc.literal(chunk);
        pos += n;
        await w.writable();
        if (Date.now() - lastYield > 50) {
          await yieldToLoop();
          lastYield = Date.now();
        }
      }
      matcher?.finish();
      enc.endFile();
      w.bytes(hasher.digest());
      if (pos !== size) {
        sendTransferError(this.ctx, `rsync: [sender] read errors mapping "${printable(e.name)}": file changed size during transfer`);
      }
    } finally {
      this.sandbox.close(fd);
    }
  }

  private levelFor(e: FileEntry): number | undefined {
    if (this.ctx.compress === 'none') return undefined;
    const dot = e.name.lastIndexOf('.');
    if (dot < 0) return undefined;
    const suffix = e.name.slice(dot + 1).toLowerCase();
    return skipCompressSuffixes(this.opts.skipCompress).has(suffix) ? 0 : undefined;
  }

  private reportOpenFailure(e: FileEntry, ndx: number, err: unknown): void {
    const vanished = err instanceof SandboxError && (err.code === 'ENOENT' || err.code === 'ECHANGED');
    this.ioError |= vanished ? IOERR.VANISHED : IOERR.GENERAL;
    if (vanished) sendInfo(this.ctx, `file has vanished: "${printable(e.name)}"\n`);
    else sendTransferError(this.ctx, `rsync: [sender] send_files failed to open "${printable(e.name)}": ${err instanceof Error ? err.message : String(err)}`);
    if (this.protocol >= 30) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(ndx, 0);
      this.ctx.writer.message(MsgTag.NO_SEND, b);
    }
  }

  private writeStats(): void {
    const w = this.ctx.writer;
    const read = this.ctx.reader.totalRead;
    const written = w.totalWritten + w.pendingBytes;
    if (this.protocol < 29) {
      w.longint(read);
      w.longint(written);
      w.longint(this.totalSize);
      return;
    }
    for (const v of [read, written, this.totalSize, this.flistBuildMs, this.flistXferMs]) w.varlong30(v, 3);
  }

  private async goodbye(): Promise<void> {
    const r = this.ctx.reader;
    const w = this.ctx.writer;
    if (this.protocol < 29) {
      const v = await r.readI32();
      if (v !== -1) throw new ProtocolError(`bad goodbye from client: ${v}`);
      return;
    }
    let ndx = await this.readGoodbyeNdx();
    if (this.protocol >= 31 && ndx === NDX_DONE) {
      w.ndx(NDX_DONE);
      w.flush();
      ndx = await this.readGoodbyeNdx();
    }
    if (ndx !== NDX_DONE) throw new ProtocolError(`bad goodbye from client: ${ndx}`);
  }

  private async readGoodbyeNdx(): Promise<number> {
    for (;;) {
      const ndx = await this.ctx.reader.readNdx();
      if (ndx === NDX_DEL_STATS && this.protocol >= 31) {
        await this.echoDeleteStats();
        continue;
      }
      return ndx;
    }
  }

  private removeSent(ndx: number): void {
    if (!this.opts.removeSourceFiles) return;
    if (ndx < 0 || ndx >= this.list.length) throw new ProtocolError(`Invalid file index in MSG_SUCCESS: ${ndx}`);
    const e = this.list[ndx];
    const src = this.sources.get(e);
    if (!src || isDir(e)) return;
    try {
      const st = this.sandbox.lstat(src.rel);
      if (!st || st.ino !== src.ino || st.dev !== src.dev) return;
      if (st.size !== e.size || st.mtimeSec !== e.mtime) {
        sendInfo(this.ctx, `ERROR: Skipping sender remove for changed file: ${printable(e.name)}\n`);
        return;
      }
      this.sandbox.unlink(src.rel);
      if (this.opts.verbose > 1) sendInfo(this.ctx, `sender removed ${printable(e.name)}\n`);
    } catch (err) {
      sendTransferError(this.ctx, `rsync: [sender] sender failed to remove ${printable(e.name)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

const DEFAULT_SKIP_COMPRESS =
  '3g2/3gp/7z/aac/ace/apk/avi/bz2/deb/dmg/ear/f4v/flac/flv/gpg/gz/iso/jar/jpeg/jpg/lrz/lz/lz4/lzma/lzo/m1a/m1v/m2a/m2ts/m2v/m4a/m4b/m4p/m4r/m4v/mka/mkv/mov/mp1/mp2/mp3/mp4/mpa/mpeg/mpg/mpv/mts/odb/odf/odg/odi/odm/odp/ods/odt/oga/ogg/ogm/ogv/ogx/opus/otg/oth/otp/ots/ott/oxt/png/qt/rar/rpm/rz/rzip/spx/squashfs/sxc/sxd/sxg/sxm/sxw/sz/tbz/tbz2/tgz/tlz/ts/txz/tzo/vob/war/webm/webp/xz/z/zip/zst';
const skipCache = new Map<string, Set<string>>();

function skipCompressSuffixes(option: string | undefined): Set<string> {
  const key = option ?? DEFAULT_SKIP_COMPRESS;
  let set = skipCache.get(key);
  if (!set) {
    set = new Set(key.split('/').filter(Boolean).map((s) => s.toLowerCase()));
    skipCache.set(key, set);
  }
  return set;
}

export async function runSender(ctx: SessionContext): Promise<number> {
  return new Sender(ctx).run();
}

export { dirOf, S_IFMT };
