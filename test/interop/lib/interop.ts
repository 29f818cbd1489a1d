/**
 * Interop harness: run the real `rsync` client against rrsyncd (push or pull), run the same command
 * against a stock `rsync --server` (the reference), then compare the two destination trees (names,
 * types, modes, sizes, content, symlink targets, hard-link groups, mtimes), exit codes, itemized
 * changes, client-visible messages and selected --stats lines.
 *
 *   const tr = await engineTransport(t);                 // once per file
 *   t.test('x', async (t) => {
 *     const c = await newCase(t, tr, 'push', standardTree());
 *     await c.seedDst([file('old.txt', 'x')]);            // optional existing destination
 *     const r = await runAndCompare(t, c, ['-a', '-i']);  // asserts exit/itemize/messages/tree
 *   });
 *
 * The reference is stock rsync over a pipe remote shell (lib/real-rsh.sh), so it has the same roles,
 * delta transfer, itemize and stats semantics as a remote server; its trees are what a plain local
 * `rsync <args> src/ dst/` produces too (RRSYNCD_IT_REF=local uses that instead).
 *
 * Layout of a case dir (fresh temp dir, removed in teardown unless RRSYNCD_IT_KEEP=1):
 *   src/            the source tree as built (every entry gets a distinct past mtime with ns)
 *   root/           the grant root of the remote side (engine transport; the ssh transport uses
 *                   <server root>/<prefix>)
 *     src/          pull: copy of src/ the server sends from
 *     dst/          push: where the server writes
 *   dst/            pull: where the client writes
 *   l/src, l/dst    the reference run's source and destination (run with cwd l/)
 * Source copies (l/src and, for pulls, root/src) are refreshed from src/ with `cp -a` before each run.
 *
 * Env: RRSYNCD_IT_TRANSPORT=pipe runs the engine through test/pipe/rsh.sh (a node process per run)
 * instead of in this process (engine-host.ts); RRSYNCD_IT_LOG=1 writes the server's debug log to
 * <case>/server.log (tail printed on a tree mismatch); RRSYNCD_IT_KEEP=1 keeps case dirs;
 * RRSYNCD_IT_MTIME_US=1 compares mtimes to the microsecond only; RRSYNCD_IT_CPU=1 reports CPU use.
 */
import { lutimes, mkdir, mkdtemp, rm, symlink, link, writeFile, chmod } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import type { Test } from 'tap';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { run, RSYNC, startServer, type RunResult } from '../../helpers/server.js';
import { compareTrees, snapshotTree, type CompareOptions, type TreeSnapshot } from '../../helpers/tree.js';
import { startEngineHost } from './engine-host.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
let native: any = null;
try {
  native = createRequire(import.meta.url)(join(REPO, 'native/index.cjs'));
} catch {
  native = null;
}

/**
 * Precision of the mtime comparison, in ns. Exact nanoseconds need the native addon (utimensat):
 * through libuv the sandbox can only set whole microseconds. RRSYNCD_IT_MTIME_US=1 forces µs.
 */
const MTIME_PRECISION_NS: bigint = native?.utimensat && !process.env.RRSYNCD_IT_MTIME_US ? 1n : 1000n;

export const PROTOCOLS = [27, 28, 29, 30, 31, 32] as const;
export const PIPE_RSH = join(REPO, 'test/pipe/rsh.sh');
/** Remote shell that runs the stock `rsync --server` locally: the reference every run is compared with. */
export const REAL_RSH = join(REPO, 'test/interop/lib/real-rsh.sh');
/** Wrapper slowing the server->client stream (lib/slow-rsh.sh), for changes made mid-transfer. */
export const SLOW_RSH = join(REPO, 'test/interop/lib/slow-rsh.sh');
/**
 * 'server' (default): the reference is the same command against a stock `rsync --server` over a pipe
 * remote shell (same roles, delta, itemize and stats as a real remote); 'local': a plain local copy
 * (`rsync <args> src/ dst/`).
 */
const REFERENCE: 'server' | 'local' = process.env.RRSYNCD_IT_REF === 'local' ? 'local' : 'server';

type Tap = Test;

// ---------------------------------------------------------------------------------------------
// Transports

export interface Transport {
  kind: 'engine' | 'pipe' | 'ssh';
  rsh: string;
  host: string;
  env: Record<string, string>;
  /** ssh: the server's fixed root (cases live in subdirs of it); otherwise per-case roots. */
  root?: string;
  /** ssh: the server's logs, for failure output. */
  logs?: () => string;
  sessions?: () => number;
}

/** The engine in this process (fast), or test/pipe/rsh.sh with RRSYNCD_IT_TRANSPORT=pipe. */
export async function engineTransport(t: Tap): Promise<Transport> {
  if (process.env.RRSYNCD_IT_TRANSPORT === 'pipe') return { kind: 'pipe', rsh: PIPE_RSH, host: 'x', env: {} };
  const host = await startEngineHost();
  t.teardown(() => host.close());
  if (process.env.RRSYNCD_IT_CPU) {
    t.teardown(() => {
      const u = process.cpuUsage();
      t.comment(`test process cpu: user ${(u.user / 1e6).toFixed(1)} s, sys ${(u.system / 1e6).toFixed(1)} s, sessions ${host.sessions}`);
    });
  }
  return { kind: 'engine', rsh: host.rsh, host: 'x', env: host.env, sessions: () => host.sessions };
}

/** A real rrsyncd behind ssh (test/helpers/server.ts). */
export async function sshTransport(t: Tap): Promise<Transport> {
  const srv = await startServer();
  t.teardown(() => srv.cleanup());
  return { kind: 'ssh', rsh: srv.rsh, host: 'test@127.0.0.1', env: {}, root: srv.root, logs: () => srv.logs() };
}

// ---------------------------------------------------------------------------------------------
// Tree building

export interface Mtime {
  sec: number;
  nsec?: number;
}

export interface Node {
  path: string | Buffer;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo';
  data?: string | Buffer;
  mode?: number;
  /** Default: a fixed past time with nanoseconds, distinct per node; null: leave the creation time. */
  mtime?: Mtime | null;
  /** symlink: link target; hardlink: path (relative to the tree) of the existing file. */
  target?: string | Buffer;
}

export const file = (path: string | Buffer, data: string | Buffer = '', extra: Partial<Node> = {}): Node => ({ path, type: 'file', data, ...extra });
export const dir = (path: string | Buffer, extra: Partial<Node> = {}): Node => ({ path, type: 'dir', ...extra });
export const slink = (path: string | Buffer, target: string | Buffer, extra: Partial<Node> = {}): Node => ({ path, type: 'symlink', target, ...extra });
export const hlink = (path: string | Buffer, existing: string | Buffer): Node => ({ path, type: 'hardlink', target: existing });

const bjoin = (a: string, b: string | Buffer): Buffer => Buffer.concat([Buffer.from(a), Buffer.from('/'), Buffer.isBuffer(b) ? b : Buffer.from(b)]);

export async function setTime(p: Buffer, m: Mtime): Promise<void> {
  const nsec = m.nsec ?? 0;
  if (native?.utimensat) {
    try {
      native.utimensat(-100 /* AT_FDCWD */, p, m.sec, nsec, m.sec, nsec);
      return;
    } catch {
      // fall through
    }
  }
  if (m.sec >= 0 && nsec % 1000 === 0) {
    await lutimes(p, m.sec + (nsec + 500) / 1e9, m.sec + (nsec + 500) / 1e9);
    return;
  }
  // exact ns or pre-1970: coreutils touch (string paths only)
  const d = m.sec < 0 && nsec > 0 ? `@-${-m.sec - 1}.${String(1e9 - nsec).padStart(9, '0')}` : `@${m.sec}.${String(nsec).padStart(9, '0')}`;
  const r = await run('touch', ['-h', '-d', d, p.toString('utf8')]);
  if (r.code !== 0) throw new Error(`touch ${d} ${p}: ${r.stderr}`);
}

/** Creates the nodes under `root` (parents created as needed), then applies explicit mtimes/modes. */
export async function buildTree(root: string, nodes: Node[]): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const n of nodes) {
    const p = bjoin(root, n.path);
    const parent = p.subarray(0, p.lastIndexOf(0x2f));
    await mkdir(parent, { recursive: true });
    switch (n.type) {
      case 'dir':
        await mkdir(p, { recursive: true });
        break;
      case 'file':
        await writeFile(p, n.data ?? '');
        break;
      case 'symlink':
        await symlink(Buffer.isBuffer(n.target) ? n.target : Buffer.from(n.target ?? ''), p);
        break;
      case 'hardlink':
        await link(bjoin(root, n.target!), p);
        break;
      case 'fifo': {
        const r = await run('mkfifo', [p.toString('utf8')]);
        if (r.code !== 0) throw new Error(r.stderr);
        break;
      }
    }
  }
  for (const n of nodes) if (n.mode !== undefined) await chmod(bjoin(root, n.path), n.mode);
  // Every node gets an old time unless told otherwise: a "now" time races with the creation time of
  // the copy (rsync leaves a time alone when the seconds already match). Deepest first, so that a
  // dir's time is set after its entries'.
  const listed = new Set(nodes.map((n) => Buffer.from(n.path).toString('latin1')));
  const implied: Node[] = [];
  for (const n of nodes) {
    const parts = Buffer.from(n.path).toString('latin1').split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!listed.has(d)) {
        listed.add(d);
        implied.push({ path: Buffer.from(d, 'latin1'), type: 'dir' });
      }
    }
  }
  const timed = [...nodes, ...implied]
    .map((n) => ({ n, m: n.mtime === undefined ? pastTime() : n.mtime }))
    .filter((x) => x.m !== null && x.n.type !== 'hardlink')
    .sort((a, b) => depth(b.n.path) - depth(a.n.path));
  for (const { n, m } of timed) await setTime(bjoin(root, n.path), m!);
  const rootTime = nodes.find((n) => Buffer.from(n.path).toString() === '.');
  if (!rootTime) await setTime(Buffer.from(root), pastTime());
}

let timeCounter = 0;
/** A distinct past time (2020-09 + n hours) with sub-microsecond digits. */
function pastTime(): Mtime {
  const n = ++timeCounter;
  return { sec: 1_600_000_000 + n * 3600 + (process.pid % 1000), nsec: (n * 987_654_321 + 123_456_789) % 1_000_000_000 };
}
const depth = (p: string | Buffer) => Buffer.from(p).filter((c) => c === 0x2f).length;

/** Deterministic pseudo-random bytes (xorshift), so data does not compress and is reproducible. */
export function noise(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE(x, i - (i + 4 > size ? i + 4 - size : 0));
  }
  return b;
}

/** Text that compresses well. */
export function text(lines: number, tag = 'line'): string {
  let s = '';
  for (let i = 0; i < lines; i++) s += `${tag} ${i} the quick brown fox jumps over the lazy dog ${i * 7919}\n`;
  return s;
}

/** A small tree with the usual kinds of entries (natural, nanosecond mtimes). */
export function standardTree(): Node[] {
  return [
    file('a.txt', 'hello\n'),
    file('exec.sh', '#!/bin/sh\necho hi\n', { mode: 0o755 }),
    file('ro.txt', 'read only\n', { mode: 0o444 }),
    file('empty', ''),
    dir('emptydir'),
    dir('private', { mode: 0o700 }),
    file('private/secret', 'shh\n', { mode: 0o600 }),
    file('d1/b.txt', text(50)),
    file('d1/noise.bin', noise(70_000, 7)),
    file('d1/d2/d3/deep.txt', 'deep\n'),
    slink('d1/rel-link', '../a.txt'),
    slink('abs-out-link', '/etc/passwd'),
    slink('dangling', 'does/not/exist'),
    slink('up-out-link', '../../outside'),
    file('sub dir/with space.txt', 'spaces\n'),
  ];
}

/** Names that trip quoting, globbing, option parsing and encoding. */
export function oddNamesTree(): Node[] {
  return [
    file('with space', '1\n'),
    file('  leading spaces', '2\n'),
    file('-leading-dash', '3\n'),
    file('--double-dash', '4\n'),
    file('star*', '5\n'),
    file('question?', '6\n'),
    file('[brackets]', '7\n'),
    file('back\\slash', '8\n'),
    file("quote'single", '9\n'),
    file('quote"double', '10\n'),
    file('dollar$HOME', '11\n'),
    file('semi;colon&amp|pipe', '12\n'),
    file('new\nline', '13\n'),
    file('tab\there', '14\n'),
    file('unicode-ñandú-日本語-🎉', '15\n'),
    file(Buffer.from([0x6c, 0x61, 0x74, 0x69, 0x6e, 0x31, 0x2d, 0xe9, 0xff]), 'latin1 bytes\n'),
    dir('dir with space/-dash dir'),
    file('dir with space/-dash dir/*', 'glob star file\n'),
    slink('link?[x]', 'star*'),
    file('.hidden', 'h\n'),
  ];
}

// ---------------------------------------------------------------------------------------------
// Cases

export type Direction = 'push' | 'pull';

export interface RunOpts {
  /** Source args relative to the source side's base (push: case dir; pull: remote root). Default ['src/']. */
  srcs?: string[];
  /** Destination arg (push: remote path; pull: local path); null = none (list-only pull). Default 'dst/'. */
  dst?: string | null;
  /** Partial Grant for the remote side (engine transports only). */
  grant?: object;
  /** Extra args only for the remote run / only for the local run. */
  remoteOnly?: string[];
  localOnly?: string[];
  /** Skip the local reference run. */
  noLocal?: boolean;
  /** Don't refresh the source copies from src/ before running. */
  keepSources?: boolean;
  /** Words put in front of the remote shell command (both runs), e.g. [SLOW_RSH]. */
  rshWrap?: string[];
  timeoutMs?: number;
}

export interface Runs {
  remote: RunResult;
  local: RunResult;
  remoteArgs: string[];
  localArgs: string[];
}

export interface TreeCompareOpts extends CompareOptions {
  /** Compare mtimes to this many ns (default MTIME_PRECISION_NS). */
  mtimePrecisionNs?: bigint;
  /** Skip the root's mtime (when "." is not part of the transfer, the dir just gets created). */
  ignoreRootMtime?: boolean;
}

let caseCounter = 0;

export class Case {
  readonly src: string;
  readonly localBase: string;
  readonly localSrc: string;
  readonly remoteRoot: string;
  /** Prefix of remote paths (ssh transport: the case's subdir of the server root). */
  readonly prefix: string;
  readonly log?: string;

  constructor(
    readonly dir: string,
    readonly tr: Transport,
    readonly direction: Direction,
  ) {
    this.src = join(dir, 'src');
    this.localBase = join(dir, 'l');
    this.localSrc = join(dir, 'l', 'src');
    if (tr.root) {
      this.prefix = `c${process.pid}-${++caseCounter}/`;
      this.remoteRoot = join(tr.root, this.prefix);
    } else {
      this.prefix = '';
      this.remoteRoot = join(dir, 'root');
    }
    if (process.env.RRSYNCD_IT_LOG) this.log = join(dir, 'server.log');
  }

  /** The source tree the remote side uses: push = the client's src/, pull = the server's copy. */
  get remoteSrc(): string {
    return this.direction === 'push' ? this.src : join(this.remoteRoot, 'src');
  }
  /** Where the rrsyncd run writes `rel` (default the dst dir). */
  remoteDst(rel = 'dst'): string {
    return this.direction === 'push' ? join(this.remoteRoot, rel) : join(this.dir, rel);
  }
  localDst(rel = 'dst'): string {
    return join(this.localBase, rel);
  }

  /** Builds the same tree at the remote-run destination and the local-run destination. */
  async seedDst(nodes: Node[], rel = 'dst'): Promise<void> {
    const tmp = join(this.dir, 'seed');
    await rm(tmp, { recursive: true, force: true });
    await buildTree(tmp, nodes);
    for (const d of [this.remoteDst(rel), this.localDst(rel)]) {
      await rm(d, { recursive: true, force: true });
      await cpA(tmp, d);
    }
    await rm(tmp, { recursive: true, force: true });
  }

  async syncSources(): Promise<void> {
    const copies = [this.localSrc];
    if (this.direction === 'pull') copies.push(this.remoteSrc);
    for (const d of copies) {
      await rm(d, { recursive: true, force: true });
      await cpA(this.src, d);
    }
  }

  remoteArgs(args: string[], o: RunOpts = {}): string[] {
    const srcs = o.srcs ?? ['src/'];
    const dst = o.dst === undefined ? 'dst/' : o.dst;
    const h = `${this.tr.host}:`;
    const extra = o.remoteOnly ?? [];
    const rsh = [...(o.rshWrap ?? []), this.tr.rsh].join(' ');
    if (this.direction === 'push') return [...args, ...extra, '-e', rsh, ...srcs, `${h}${this.prefix}${dst}`];
    return [...args, ...extra, '-e', rsh, ...srcs.map((s) => `${h}${this.prefix}${s}`), ...(dst === null ? [] : [dst])];
  }

  localArgs(args: string[], o: RunOpts = {}): string[] {
    const srcs = o.srcs ?? ['src/'];
    const dst = o.dst === undefined ? 'dst/' : o.dst;
    const extra = o.localOnly ?? [];
    if (REFERENCE === 'local') return [...args, ...extra, ...srcs, ...(dst === null ? [] : [dst])];
    const rsh = [...(o.rshWrap ?? []), REAL_RSH].join(' ');
    if (this.direction === 'push') return [...args, ...extra, '-e', rsh, ...srcs, `x:${dst}`];
    return [...args, ...extra, '-e', rsh, ...srcs.map((s) => `x:${s}`), ...(dst === null ? [] : [dst])];
  }

  /**
   * Writes a source file (relative to src/) with a distinct past mtime (or `mtime`), and gives its
   * dir a fresh past mtime too (a "now" dir time would race with the copies' creation times).
   */
  async write(rel: string, data: string | Buffer, mtime: Mtime | null = pastTime()): Promise<void> {
    const p = join(this.src, rel);
    await mkdir(join(p, '..'), { recursive: true });
    await writeFile(p, data);
    if (mtime) await setTime(Buffer.from(p), mtime);
    await this.retime(join(rel, '..'));
  }

  /** Hard-links src/`existing` to src/`rel`. */
  async link(existing: string, rel: string): Promise<void> {
    await link(join(this.src, existing), join(this.src, rel));
    await this.retime(join(rel, '..'));
  }

  /** Removes src/`rel` (recursively). */
  async remove(rel: string): Promise<void> {
    await rm(join(this.src, rel), { recursive: true, force: true });
    await this.retime(join(rel, '..'));
  }

  /** Gives src/`relDir` a fresh past mtime. */
  async retime(relDir: string): Promise<void> {
    await setTime(Buffer.from(join(this.src, relDir)), pastTime());
  }

  /** Runs only the rrsyncd side. */
  async runRemote(args: string[], o: RunOpts = {}): Promise<RunResult & { args: string[] }> {
    if (!o.keepSources) await this.syncSources();
    const remoteArgs = this.remoteArgs(args, o);
    // NODE_OPTIONS: tap's loader/inspector settings must not reach the remote-shell node process.
    const env: Record<string, string> = { ...this.tr.env, NODE_OPTIONS: '', RRSYNCD_TEST_ROOT: this.remoteRoot };
    if (o.grant) env.RRSYNCD_TEST_GRANT = JSON.stringify(o.grant);
    if (this.log) env.RRSYNCD_TEST_LOG = this.log;
    const r = await run(RSYNC, remoteArgs, { cwd: this.dir, env, timeoutMs: o.timeoutMs ?? 60_000 });
    return { ...r, args: remoteArgs };
  }

  /** Runs only the local reference. */
  async runLocal(args: string[], o: RunOpts = {}): Promise<RunResult & { args: string[] }> {
    if (!o.keepSources) await this.syncSources();
    const localArgs = this.localArgs(args, o);
    const r = await run(RSYNC, localArgs, { cwd: this.localBase, timeoutMs: o.timeoutMs ?? 60_000 });
    return { ...r, args: localArgs };
  }

  /** The rrsyncd run, then the local reference run of the same command. */
  async run(args: string[], o: RunOpts = {}): Promise<Runs> {
    await this.syncSources();
    const remote = await this.runRemote(args, { ...o, keepSources: true });
    const local = o.noLocal ? { code: 0, stdout: '', stderr: '', args: [] } : await this.runLocal(args, { ...o, keepSources: true });
    return { remote, local, remoteArgs: remote.args, localArgs: local.args };
  }

  describe(r: Runs): object {
    return {
      remoteArgs: r.remoteArgs.map((a) => a.replace(this.tr.rsh, 'RSH')).join(' '),
      referenceArgs: r.localArgs.map((a) => a.replace(REAL_RSH, 'REAL_RSH')).join(' '),
      remoteStdout: r.remote.stdout.slice(-3000),
      remoteStderr: r.remote.stderr.slice(-3000),
      localStdout: r.local.stdout.slice(-2000),
      localStderr: r.local.stderr.slice(-2000),
    };
  }

  sameExit(t: Tap, r: Runs, expected?: number): void {
    t.equal(r.remote.code, r.local.code, 'exit code matches the reference', this.describe(r));
    if (expected !== undefined) t.equal(r.remote.code, expected, `exit code is ${expected}`, this.describe(r));
  }

  /**
   * With `hardLinkPaths` (path -> name of its group), new members of hard-link groups are compared
   * as one "[hlink group of x]" line per group, whether they were sent (`>f+++++++++`) or linked
   * (`hf+++++++++ x => y`, `hf          x => y`): which member of a group carries the data is an
   * implementation choice (the reference picks the last one it sees and may re-link the others to
   * it; protocols < 29 show only the one that was sent). The trees are compared exactly anyway.
   */
  sameItemize(t: Tap, r: Runs, hardLinkPaths?: Map<string, string>): void {
    const norm = (lines: string[]) =>
      hardLinkPaths
        ? lines
            .map((l) => {
              const m = /^([>h])f[+? ]{9} (.*?)(?: => .*)?$/.exec(l);
              return m && hardLinkPaths.has(m[2]!) ? `[hlink group of ${hardLinkPaths.get(m[2]!)}]` : l;
            })
            .filter((l, i, a) => !l.startsWith('[hlink group') || a.indexOf(l) === i)
            .sort()
        : lines;
    const unprefix = (l: string) => (this.prefix && l.startsWith(`created directory ${this.prefix}`) ? `created directory ${l.slice(18 + this.prefix.length)}` : l);
    t.same(norm(itemized(r.remote.stdout).map(unprefix)), norm(itemized(r.local.stdout)), 'itemized changes match the reference', this.describe(r));
  }

  /**
   * Diagnostics (warnings, errors, info lines) the client printed, with case paths and rsync's
   * source locations removed: messages our server sends should read like the reference server's.
   */
  sameMessages(t: Tap, r: Runs): void {
    t.same(this.messages(r.remote), this.messages(r.local), 'client-visible messages match the reference', this.describe(r));
  }

  messages(res: RunResult): string[] {
    const roots = [join(this.localBase, '/'), join(this.remoteRoot, '/'), join(this.dir, '/'), this.prefix].filter((x) => x !== '');
    const out: string[] = [];
    for (let line of `${res.stdout}\n${res.stderr}`.split('\n')) {
      if (line === '' || ITEM_RE.test(line) || line.startsWith('*deleting ') || line.startsWith('created directory ')) continue;
      if (/^(Number of|Total |Literal data|Matched data|File list |sent \d|total size is|building file list|receiving |sending |\s*$)/.test(line)) continue;
      if (/^(drwx|-rw|lrwx|[-dlcbps][-rwxsStT]{9}\s)/.test(line)) continue;
      for (const root of roots) line = line.split(root).join('');
      line = line.replace(/ at [\w./-]+\(\d+\)/, '').replace(/ \[(sender|receiver|Receiver|generator|client|server)=[\d.a-z]+\]$/, '');
      out.push(line);
    }
    return out.sort();
  }

  /** Compares the remote run's tree `rel` with the local run's (dst by default). */
  async compare(t: Tap, opts: TreeCompareOpts = {}, rel = 'dst'): Promise<string[]> {
    return this.compareDirs(t, this.localDst(rel), this.remoteDst(rel), opts, `${rel} tree matches the reference`);
  }

  /** After a pull with --remove-source-files etc.: the server's source vs the local run's source. */
  async compareSources(t: Tap, opts: TreeCompareOpts = {}): Promise<string[]> {
    return this.compareDirs(t, this.localSrc, this.remoteSrc, opts, 'source tree after the run matches the reference');
  }

  async compareDirs(t: Tap, expected: string, actual: string, opts: TreeCompareOpts, msg: string): Promise<string[]> {
    const ea = existsSync(expected);
    const aa = existsSync(actual);
    if (!ea || !aa) {
      t.equal(aa, ea, `${msg}: existence of ${actual}`);
      return ea === aa ? [] : ['existence'];
    }
    const [a, b] = await Promise.all([snapshotTree(expected), snapshotTree(actual)]);
    const diffs = diffTrees(a, b, opts);
    t.same(diffs, [], msg, this.log && diffs.length ? { serverLog: tail(this.log) } : {});
    return diffs;
  }

  /** Snapshot of the remote run's destination. */
  snapshot(rel = 'dst'): Promise<TreeSnapshot> {
    return snapshotTree(this.remoteDst(rel));
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-40).join('\n');
  } catch {
    return '';
  }
}

async function cpA(from: string, to: string): Promise<void> {
  const r = await run('cp', ['-a', '--', from, to]);
  if (r.code !== 0) throw new Error(`cp -a ${from} ${to}: ${r.stderr}`);
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && (a < 0n) !== (b < 0n) ? q - 1n : q;
}

/** compareTrees with mtimes compared to MTIME_PRECISION_NS. */
function diffTrees(a: TreeSnapshot, b: TreeSnapshot, opts: TreeCompareOpts = {}): string[] {
  const diffs = compareTrees(a, b, { ...opts, ignoreMtimes: true });
  if (opts.ignoreMtimes) return diffs;
  const prec = opts.mtimeSecondsOnly ? 1_000_000_000n : (opts.mtimePrecisionNs ?? MTIME_PRECISION_NS);
  for (const [path, x] of a.entries) {
    const y = b.entries.get(path);
    if (!y || x.type !== y.type) continue;
    if (opts.exclude?.(path)) continue;
    if (path === '.' && (opts.ignoreRoot || opts.ignoreRootMtime)) continue;
    if ((x.type === 'dir' && opts.ignoreDirMtimes) || (x.type === 'symlink' && opts.ignoreSymlinkMtimes)) continue;
    if (floorDiv(x.mtimeNs, prec) !== floorDiv(y.mtimeNs, prec)) diffs.push(`${JSON.stringify(path)}: mtime ${x.mtimeNs} != ${y.mtimeNs} (ns)`);
  }
  return diffs;
}

// ---------------------------------------------------------------------------------------------
// Output parsing

const ITEM_RE = /^([<>ch.*])([fdLDS])([-+.?a-zA-Z ]{9}) (.*)$/;

/** Itemized lines (-i), with the direction char normalised (`<` sent / `>` received both → `>`), sorted. */
function itemized(stdout: string): string[] {
  const out: string[] = [];
  for (const line of stdout.split('\n')) {
    if (line.startsWith('created directory ')) {
      out.push(line);
      continue;
    }
    if (line.startsWith('*deleting ')) {
      out.push(line.replace(/ +/, ' '));
      continue;
    }
    const m = ITEM_RE.exec(line);
    if (!m) continue;
    const y = m[1] === '<' ? '>' : m[1];
    out.push(`${y}${m[2]}${m[3]} ${m[4]}`);
  }
  return out.sort();
}

/** `--stats` lines as a map: "Literal data" -> "0 bytes" etc. (numbers without thousands separators). */
export function stats(stdout: string): Record<string, string> {
  const s: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^(Number of [^:]+|Total [^:]+|Literal data|Matched data|File list [^:]+): (.*)$/.exec(line);
    if (m) s[m[1]!] = m[2]!.replace(/(\d),(?=\d)/g, '$1');
  }
  return s;
}

export function statNum(s: Record<string, string>, key: string): number {
  const v = s[key];
  if (v === undefined) return NaN;
  return Number(/^(\d+)/.exec(v)?.[1] ?? NaN);
}

/** Stats that must agree between a run against rrsyncd and the local reference run. */
const COMPARABLE_STATS = [
  'Number of files',
  'Number of created files',
  'Number of deleted files',
  'Number of regular files transferred',
  'Total file size',
  'Total transferred file size',
];

export function pickStats(s: Record<string, string>, keys = COMPARABLE_STATS): Record<string, string> {
  const o: Record<string, string> = {};
  for (const k of keys) if (s[k] !== undefined) o[k] = s[k]!;
  return o;
}

/**
 * `--list-only` lines as [perms, size, name] (date/time columns dropped).
 * Format: "drwxr-xr-x          4,096 2024/01/02 03:04:05 name".
 */
export function listing(stdout: string): string[] {
  const out: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^([-dlcbps][-rwxsStT]{9})\s+([\d,]+) \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (.*)$/.exec(line);
    if (m) out.push(`${m[1]} ${m[2]!.replace(/,/g, '')} ${m[3]}`);
  }
  return out;
}

export async function newCase(t: Tap, tr: Transport, direction: Direction, nodes: Node[] = standardTree()): Promise<Case> {
  const d = await mkdtemp(join(tmpdir(), `rrsyncd-it-${direction}-`));
  const c = new Case(d, tr, direction);
  t.teardown(async () => {
    if (process.env.RRSYNCD_IT_KEEP) {
      t.comment(`kept ${d}`);
      return;
    }
    await rm(d, { recursive: true, force: true });
    if (tr.root) await rm(c.remoteRoot, { recursive: true, force: true });
  });
  await mkdir(c.localBase, { recursive: true });
  await mkdir(c.remoteRoot, { recursive: true });
  await buildTree(c.src, nodes);
  return c;
}

/** Runs, then asserts exit code, itemize lines and the destination tree against the local run. */
export async function runAndCompare(
  t: Tap,
  c: Case,
  args: string[],
  o: RunOpts & { expectCode?: number; compare?: TreeCompareOpts; noMessages?: boolean } = {},
): Promise<Runs> {
  const r = await c.run(args, o);
  c.sameExit(t, r, o.expectCode);
  if (args.some((a) => a === '-i' || /^-[a-zA-Z]*i/.test(a) || a === '--itemize-changes')) {
    let hl: Map<string, string> | undefined;
    const rel = o.dst === null ? null : (o.dst ?? 'dst/').replace(/\/+$/, '');
    if (rel && args.some((a) => /^-[a-zA-Z]*H/.test(a) || a === '--hard-links') && existsSync(c.localDst(rel))) {
      hl = new Map((await snapshotTree(c.localDst(rel))).hardLinkGroups.flatMap((g) => g.map((p) => [p, g[0]!] as [string, string])));
    }
    c.sameItemize(t, r, hl);
  }
  if (!o.noMessages) c.sameMessages(t, r);
  const rel = o.dst === null ? null : (o.dst ?? 'dst/').replace(/\/+$/, '');
  if (rel) await c.compare(t, { ignoreRootMtime: o.srcs !== undefined, ...o.compare }, rel);
  return r;
}

;

/** Extra args for the reference so it uses the delta algorithm like a remote transfer (local copies default to -W). */
export const REF_DELTA: string[] = REFERENCE === 'local' ? ['--no-W'] : [];
