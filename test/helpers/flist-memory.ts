/**
 * Live heap cost of a file list without incremental recursion, built the way each role builds it:
 * the receiver decodes a list written by the project's own writer through its FileLists (reader,
 * sort, the list it keeps); the sender walks a real tree with its SenderWalker and writes the list
 * with its SendLists. Each returns what the session's budget was charged and the heap growth
 * after full collections while the list is still held (only numbers are returned, so one
 * measurement's list is garbage before the next starts). Needs `--expose-gc` (set here).
 * Used by test/unit/flist-memory.test.ts and bench/micro/flist-memory.bench.ts.
 */
import { linkSync, mkdirSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { CF } from '../../src/protocol/compat.js';
import { ProtocolReader } from '../../src/protocol/input.js';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { FlistWriter } from '../../src/protocol/flist/flist-writer.js';
import type { FileEntry } from '../../src/protocol/flist/entry.js';
import { MemoryBudget } from '../../src/engine/budget.js';
import { flistOptionsFor, type SessionContext } from '../../src/engine/context.js';
import { FileLists } from '../../src/engine/receiver/flists.js';
import type { ReceiverState } from '../../src/engine/receiver/state.js';
import type { DirFilters } from '../../src/engine/receiver/delete.js';
import { SenderWalker } from '../../src/engine/sender/walk.js';
import { SendLists } from '../../src/engine/sender/lists.js';
import { defaultServerOptions } from '../../src/policy/options.js';
import { defaultGrant } from '../../src/policy/grant.js';
import type { ServerOptions } from '../../src/policy/server-options.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Memory in use after full collections (twice: weak callbacks and finalizers run in between):
 * the JS heap plus buffer contents outside it.
 */
async function liveHeap(): Promise<number> {
  gc();
  // buffers' memory is freed by a background sweep after the collection that found them dead
  await new Promise((resolve) => setTimeout(resolve, 20));
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/** A budget that records what it was charged. */
class CountingBudget extends MemoryBudget {
  charged = 0;
  override charge(bytes: number, what: string): void {
    super.charge(bytes, what);
    this.charged += bytes;
  }
}

export interface Measured {
  entries: number;
  charged: number;
  /** Heap growth with the list held (after gc). */
  live: number;
}

/** What the entries between a smaller and a larger list cost (fixed costs of a run cancel out). */
export function marginal(small: Measured, large: Measured): Measured {
  return { entries: large.entries - small.entries, charged: large.charged - small.charged, live: large.live - small.live };
}

/** The i-th of n names: dNNN/sNN/file-NNNNNN.txt, 100 files per sub-directory (24-40 chars). */
function memoryTestName(i: number): string {
  const sub = Math.floor(i / 100);
  const pad = 'x'.repeat(i % 17);
  return `dir-${String(Math.floor(sub / 20)).padStart(3, '0')}/sub-${String(sub % 20).padStart(2, '0')}/file-${String(i).padStart(6, '0')}${pad}.txt`;
}

function dirsOf(n: number): string[] {
  const dirs = new Set<string>();
  for (let i = 0; i < n; i++) {
    const name = memoryTestName(i);
    const parts = name.split('/');
    dirs.add(parts[0]);
    dirs.add(`${parts[0]}/${parts[1]}`);
  }
  return [...dirs];
}

export interface Variant {
  protocol: number;
  hardLinks?: boolean;
  /** -o -g without --numeric-ids: names on the wire (id lists) */
  owner?: boolean;
  times?: boolean;
  checksum?: boolean;
  /** one file of 3 GiB and one mtime past 2038: size and mtime no longer fit a small integer */
  big?: boolean;
}

function serverOptions(v: Variant, sender: boolean): ServerOptions {
  const o = defaultServerOptions();
  o.sender = sender;
  o.recursive = true;
  o.links = true;
  o.owner = !!v.owner;
  o.group = !!v.owner;
  o.hardLinks = v.hardLinks ? 1 : 0;
  o.times = v.times !== false;
  o.perms = true;
  o.checksum = !!v.checksum;
  return o;
}

function fakeContext(opts: ServerOptions, protocol: number, extra: Partial<SessionContext>): SessionContext {
  return {
    protocol,
    compatFlags: protocol >= 30 ? CF.SAFE_FLIST | CF.VARINT_FLIST_FLAGS : 0,
    opts,
    fileSum: { name: 'md5', protocol, seed: 0, seedFix: true, negotiated: true },
    budget: new CountingBudget(Number.MAX_SAFE_INTEGER),
    ioError: 0,
    hadTransferError: false,
    log: pino({ level: 'silent' }),
    ...extra,
  } as SessionContext;
}

function entryFor(i: number, v: Variant, dir: boolean, name: string): FileEntry {
  return {
    name,
    mode: dir ? 0o40755 : 0o100644,
    size: dir ? 4096 : 1000 + i,
    mtime: 1_700_000_000 + (i % 5000),
    mtimeNsec: 0,
    uid: 1000,
    gid: 1000,
    rdevMajor: 0,
    rdevMinor: 0,
    xflags: 0,
    ndx: 0,
    arrival: 0,
    ...(v.hardLinks && !dir ? { dev: 1, ino: 10 + Math.floor(i / 2) } : {}),
    ...(v.checksum && !dir ? { checksum: Buffer.alloc(16, i) } : {}),
  };
}

/** The list as a sender writes it: '.', the directories, then n files. */
function listBytes(n: number, v: Variant, ctx: SessionContext): Buffer {
  const chunks: Buffer[] = [];
  const w = new ProtocolWriter({
    write(b: Buffer): boolean {
      chunks.push(Buffer.from(b));
      return true;
    },
    once(): void {},
  });
  w.protocol = v.protocol;
  const fw = new FlistWriter(flistOptionsFor(ctx));
  const entries = [entryFor(0, v, true, '.'), ...dirsOf(n).map((d) => entryFor(0, v, true, d))];
  for (let i = 0; i < n; i++) entries.push(entryFor(i, v, false, memoryTestName(i)));
  if (v.big) Object.assign(entries[entries.length - 1]!, { size: BIG_SIZE, mtime: BIG_MTIME });
  // as SendLists.prepareHardLinksWhole: members name the first member's arrival index
  const first = new Map<number, number>();
  entries.forEach((e, i) => {
    if (e.ino === undefined) return;
    e.hlinkGroup = first.get(e.ino) ?? i;
    if (!first.has(e.ino)) first.set(e.ino, i);
    if (v.protocol >= 30) e.dev = e.ino = undefined;
  });
  entries.forEach((e, i) => {
    e.arrival = i;
    fw.writeEntry(w, e);
  });
  fw.writeEnd(w, 0);
  if (v.owner) fw.writeIdLists(w, new Map([[1000, 'someuser']]), new Map([[1000, 'somegroup']]));
  if (v.protocol < 30) fw.writeTrailingIoError(w, 0);
  w.flush();
  return Buffer.concat(chunks);
}

/** The receiver's first list (no incremental recursion) of n files plus their directories. */
export async function measureReceiver(n: number, v: Variant): Promise<Measured> {
  const opts = serverOptions(v, false);
  const probe = fakeContext(opts, v.protocol, {});
  // held until the end, so it counts before and after alike
  const bytes = listBytes(n, v, probe);
  const src = new PassThrough({ highWaterMark: 64 * 1024 });
  const reader = new ProtocolReader(src);
  reader.setMultiplexed(false);
  reader.protocol = v.protocol;
  const ctx = fakeContext(opts, v.protocol, { reader });
  const state = { ctx, opts, protocol: v.protocol, inc: false, incomingChmod: null, filters: undefined, progress: { notify: () => undefined } };
  const before = await liveHeap();
  const lists = new FileLists(state as unknown as ReceiverState, {} as DirFilters);
  src.end(bytes);
  await lists.receiveFirst();
  const live = (await liveHeap()) - before;
  if (bytes.length === 0) throw new Error('no list');
  // the list is used after the measurement, so it was live then; nothing of it is returned
  return { entries: lists.open[0]!.entries.length, charged: (ctx.budget as CountingBudget).charged, live };
}

const BIG_SIZE = 3 * 2 ** 30;
const BIG_MTIME = 4_200_000_000;

/** A tree of n files (hard-linked in pairs with `hardLinks`) under `root`. */
export function makeMemoryTree(root: string, n: number, v: Variant): void {
  const hardLinks = !!v.hardLinks;
  for (const d of dirsOf(n)) mkdirSync(join(root, d), { recursive: true });
  for (let i = 0; i < n; i++) {
    const p = join(root, memoryTestName(i));
    if (hardLinks && i % 2 === 1) linkSync(join(root, memoryTestName(i - 1)), p);
    else writeFileSync(p, '');
  }
  if (v.big) {
    const p = join(root, memoryTestName(n - 1));
    truncateSync(p, BIG_SIZE);
    utimesSync(p, BIG_MTIME, BIG_MTIME);
  }
}

/** The sender's first list (no incremental recursion) of `args` in the tree under `root`, written out. */
export async function measureSender(root: string, v: Variant, args = ['.']): Promise<Measured> {
  const opts = serverOptions(v, true);
  opts.args = args;
  const sandbox = Sandbox.open(root);
  const writer = new ProtocolWriter({ write: () => true, once(): void {} });
  writer.protocol = v.protocol;
  const ctx = fakeContext(opts, v.protocol, { sandbox, grant: defaultGrant(root), writer });
  const before = await liveHeap();
  const walker = new SenderWalker(ctx, { inc: false, filters: undefined, setMergeDir: () => undefined });
  const lists = new SendLists(ctx, walker, false);
  const first = walker.buildFirstList(opts.args, null);
  lists.sendFirstList(first);
  const live = (await liveHeap()) - before;
  sandbox.close();
  if (lists.firstListLength !== first.length) throw new Error('the list was not kept');
  return { entries: first.length, charged: (ctx.budget as CountingBudget).charged, live };
}
