/**
 * A minimal, scriptable rsync CLIENT for hostile-input tests (issue 5, docs/attacks.md §2 and
 * Appendix A). It starts the engine the way `rsync -e test/pipe/rsh.sh` does (a child process
 * running test/pipe/server.ts over pipes), or, for speed, runs runRsyncSession() in this process
 * over PassThrough streams ('inproc'; HOSTILE_SPAWN=1 forces every case into a child). It performs
 * the handshake, then lets a test write arbitrary bytes or mostly-valid frames (ProtocolWriter,
 * FlistWriter) and read the server's multiplexed output (ProtocolReader), and finally reports the
 * server's exit code, stderr, MSG_ERROR* texts, internal-error log records and (child mode) peak
 * memory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Transform, type Readable, type Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { snapshotTreeSync, treeChangeLines } from '../helpers/tree.js';
import { runRsyncSession, type SessionResult } from '../../src/engine/session.js';
import { checksumSpecs, type Negotiated } from '../../src/engine/handshake.js';
import { defaultGrant, type Grant } from '../../src/policy/grant.js';
import { parseServerArgs } from '../../src/policy/options.js';
import type { ServerOptions } from '../../src/policy/server-options.js';
import {
  canonicalChecksumName,
  createTransferHasher,
  digestLength,
  initChecksums,
  SUPPORTED_CHECKSUMS,
  type ChecksumName,
  type ChecksumSpec,
} from '../../src/protocol/checksum.js';
import { UnexpectedEofError } from '../../src/protocol/errors.js';
import { FlistReader } from '../../src/protocol/flist/flist-reader.js';
import { FlistWriter } from '../../src/protocol/flist/flist-writer.js';
import { sortFileList } from '../../src/protocol/flist/flist-sort.js';
import type { FileEntry, FlistOptions } from '../../src/protocol/flist/entry.js';
import { ProtocolReader } from '../../src/protocol/input.js';
import { MsgTag } from '../../src/protocol/mux.js';
import { NDX_DEL_STATS, NDX_DONE, NDX_FLIST_EOF, NDX_FLIST_OFFSET } from '../../src/protocol/ndx.js';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { readSumHead, writeSumHead, type SumHead } from '../../src/protocol/sumhead.js';
import {
  canonicalCompressName,
  createTokenEncoder,
  initCompression,
  SUPPORTED_COMPRESSIONS,
  type CompressName,
  type TokenEncoder,
} from '../../src/protocol/token.js';
import { hashWasmBinaries } from '../../src/patches/hash-wasm.js';

export {  NDX_DONE, NDX_FLIST_EOF,  MsgTag };

const HERE = fileURLToPath(new URL('.', import.meta.url));
const TOP = join(HERE, '..', '..');
const LOADER = `file://${TOP}/node_modules/tsx/dist/loader.mjs`;
const PIPE_SERVER = join(TOP, 'test', 'pipe', 'server.ts');
export const RSH = join(TOP, 'test', 'pipe', 'rsh.sh');

export const ITEM = {
  BASIS_TYPE_FOLLOWS: 0x0800,
  XNAME_FOLLOWS: 0x1000,
  IS_NEW: 0x2000,
  LOCAL_CHANGE: 0x4000,
  TRANSFER: 0x8000,
} as const;

export const EXIT = { OK: 0, SYNTAX: 1, PROTOCOL: 2, FILESELECT: 3, UNSUPPORTED: 4, STREAMIO: 12, PARTIAL: 23 } as const;

export type Mode = 'spawn' | 'inproc';

export interface StartOptions {
  /** The grant root. */
  root: string;
  /** Words after `rsync`, e.g. ['--server', '-logDtpre.iLsfxCIvu', '.', 'dst/']. */
  args: string[];
  /** Partial Grant (RRSYNCD_TEST_GRANT). */
  grant?: Partial<Grant>;
  /** Default: 'inproc', unless HOSTILE_SPAWN=1. */
  mode?: Mode;
}

export interface ServerMessage {
  tag: number;
  text: string;
}

export interface Outcome {
  exitCode: number | null;
  signal: string | null;
  /** The server did not finish within the deadline (it was killed / abandoned). */
  hung: boolean;
  /** runRsyncSession rejected, or the child printed a stack trace / died of a signal. */
  crashed: boolean;
  stderr: string;
  /** Text of every MSG_ERROR_XFER / MSG_ERROR / MSG_WARNING / MSG_INFO the server sent. */
  messages: ServerMessage[];
  /** MSG_ERROR_EXIT code, if one arrived. */
  errorExit?: number;
  /** Errors + stderr, one string (for regex assertions). */
  errorText: string;
  /** Log records with a stack (non-RsyncError failures inside the engine). */
  internalErrors: string[];
  /** Child mode only: peak resident set (VmHWM), KiB. */
  peakKb?: number;
  ms: number;
}

export interface HandshakeOptions {
  /** Our protocol version (default 32). */
  version?: number;
  /** Our checksum list (default the 3.5.0 client list). */
  checksums?: string;
  /** Our compression list. */
  compressions?: string;
  /** Stop after writing the version (truncation tests). */
  versionOnly?: boolean;
  /** Write nothing, only parse the server's side (replaying a recorded client stream). */
  readOnly?: boolean;
}

const SERVER_TEXT_TAGS: ReadonlySet<number> = new Set([MsgTag.ERROR_XFER, MsgTag.INFO, MsgTag.ERROR, MsgTag.WARNING]);

function hasShortLetter(args: string[], letter: string): boolean {
  for (const a of args) {
    if (a === '.') break;
    if (!a.startsWith('-') || a.startsWith('--')) continue;
    const e = a.indexOf('e');
    const cluster = e >= 0 ? a.slice(1, e) : a.slice(1);
    if (cluster.includes(letter)) return true;
  }
  return false;
}

export class HostileClient {
  readonly r: ProtocolReader;
  readonly w: ProtocolWriter;
  readonly messages: ServerMessage[] = [];
  errorExit: number | undefined;
  protocol = 32;
  compatFlags = 0;
  seed = 0;
  xferSum!: ChecksumSpec;
  fileSum!: ChecksumSpec;
  compress: CompressName = 'none';
  /** The server's options as it parses them (for the file-list dialect). */
  readonly opts: ServerOptions;
  private readonly started = Date.now();
  private finished: Promise<{ exitCode: number | null; signal: string | null; crashed: boolean }>;
  private done = false;
  private stderrText = '';
  private readonly logRecords: Array<Record<string, unknown>> = [];
  private peakKb = 0;
  private memTimer: NodeJS.Timeout | undefined;
  private logFile: string | undefined;
  private readonly input: Writable;
  private readonly child: ChildProcess | undefined;
  private flistWriter: FlistWriter | undefined;
  private outputEof = false;

  private constructor(readonly spec: StartOptions, readonly mode: Mode) {
    this.opts = safeParse(spec.args);
    let output: Readable;
    if (mode === 'spawn') {
      const logDir = mkdtempSync(join(tmpdir(), 'hostile-log-'));
      this.logFile = join(logDir, 'log.jsonl');
      const child = spawn(process.execPath, ['--import', LOADER, PIPE_SERVER, 'x', 'rsync', ...spec.args], {
        env: {
          ...process.env,
          RRSYNCD_TEST_ROOT: spec.root,
          RRSYNCD_TEST_GRANT: spec.grant ? JSON.stringify(spec.grant) : '',
          RRSYNCD_TEST_LOG: this.logFile,
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      this.child = child;
      child.stdin!.on('error', () => undefined); // EPIPE once the server is gone
      child.stderr!.on('data', (d: Buffer) => {
        this.stderrText += d.toString('latin1');
      });
      this.input = child.stdin!;
      output = child.stdout!;
      this.memTimer = setInterval(() => this.sampleMemory(), 40);
      this.finished = new Promise((resolve) => {
        child.on('exit', (code, signal) => {
          this.done = true;
          if (this.memTimer) clearInterval(this.memTimer);
          resolve({ exitCode: code, signal, crashed: signal !== null });
        });
      });
    } else {
      const input = new PassThrough();
      input.on('error', () => undefined);
      // A copy of each chunk: the server's writer reuses a frame buffer once the sink's write
      // callback ran, which for a bare PassThrough is while our reader still holds the chunk.
      const out = new Transform({ transform: (chunk: Buffer, _enc, cb) => cb(null, Buffer.from(chunk)) });
      const err = new PassThrough();
      err.on('data', (d: Buffer) => {
        this.stderrText += d.toString('latin1');
      });
      const records = this.logRecords;
      const log = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s)) });
      const grant: Grant = { ...defaultGrant(spec.root), ...(spec.grant ?? {}) };
      this.input = input;
      output = out;
      this.finished = runRsyncSession({ input, output: out, stderr: err }, { argv: ['rsync', ...spec.args], grant, log }).then(
        (res: SessionResult) => {
          this.done = true;
          out.end();
          return { exitCode: res.exitCode, signal: null, crashed: false };
        },
        (e: unknown) => {
          this.done = true;
          out.end();
          this.stderrText += `CRASH: ${(e as Error)?.stack ?? String(e)}\n`;
          return { exitCode: null, signal: null, crashed: true };
        },
      );
    }
    this.r = new ProtocolReader(output);
    const input = this.input;
    const recorded = this.recorded;
    this.w = new ProtocolWriter({
      write: (chunk: Buffer) => {
        if (this.inputEnded) return true; // the script wrote after closing: drop it
        recorded.push(Buffer.from(chunk));
        return input.write(chunk);
      },
      once: (ev: 'drain', l: () => void) => input.once(ev, l),
    });
    output.on('end', () => {
      this.outputEof = true;
    });
    this.r.onStarve = () => this.w.flush();
    this.r.onMessage = (tag, payload) => {
      if (SERVER_TEXT_TAGS.has(tag)) this.messages.push({ tag, text: payload.toString('latin1') });
      else if (tag === MsgTag.ERROR_EXIT) {
        // A real client answers and exits; closing our side is what the server waits for.
        this.errorExit = payload.length >= 4 ? payload.readInt32LE(0) : 0;
        this.end();
      }
      else if (tag === MsgTag.DELETED) this.messages.push({ tag, text: payload.toString('latin1') });
      // MSG_IO_ERROR, MSG_NO_SEND, MSG_SUCCESS, keep-alives: ignored
    };
  }

  static async start(spec: StartOptions): Promise<HostileClient> {
    await Promise.all([initChecksums(hashWasmBinaries()), initCompression()]);
    const mode: Mode = process.env.HOSTILE_SPAWN === '1' ? 'spawn' : (spec.mode ?? 'inproc');
    return new HostileClient(spec, mode);
  }

  private sampleMemory(): void {
    if (!this.child?.pid || this.done) return;
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid}/status`, 'latin1'));
      if (m) this.peakKb = Math.max(this.peakKb, Number(m[1]));
    } catch {
      // gone
    }
  }

  // ---- raw access --------------------------------------------------------------------------

  /** Writes bytes exactly as given (no framing), after flushing pending frames. */
  raw(bytes: Buffer | number[]): void {
    this.w.flush();
    const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
    if (this.inputEnded) return;
    this.recorded.push(Buffer.from(b));
    this.input.write(b);
  }

  /** Writes bytes and waits until the server side accepted them (large floods). */
  async rawPaced(bytes: Buffer): Promise<boolean> {
    this.w.flush();
    if (this.done || this.inputEnded) return false;
    if (!this.input.write(bytes)) {
      await Promise.race([new Promise((r) => this.input.once('drain', r)), this.finished]);
    }
    return !this.done;
  }

  /** Flushes and waits for the server to take the data, or for the server to be gone (floods). */
  async pace(): Promise<void> {
    if (this.stopped) return;
    await Promise.race([this.w.drain(), this.finished.then(() => undefined)]);
  }

  /** Everything we wrote so far (for replaying prefixes). */
  readonly recorded: Buffer[] = [];

  get serverDone(): boolean {
    return this.done;
  }

  /** The server ended, or we closed our side: floods should stop writing. */
  get stopped(): boolean {
    return this.done || this.inputEnded || this.errorExit !== undefined || this.outputEof;
  }

  /** Writes one multiplexed frame with any tag and a payload (or a length claim without payload). */
  frame(tag: number, payload: Buffer, claimedLength = payload.length): void {
    const hdr = Buffer.alloc(4);
    hdr.writeUInt32LE((((7 + tag) << 24) | (claimedLength & 0xffffff)) >>> 0, 0);
    this.raw(Buffer.concat([hdr, payload]));
  }

  flush(): void {
    this.w.flush();
  }

  /** Closes our side (the server then sees EOF). */
  end(): void {
    if (this.inputEnded) return;
    this.w.flush();
    this.inputEnded = true;
    this.input.end();
  }

  private inputEnded = false;

  // ---- handshake ---------------------------------------------------------------------------

  /** Protected args (-s): NUL-terminated words, then an empty one. */
  protectedArgs(words: string[]): void {
    const parts = words.map((s) => Buffer.concat([Buffer.from(s, 'latin1'), Buffer.from([0])]));
    this.raw(Buffer.concat([...parts, Buffer.from([0])]));
  }

  async handshake(o: HandshakeOptions = {}): Promise<void> {
    const version = o.version ?? 32;
    if (!o.readOnly) {
      this.w.i32(version);
      this.w.flush();
    }
    if (o.versionOnly) return;
    const server = await this.r.readI32();
    this.protocol = Math.min(server, version);
    this.r.protocol = this.w.protocol = this.protocol;
    const args = this.spec.args;
    if (this.protocol >= 30) this.compatFlags = await this.r.readVarint();
    const negotiating = this.protocol >= 30 && (this.compatFlags & 0x80) !== 0;
    const explicitChecksum = args.some((a) => a.startsWith('--checksum-choice') || a.startsWith('--cc'));
    const wantCompress = hasShortLetter(args, 'z') || args.some((a) => a === '--compress' || a.startsWith('--compress-choice') || a.startsWith('--zc'));
    const explicitCompress = args.some((a) => a.startsWith('--compress-choice') || a.startsWith('--zc') || a === '--new-compress' || a === '--old-compress');
    const ourChecksums = o.checksums ?? 'xxh128 xxh3 xxh64 md5 md4 sha1';
    const ourCompress = o.compressions ?? 'zstd lz4 zlibx zlib';
    let xfer: ChecksumName = this.protocol >= 30 ? 'md5' : 'md4';
    if (negotiating && !explicitChecksum) {
      if (!o.readOnly) {
        this.w.vstring(Buffer.from(ourChecksums, 'latin1'));
        if (wantCompress && !explicitCompress) this.w.vstring(Buffer.from(ourCompress, 'latin1'));
        this.w.flush();
      }
      const theirs = (await this.r.readVstring(255)).toString('latin1').split(' ');
      xfer = pick(ourChecksums, theirs, canonicalChecksumName, SUPPORTED_CHECKSUMS) ?? 'md5';
      if (wantCompress && !explicitCompress) {
        const theirC = (await this.r.readVstring(255)).toString('latin1').split(' ');
        this.compress = pick(ourCompress, theirC, canonicalCompressName, SUPPORTED_COMPRESSIONS) ?? 'none';
      }
    } else if (wantCompress) {
      this.compress = 'zlib';
    }
    const choice = this.opts.compressChoice;
    if (choice) this.compress = (canonicalCompressName(choice) ?? 'none') as CompressName;
    if (this.opts.checksumChoice) xfer = (canonicalChecksumName(this.opts.checksumChoice.split(',')[0]) ?? xfer) as ChecksumName;
    this.seed = await this.r.readI32();
    const negotiated: Negotiated = {
      xferName: xfer,
      fileName: xfer,
      negotiatedChecksum: negotiating || !!this.opts.checksumChoice,
      compress: this.compress,
      compressLevel: undefined,
    };
    const sums = checksumSpecs(negotiated, this.protocol, this.seed, this.compatFlags);
    this.xferSum = sums.xfer;
    this.fileSum = sums.file;
    this.r.setMultiplexed(true);
    this.w.setMultiplexed(this.protocol >= 30);
  }

  get incRecurse(): boolean {
    return (this.compatFlags & 0x01) !== 0;
  }

  get digestLen(): number {
    return digestLength(this.xferSum.name);
  }

  /** The file-list dialect of this session (overrides for lying on purpose). */
  flistOptions(over: Partial<FlistOptions> = {}): FlistOptions {
    const o = this.opts;
    return {
      protocol: this.protocol,
      varintFlags: (this.compatFlags & 0x80) !== 0,
      safeFlist: (this.compatFlags & 0x08) !== 0 || this.protocol >= 31,
      incRecurse: this.incRecurse,
      id0Names: (this.compatFlags & 0x100) !== 0,
      links: o.links,
      owner: o.owner,
      group: o.group,
      devices: o.devices,
      specials: o.specials,
      hardLinks: o.hardLinks > 0,
      atimes: o.atimes > 0,
      crtimes: o.crtimes,
      numericIds: o.numericIds,
      checksumLength: o.checksum ? digestLength(this.fileSum.name) : 0,
      relative: o.relative,
      ...over,
    };
  }

  // ---- push: we are the sender ----------------------------------------------------------------

  sendFilters(rules: string[] = []): void {
    for (const text of rules) {
      const b = Buffer.from(text, 'latin1');
      this.w.i32(b.length);
      this.w.bytes(b);
    }
    this.w.i32(0);
  }

  /** Entries sent so far by sorted ndx (what the server's requests refer to). */
  readonly byNdx = new Map<number, FileEntry>();
  /** Incremental recursion: directories in dir-list order (NDX_FLIST_OFFSET - d names dirs[d]). */
  readonly dirs: FileEntry[] = [];
  private nextListStart = -1;
  listsSent = 0;

  /**
   * One list (the first list, or an inc-recursion sub-list: pass dirIndex to write its
   * NDX_FLIST_OFFSET - d first) with its end marker. Arrival indexes are assigned here.
   */
  sendList(entries: FileEntry[], o: { over?: Partial<FlistOptions>; ioError?: number; end?: boolean; dirIndex?: number } = {}): void {
    this.flistWriter ??= new FlistWriter(this.flistOptions(o.over));
    if (this.nextListStart < 0) this.nextListStart = this.incRecurse ? 1 : 0;
    const start = this.nextListStart;
    if (o.dirIndex !== undefined) this.w.ndx(NDX_FLIST_OFFSET - o.dirIndex);
    entries.forEach((e, i) => {
      e.arrival = start + i;
    });
    for (const e of entries) this.flistWriter.writeEntry(this.w, e);
    if (o.end !== false) this.flistWriter.writeEnd(this.w, o.ioError ?? 0);
    const sorted = sortFileList(entries.map((e) => ({ ...e })), this.protocol, start);
    for (const e of sorted) {
      if (e.inactive) continue;
      this.byNdx.set(e.ndx, e);
      if (this.incRecurse && (e.mode & 0o170000) === 0o040000) this.dirs.push(e);
    }
    this.nextListStart = start + entries.length + (this.incRecurse ? 1 : 0);
    this.listsSent++;
  }

  /** After a non-incremental first list: id lists (empty) and, below protocol 30, the io_error int. */
  sendListTrailer(ioError = 0): void {
    if (this.incRecurse) return;
    if ((this.opts.owner || this.opts.group) && !this.opts.numericIds) {
      this.flistWriter!.writeIdLists(this.w, new Map(), new Map());
    }
    if (this.protocol < 30) this.w.i32(ioError);
  }

  /** The first list + trailer + (inc-recursion) NDX_FLIST_EOF: a complete, simple push list. */
  sendWholeList(entries: FileEntry[], o: { over?: Partial<FlistOptions>; flistEof?: boolean } = {}): void {
    this.sendList(entries, { over: o.over });
    this.sendListTrailer();
    if (this.incRecurse && o.flistEof !== false) this.w.ndx(NDX_FLIST_EOF);
    this.w.flush();
  }

  /** Reads the next record the server's generator writes: a request, NDX_DONE or del-stats. */
  async nextRequest(): Promise<Request> {
    const r = this.r;
    for (;;) {
      const ndx = await r.readNdx();
      if (ndx === NDX_DONE) return { kind: 'done' };
      if (ndx === NDX_DEL_STATS) {
        for (let i = 0; i < 5; i++) await r.readVarint();
        continue;
      }
      const iflags = this.protocol >= 29 ? await r.readU16() : ITEM.TRANSFER;
      if (iflags & ITEM.BASIS_TYPE_FOLLOWS) await r.readU8();
      const xname = iflags & ITEM.XNAME_FOLLOWS ? (await r.readVstring(4095)).toString('latin1') : undefined;
      if (!(iflags & ITEM.TRANSFER) || this.opts.dryRun) return { kind: 'item', ndx, iflags, xname };
      const head = await readSumHead(r);
      const sums = await r.readBytes(head.count * (4 + head.s2length));
      return { kind: 'transfer', ndx, iflags, head, sums: Buffer.from(sums) };
    }
  }

  /** Writes a whole-file literal reply for a transfer request. */
  replyLiteral(req: TransferRequest, data: Buffer): void {
    this.w.ndx(req.ndx);
    if (this.protocol >= 29) this.w.u16(req.iflags);
    writeSumHead(this.w, req.head);
    const enc = this.tokenEncoder();
    enc.beginFile();
    if (data.length) enc.literal(data);
    enc.endFile();
    const h = createTransferHasher(this.xferSum);
    h.update(data);
    this.w.bytes(h.digest());
  }

  private encoder: TokenEncoder | undefined;

  /** One token encoder per session (zstd keeps its stream across files, as the real client does). */
  tokenEncoder(): TokenEncoder {
    this.encoder ??= createTokenEncoder(this.w, this.compress, undefined, this.protocol);
    return this.encoder;
  }

  /** Echo header of a reply (for hand-written token streams). */
  replyHeader(req: TransferRequest, head: SumHead = req.head): void {
    this.w.ndx(req.ndx);
    if (this.protocol >= 29) this.w.u16(req.iflags);
    writeSumHead(this.w, head);
  }

  /** The whole-file digest of `data` as this session computes it. */
  digest(data: Buffer): Buffer {
    const h = createTransferHasher(this.xferSum);
    h.update(data);
    return h.digest();
  }

  /**
   * Acts as a well-behaved sender until the transfer ends: answers each transfer request with
   * `content(ndx)` as literal data (or the test's `reply`), follows the NDX_DONE choreography
   * (one echo per finished list with inc-recursion) and the final goodbye.
   */
  async serveRequests(
    content: (name: string, ndx: number) => Buffer | undefined = () => undefined,
    o: { reply?: (req: TransferRequest) => boolean } = {},
  ): Promise<void> {
    const maxPhase = this.protocol >= 29 ? 2 : 1;
    let phase = 0;
    let lists = this.incRecurse ? this.listsSent : 0;
    for (;;) {
      const req = await this.nextRequest();
      if (req.kind === 'done') {
        if (lists > 0 && --lists > 0) {
          this.w.ndx(NDX_DONE);
          this.w.flush();
          continue;
        }
        if (++phase > maxPhase) break;
        this.w.ndx(NDX_DONE);
        this.w.flush();
        continue;
      }
      if (req.kind === 'item') continue;
      if (o.reply?.(req)) {
        this.w.flush();
        continue;
      }
      const e = this.byNdx.get(req.ndx);
      this.replyLiteral(req, content(e?.name ?? '', req.ndx) ?? Buffer.alloc(e?.size ?? 0, 0x61));
      this.w.flush();
    }
    this.w.ndx(NDX_DONE);
    this.w.flush();
    // Goodbye: 27/28 read one int; 29/30 one ndx; >= 31 ndx, echo, ndx.
    const g = await this.nextRequest();
    if (g.kind === 'done' && this.protocol >= 31) {
      this.w.ndx(NDX_DONE);
      this.w.flush();
      await this.nextRequest();
    }
  }

  // ---- pull: we are the receiver --------------------------------------------------------------

  /** Reads the server's (non-incremental) file list; returns sorted entries (ndx order). */
  async readFileList(): Promise<FileEntry[]> {
    const fr = new FlistReader(this.flistOptions());
    const { entries } = await fr.readList(this.r, 0, () => undefined);
    if (this.incRecurse) await this.r.readNdx(); // NDX_FLIST_EOF
    else if ((this.opts.owner || this.opts.group) && !this.opts.numericIds) await fr.readIdLists(this.r);
    if (this.protocol < 30) await this.r.readI32();
    return sortFileList(entries, this.protocol, 0);
  }

  /** A transfer request with a hand-made sum head and raw sum bytes. */
  request(ndx: number, head: SumHead, sums: Buffer = Buffer.alloc(0), iflags: number = ITEM.TRANSFER): void {
    this.w.ndx(ndx);
    if (this.protocol >= 29) this.w.u16(iflags);
    writeSumHead(this.w, head);
    this.w.bytes(sums);
  }

  /** Reads the sender's reply to one transfer request (uncompressed token stream). */
  async readFileReply(): Promise<{ ndx: number; iflags: number; head: SumHead; literal: Buffer; matches: number[] }> {
    const r = this.r;
    const ndx = await r.readNdx();
    const iflags = this.protocol >= 29 ? await r.readU16() : ITEM.TRANSFER;
    if (iflags & ITEM.BASIS_TYPE_FOLLOWS) await r.readU8();
    if (iflags & ITEM.XNAME_FOLLOWS) await r.readVstring(4095);
    const head = await readSumHead(r);
    const parts: Buffer[] = [];
    const matches: number[] = [];
    for (;;) {
      const n = await r.readI32();
      if (n === 0) break;
      if (n < 0) matches.push(-(n + 1));
      else parts.push(Buffer.from(await r.readBytes(n)));
    }
    await r.readBytes(this.digestLen);
    return { ndx, iflags, head, literal: Buffer.concat(parts), matches };
  }

  /**
   * The receiving client's end of a pull: NDX_DONE per phase (reading the sender's echoes), the
   * sender's final NDX_DONE and stats, then the goodbye.
   */
  async finishPull(): Promise<void> {
    const w = this.w;
    const r = this.r;
    const maxPhase = this.protocol >= 29 ? 2 : 1;
    for (let phase = 1; phase <= maxPhase; phase++) {
      w.ndx(NDX_DONE);
      w.flush();
      const e = await r.readNdx();
      if (e !== NDX_DONE) throw new Error(`expected NDX_DONE echo, got ${e}`);
    }
    w.ndx(NDX_DONE);
    w.flush();
    if ((await r.readNdx()) !== NDX_DONE) throw new Error('expected the final NDX_DONE');
    if (this.protocol < 29) for (let i = 0; i < 3; i++) await r.readLongint();
    else for (let i = 0; i < 5; i++) await r.readVarlong30(3);
    if (this.protocol < 29) {
      w.i32(-1);
      w.flush();
      return;
    }
    w.ndx(NDX_DONE);
    w.flush();
    if (this.protocol >= 31) {
      await r.readNdx();
      w.ndx(NDX_DONE);
      w.flush();
    }
  }

  // ---- the end ---------------------------------------------------------------------------------

  /**
   * Lets the server finish: reads (and discards) its output, collecting messages, until it exits,
   * its output ends or it sends MSG_ERROR_EXIT; then closes our side (as a real client does)
   * and waits for the exit. `closeAfterMs`: close our side after this long even if the server
   * is still waiting for input (default: only at the deadline).
   */
  async finish(o: { deadlineMs?: number; closeNow?: boolean; closeAfterMs?: number } = {}): Promise<Outcome> {
    const deadline = Date.now() + (o.deadlineMs ?? 8000);
    if (o.closeNow) this.end();
    const drained = this.drainOutput();
    const closeTimer = setTimeout(() => this.end(), o.closeAfterMs ?? Math.max(0, deadline - Date.now() - 1500));
    const first = await raceTimeout([drained.then(() => 'drained' as const), this.finished.then(() => 'exit' as const)], Math.max(0, deadline - Date.now()), 'timeout' as const);
    void first;
    clearTimeout(closeTimer);
    this.end();
    let hung = false;
    const res = await raceTimeout([this.finished], Math.max(500, deadline - Date.now()), null);
    let exit = res;
    if (!exit) {
      hung = true;
      this.child?.kill('SIGKILL');
      exit = await raceTimeout([this.finished], 2000, { exitCode: null, signal: 'abandoned', crashed: false });
    }
    await raceTimeout([drained], 300, undefined);
    if (this.memTimer) clearInterval(this.memTimer);
    if (this.logFile) {
      try {
        for (const line of readFileSync(this.logFile, 'latin1').split('\n')) if (line) this.logRecords.push(JSON.parse(line));
      } catch {
        // no log
      }
      rmSync(join(this.logFile, '..'), { recursive: true, force: true });
    }
    const internalErrors = this.logRecords.filter((rec) => typeof rec.stack === 'string').map((rec) => String(rec.stack));
    const stackInStderr = /\n\s+at .+\(.+:\d+:\d+\)/.test(this.stderrText) || /CRASH:/.test(this.stderrText);
    const errors = this.messages.filter((m) => m.tag !== MsgTag.INFO && m.tag !== MsgTag.DELETED).map((m) => m.text);
    return {
      exitCode: exit.exitCode,
      signal: exit.signal,
      hung: hung || exit.signal === 'SIGKILL',
      crashed: exit.crashed || stackInStderr || (exit.signal !== null && !hung),
      stderr: this.stderrText,
      messages: this.messages,
      errorExit: this.errorExit,
      errorText: [...errors, this.stderrText].join('\n'),
      internalErrors,
      peakKb: this.mode === 'spawn' ? this.peakKb : undefined,
      ms: Date.now() - this.started,
    };
  }

  /**
   * Reads the server's output to its end, dispatching messages (so MSG_ERROR_EXIT is seen while
   * a flood is still being written). Start it before flooding; never throws.
   */
  private drainPromise: Promise<void> | undefined;
  drainOutput(): Promise<void> {
    this.drainPromise ??= (async () => {
      try {
        for (;;) {
          if (this.errorExit !== undefined) {
            this.end();
          }
          await this.r.readSome(1 << 20);
        }
      } catch (err) {
        if (!(err instanceof UnexpectedEofError)) {
          // Garbage after an abort (or a frame we do not parse): note it and stop.
          this.messages.push({ tag: -1, text: `client could not parse server output: ${(err as Error).message}` });
        }
      }
    })();
    return this.drainPromise;
  }

  get serverOutputEnded(): boolean {
    return this.outputEof;
  }
}

export type TransferRequest = { kind: 'transfer'; ndx: number; iflags: number; head: SumHead; sums: Buffer };
export type Request = { kind: 'done' } | { kind: 'item'; ndx: number; iflags: number; xname?: string } | TransferRequest;

function pick<T extends string>(ours: string, theirs: string[], canon: (n: string) => T | undefined, supported: readonly T[]): T | undefined {
  for (const n of ours.split(' ')) {
    const c = canon(n);
    if (c && supported.includes(c) && theirs.some((t) => canon(t) === c)) return c;
  }
  return undefined;
}

function safeParse(args: string[]): ServerOptions {
  try {
    return parseServerArgs(['rsync', ...args]);
  } catch {
    return parseServerArgs(['rsync', '--server', '.', '.']);
  }
}

/** Promise.race with a timeout whose timer is cleared as soon as the race is decided. */
async function raceTimeout<T, U>(ps: Array<Promise<T>>, ms: number, onTimeout: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<U>((r) => {
    timer = setTimeout(() => r(onTimeout), ms);
  });
  try {
    return await Promise.race([...ps, t]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- file-list entries ---------------------------------------------------------------------------

let arrivalCounter = 0;
const MTIME = 1_700_000_000;

function base(name: string, mode: number, extra: Partial<FileEntry>): FileEntry {
  return { name, mode, size: 0, mtime: MTIME, mtimeNsec: 0, uid: 0, gid: 0, rdevMajor: 0, rdevMinor: 0, xflags: 0, ndx: 0, arrival: arrivalCounter++, ...extra };
}

export function fileEntry(name: string, size = 0, extra: Partial<FileEntry> = {}): FileEntry {
  return base(name, 0o100644, { size, ...extra });
}

export function dirEntry(name: string, extra: Partial<FileEntry> = {}): FileEntry {
  return base(name, 0o040755, { size: 4096, ...extra });
}

export function linkEntry(name: string, target: string, extra: Partial<FileEntry> = {}): FileEntry {
  return base(name, 0o120777, { size: target.length, linkTarget: target, ...extra });
}


// ---- file-system snapshots ------------------------------------------------------------------------

/** rsync temp files (`.name.XXXXXX`) or atomic-create leftovers anywhere under dir. */
export function leftoverTemps(dir: string): string[] {
  const out: string[] = [];
  for (const [k, v] of snapshotTreeSync(dir).entries) {
    const baseName = k.split('/').pop() ?? '';
    if (v.type !== 'dir' && /^\..+\.[A-Za-z0-9]{6,}$/.test(baseName)) out.push(k);
  }
  return out;
}

/**
 * A scratch area: `<top>/root` (the grant root) and `<top>/outside` (a sibling with content that
 * no session may touch), plus a snapshot of outside taken at creation.
 */
export interface Arena {
  top: string;
  root: string;
  outside: string;
  /** Differences in `outside` since creation. */
  outsideChanges(): string[];
  cleanup(): void;
}

export function arena(prefix = 'hostile-'): Arena {
  const top = mkdtempSync(join(tmpdir(), prefix));
  const root = join(top, 'root');
  const outside = join(top, 'outside');
  mkdirSync(root);
  mkdirSync(join(outside, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'secret'), 'TOP-SECRET-CONTENT\n');
  writeFileSync(join(outside, 'x'), 'outside x\n');
  writeFileSync(join(outside, 'sub', 'f'), 'outside sub f\n');
  writeFileSync(join(outside, 'passwd'), 'root:x:0:0:outside passwd\n');
  const before = snapshotTreeSync(outside);
  return {
    top,
    root,
    outside,
    outsideChanges: () => treeChangeLines(before, snapshotTreeSync(outside)),
    cleanup: () => rmSync(top, { recursive: true, force: true }),
  };
}

export { ProtocolWriter, ProtocolReader };
