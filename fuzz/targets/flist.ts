/**
 * The file list as a receiver reads it, in every dialect: protocol 27..32, one-byte/extended/
 * varint flags, incremental recursion (sub-lists announced by NDX_FLIST_OFFSET - dir), -H,
 * id lists, --checksum sums, times, devices, -R names, missing args.
 */
import { ProtocolError } from '../../src/protocol/errors.js';
import { FlistReader } from '../../src/protocol/flist/flist-reader.js';
import { FlistWriter } from '../../src/protocol/flist/flist-writer.js';
import { isDir, type FileEntry, type FlistOptions } from '../../src/protocol/flist/entry.js';
import { sortFileList } from '../../src/protocol/flist/flist-sort.js';
import { NDX_FLIST_EOF, NDX_FLIST_OFFSET } from '../../src/protocol/ndx.js';
import type { ProtocolReader } from '../../src/protocol/input.js';
import { knobs, protocolOf, readerOf, type Target } from '../harness.js';
import { collectingWriter } from '../../test/unit/flist-support.js';

/** Three knob bytes: protocol, then option bits. */
function flistOptionsOf(k: number[]): FlistOptions {
  const protocol = protocolOf(k[0]);
  const modern = protocol >= 30;
  const bit = (b: number, i: number): boolean => (k[b] & (1 << i)) !== 0;
  return {
    protocol,
    varintFlags: modern && bit(1, 0),
    incRecurse: modern && bit(1, 1),
    hardLinks: bit(1, 2),
    owner: bit(1, 3),
    group: bit(1, 4),
    numericIds: bit(1, 5),
    id0Names: modern && bit(1, 6),
    relative: bit(1, 7),
    checksumLength: bit(2, 0) ? (bit(2, 1) ? 16 : 8) : 0,
    atimes: bit(2, 2),
    crtimes: bit(2, 3),
    devices: bit(2, 4),
    specials: bit(2, 5),
    links: bit(2, 6),
    safeFlist: protocol >= 31 || bit(2, 7),
    missingArgs: bit(0, 7),
  };
}

async function readAllLists(r: ProtocolReader, o: FlistOptions): Promise<void> {
  const reader = new FlistReader(o);
  const byArrival = new Map<number, FileEntry>();
  const lookup = (n: number): FileEntry | undefined => byArrival.get(n);
  let start = o.incRecurse ? 1 : 0;
  let res = await reader.readList(r, start, lookup, o.incRecurse ? '' : undefined);
  const dirs: FileEntry[] = [];
  const add = (): void => {
    for (const e of res.entries) byArrival.set(e.arrival, e);
    const sorted = sortFileList(res.entries, o.protocol, start);
    dirs.push(...sorted.filter((e) => isDir(e) && !e.inactive));
  };
  add();
  if (!o.incRecurse) {
    if ((o.owner || o.group) && !o.numericIds) await reader.readIdLists(r);
    if (o.protocol < 30) await reader.readTrailingIoError(r);
    return;
  }
  const seen = new Set<number>();
  for (;;) {
    const ndx = await r.readNdx();
    if (ndx === NDX_FLIST_EOF) return;
    const dir = NDX_FLIST_OFFSET - ndx;
    if (dir < 0 || dir >= dirs.length || seen.has(dir)) throw new ProtocolError(`invalid sub-list dir ${dir}`);
    seen.add(dir);
    start += res.entries.length + 1;
    res = await reader.readList(r, start, lookup, dirs[dir].name === '.' ? '' : dirs[dir].name);
    add();
  }
}

function entry(name: string, mode: number, arrival: number, extra: Partial<FileEntry> = {}): FileEntry {
  return { name, mode, size: 10 * arrival, mtime: 1_700_000_000 + arrival, mtimeNsec: arrival * 1000, uid: 1000 + (arrival % 2), gid: 100, rdevMajor: 0, rdevMinor: 0, xflags: 0, ndx: 0, arrival, ...extra };
}

/** A small tree in arrival order: dirs, files, a symlink, a device, a fifo, a hard-link pair. */
function sampleLists(o: FlistOptions): FileEntry[][] {
  const base = o.incRecurse ? 1 : 0;
  const sum = o.checksumLength ? { checksum: Buffer.alloc(o.checksumLength, 7) } : {};
  const first = [
    entry('.', 0o40755, base),
    entry('a.txt', 0o100644, base + 1, { userName: 'alice', groupName: 'staff', ...sum }),
    entry('d', 0o40700, base + 2),
    entry('l', 0o120777, base + 3, { linkTarget: 'a.txt' }),
    entry('dev', 0o20644, base + 4, { rdevMajor: 8, rdevMinor: 1 }),
    entry('fifo', 0o10644, base + 5),
    entry('h1', 0o100644, base + 6, { hlinkGroup: base + 6, dev: 1, ino: 99, ...sum }),
    entry('h2', 0o100644, base + 7, { hlinkGroup: base + 6, dev: 1, ino: 99, ...sum }),
  ];
  if (!o.incRecurse) return [[...first, entry('d/x', 0o100600, base + 8, sum)]];
  return [first, [entry('d/x', 0o100600, base + 9, sum), entry('d/y', 0o100600, base + 10, sum)]];
}

function writeLists(o: FlistOptions): Buffer {
  const { w, bytes } = collectingWriter(o.protocol);
  const writer = new FlistWriter(o);
  const lists = sampleLists(o);
  lists.forEach((l, i) => {
    if (i > 0) w.ndx(NDX_FLIST_OFFSET - 1); // the sub-list of 'd' (the directory after '.')
    for (const e of l) {
      if (!o.links && (e.mode & 0o170000) === 0o120000) continue;
      writer.writeEntry(w, e);
    }
    writer.writeEnd(w, 0);
  });
  if (o.incRecurse) w.ndx(NDX_FLIST_EOF);
  else {
    if ((o.owner || o.group) && !o.numericIds) writer.writeIdLists(w, new Map([[1000, 'alice']]), new Map([[100, 'staff']]));
    if (o.protocol < 30) writer.writeTrailingIoError(w, 0);
  }
  return bytes();
}

const SEED_KNOBS: number[][] = [
  [5, 0xdb, 0x7f], [5, 0x18, 0x70], [5, 0x03, 0x00], [4, 0x5f, 0x55], [3, 0x1d, 0x73], [2, 0x1c, 0x70],
  [1, 0x04, 0x71], [0, 0x18, 0x70], [0, 0x00, 0x00], [5, 0x9b, 0x7d], [3, 0x01, 0x7c], [1, 0xbc, 0x30],
];

export const flist: Target = {
  name: 'flist',
  maxLen: 2048,
  async run(data) {
    const { k, rest } = knobs(data, 3);
    const o = flistOptionsOf(k);
    await readAllLists(readerOf(rest, o.protocol), o);
  },
  seeds() {
    const out: Buffer[] = [];
    for (const k of SEED_KNOBS) {
      try {
        out.push(Buffer.concat([Buffer.from(k), writeLists(flistOptionsOf(k))]));
      } catch {
        // a combination the writer does not support (e.g. -H entries without -H) is no seed
      }
    }
    return out;
  },
};
