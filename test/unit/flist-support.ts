/**
 * Helpers for the file-list tests: stream extraction from the decoded captures, reader/writer
 * plumbing, and a session-level "read every list" loop (first list, inc-recursion sub-lists).
 */
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { ProtocolReader } from '../../src/protocol/input.js';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { NDX_FLIST_EOF, NDX_FLIST_OFFSET } from '../../src/protocol/ndx.js';
import { FlistReader } from '../../src/protocol/flist/flist-reader.js';
import { FlistWriter } from '../../src/protocol/flist/flist-writer.js';
import { sortFileList } from '../../src/protocol/flist/flist-sort.js';
import { isDir, type FileEntry, type FlistOptions } from '../../src/protocol/flist/entry.js';
import { CAPTURES } from '../helpers/captures.js';

;

/**
 * The data bytes of one direction of a capture: the raw remainder after the preamble, or the
 * concatenated MSG_DATA payloads of a multiplexed stream.
 */
export function captureStream(file: string, dir: 'c2s' | 's2c'): Buffer {
  const text = readFileSync(`${CAPTURES}/${file}`, 'latin1');
  let cur: 'c2s' | 's2c' | null = null;
  let collecting = false;
  const bytes: number[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('## client -> server') || line.startsWith('[c2s]')) cur = 'c2s';
    else if (line.startsWith('## server -> client') || line.startsWith('[s2c]')) cur = 's2c';
    const hex = /^\s+((?:[0-9a-f]{2} ?)+)\s*$/.exec(line);
    if (hex) {
      if (collecting && cur === dir) for (const h of hex[1].trim().split(' ')) bytes.push(parseInt(h, 16));
      continue;
    }
    collecting = /raw \(unmultiplexed\) remainder/.test(line) || /MSG_DATA len=/.test(line);
  }
  return Buffer.from(bytes);
}

/** Compat flags from the capture's s2c preamble (0 when none were written). */
export function captureCompatFlags(file: string): number {
  const m = /compat flags varint: 0x([0-9a-f]+)/.exec(readFileSync(`${CAPTURES}/${file}`, 'latin1'));
  return m ? parseInt(m[1], 16) : 0;
}

export function baseOptions(protocol: number, over: Partial<FlistOptions> = {}): FlistOptions {
  return {
    protocol,
    varintFlags: false,
    safeFlist: protocol >= 31,
    incRecurse: false,
    id0Names: false,
    links: true,
    owner: true,
    group: true,
    devices: true,
    specials: true,
    hardLinks: false,
    atimes: false,
    crtimes: false,
    numericIds: false,
    checksumLength: 0,
    relative: false,
    ...over,
  };
}

/** Options for a capture, from its compat flags (rsync's CF_* bits). */
export function optionsFromCompat(protocol: number, compat: number, over: Partial<FlistOptions> = {}): FlistOptions {
  return baseOptions(protocol, {
    incRecurse: (compat & 0x1) !== 0,
    safeFlist: (compat & 0x8) !== 0 || protocol >= 31,
    varintFlags: (compat & 0x80) !== 0,
    id0Names: (compat & 0x100) !== 0,
    ...over,
  });
}

export function readerFor(buf: Buffer, protocol: number): ProtocolReader {
  const src = new PassThrough();
  const r = new ProtocolReader(src);
  r.setMultiplexed(false);
  r.protocol = protocol;
  src.end(buf);
  return r;
}

/** A ProtocolWriter whose output is collected in memory (protocol defaults to the writer's). */
export function collectingWriter(protocol?: number): { w: ProtocolWriter; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const sink = {
    write(b: Buffer): boolean {
      chunks.push(Buffer.from(b));
      return true;
    },
    once(): void {},
  };
  const w = new ProtocolWriter(sink);
  if (protocol !== undefined) w.protocol = protocol;
  return {
    w,
    bytes: () => {
      w.flush();
      return Buffer.concat(chunks);
    },
  };
}

interface DecodedList {
  ndxStart: number;
  /** directory index (NDX_FLIST_OFFSET - ndx) that announced this sub-list; -1 for the first list */
  dirIndex: number;
  entries: FileEntry[];
  sorted: FileEntry[];
  ioError: number;
}

export interface DecodedSession {
  lists: DecodedList[];
  users?: Map<number, string>;
  groups?: Map<number, string>;
  trailingIoError?: number;
}

function idListsExpected(o: FlistOptions): boolean {
  return (o.owner || o.group) && !o.numericIds;
}

/** Reads the whole file-list part of a session the way a receiver would. */
export async function readSession(r: ProtocolReader, o: FlistOptions): Promise<DecodedSession> {
  const reader = new FlistReader(o);
  const byArrival = new Map<number, FileEntry>();
  const lookup = (n: number): FileEntry | undefined => byArrival.get(n);
  const session: DecodedSession = { lists: [] };
  const firstStart = o.incRecurse ? 1 : 0;
  const first = await reader.readList(r, firstStart, lookup, o.incRecurse ? '' : undefined);
  const addList = (ndxStart: number, dirIndex: number, res: { entries: FileEntry[]; ioError: number }): DecodedList => {
    for (const e of res.entries) byArrival.set(e.arrival, e);
    const sorted = sortFileList(res.entries, o.protocol, ndxStart);
    const l = { ndxStart, dirIndex, entries: res.entries, sorted, ioError: res.ioError };
    session.lists.push(l);
    return l;
  };
  let last = addList(firstStart, -1, first);
  if (!o.incRecurse) {
    if (idListsExpected(o)) {
      const ids = await reader.readIdLists(r);
      session.users = ids.users;
      session.groups = ids.groups;
    }
    if (o.protocol < 30) session.trailingIoError = await reader.readTrailingIoError(r);
    return session;
  }
  const dirs: FileEntry[] = last.sorted.filter((e) => isDir(e) && !e.inactive);
  const seen = new Set<number>();
  for (;;) {
    const ndx = await r.readNdx();
    if (ndx === NDX_FLIST_EOF) break;
    const dirIndex = NDX_FLIST_OFFSET - ndx;
    if (dirIndex < 0 || dirIndex >= dirs.length || seen.has(dirIndex)) throw new Error(`bad dir index ${dirIndex}`);
    seen.add(dirIndex);
    const start = last.ndxStart + last.entries.length + 1;
    const res = await reader.readList(r, start, lookup, dirs[dirIndex].name);
    last = addList(start, dirIndex, res);
    dirs.push(...last.sorted.filter((e) => isDir(e) && !e.inactive));
  }
  return session;
}

/** Writes a decoded session back the way a sender would. */
export function writeSession(session: DecodedSession, o: FlistOptions): Buffer {
  const { w, bytes } = collectingWriter(o.protocol);
  const writer = new FlistWriter(o);
  session.lists.forEach((l, i) => {
    if (i > 0) w.ndx(NDX_FLIST_OFFSET - l.dirIndex);
    for (const e of l.entries) writer.writeEntry(w, e);
    writer.writeEnd(w, l.ioError);
  });
  if (o.incRecurse) w.ndx(NDX_FLIST_EOF);
  else {
    if (idListsExpected(o)) writer.writeIdLists(w, session.users ?? new Map(), session.groups ?? new Map());
    if (o.protocol < 30) writer.writeTrailingIoError(w, session.trailingIoError ?? 0);
  }
  return bytes();
}

export function allEntries(s: DecodedSession): FileEntry[] {
  return s.lists.flatMap((l) => l.entries);
}
