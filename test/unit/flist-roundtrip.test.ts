/**
 * Round trips of random trees through FlistWriter -> FlistReader in every dialect, including
 * inc-recursion sub-lists and hard links that span lists; plus a 20 000-entry timing check.
 */
import t from 'tap';
import { compareFileNames as cmp, sortFileList, isDevice, isDir, isRegular, isSymlink, type FileEntry, type FlistOptions } from '../../src/protocol/flist.js';
import { allEntries, baseOptions, readerFor, readSession, writeSession, type DecodedSession } from './flist-support.js';

/** A small deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = 'abcXYZ019-_. \xe9\xff\x01';

interface TreeNode {
  entry: FileEntry;
  children: TreeNode[];
}

function blank(name: string, mode: number): FileEntry {
  return { name, mode, size: 0, mtime: 0, mtimeNsec: 0, uid: 0, gid: 0, rdevMajor: 0, rdevMinor: 0, xflags: 0, ndx: 0, arrival: 0 };
}

function randomComponent(rand: () => number, taken: Set<string>): string {
  for (;;) {
    const long = rand() < 0.03;
    const len = long ? 256 + Math.floor(rand() * 60) : 1 + Math.floor(rand() * 10);
    let s = '';
    for (let i = 0; i < len; i++) s += ALPHABET[Math.floor(rand() * ALPHABET.length)];
    if (s === '.' || s === '..' || taken.has(s)) continue;
    taken.add(s);
    return s;
  }
}

interface GenOptions {
  protocol: number;
  hardLinks: boolean;
  checksumLength: number;
  atimes: boolean;
  crtimes: boolean;
}

/** Builds a random tree; returns the root node ('.'). */
function randomTree(seed: number, count: number, g: GenOptions): TreeNode {
  const rand = rng(seed);
  const root: TreeNode = { entry: { ...blank('.', 0o40755), size: 4096, xflags: 0x1 }, children: [] };
  const dirs: TreeNode[] = [root];
  const regulars: FileEntry[] = [];
  const takenIn = new Map<TreeNode, Set<string>>();
  const uids = [0, 1000, 1001, 65534];
  let ino = 100;
  const time = (): number => {
    if (g.protocol < 30) return Math.floor(rand() * 0xffffffff);
    return Math.floor((rand() - 0.3) * 2 ** 40);
  };
  const sameTimeBias = time();
  for (let i = 0; i < count; i++) {
    const parent = dirs[Math.floor(rand() * dirs.length)];
    const taken = takenIn.get(parent) ?? new Set<string>();
    takenIn.set(parent, taken);
    const base = randomComponent(rand, taken);
    const name = parent.entry.name === '.' ? base : `${parent.entry.name}/${base}`;
    if (name.length > 4000) continue;
    const kind = rand();
    let e: FileEntry;
    const clone = g.hardLinks && kind < 0.1 && regulars.length > 0;
    if (clone) {
      const first = regulars[Math.floor(rand() * regulars.length)];
      e = { ...first, name, xflags: 0 };
    } else if (kind < 0.25) {
      e = { ...blank(name, 0o40000 | 0o755), size: 4096 };
    } else if (kind < 0.35) {
      const target = randomComponent(rand, new Set());
      e = { ...blank(name, 0o120777), linkTarget: target, size: target.length };
    } else if (kind < 0.4) {
      e = blank(name, rand() < 0.5 ? 0o10644 : 0o140755);
    } else if (kind < 0.45) {
      e = { ...blank(name, rand() < 0.5 ? 0o20660 : 0o60660), rdevMajor: Math.floor(rand() * 300), rdevMinor: Math.floor(rand() * 600) };
    } else {
      e = { ...blank(name, 0o100000 | (rand() < 0.5 ? 0o644 : 0o600)), size: Math.floor(rand() * 2 ** (rand() < 0.1 ? 45 : 20)) };
      if (g.checksumLength) e.checksum = Buffer.from(Array.from({ length: g.checksumLength }, () => Math.floor(rand() * 256)));
      if (g.hardLinks || g.protocol < 28) {
        e.dev = 0x801;
        e.ino = ino++;
      }
      regulars.push(e);
    }
    if (!clone) {
      // hard-link clones keep the first member's attributes (they are the same inode)
      e.mtime = rand() < 0.3 ? sameTimeBias : time();
      e.mtimeNsec = g.protocol >= 31 && rand() < 0.7 ? Math.floor(rand() * 1e9) : 0;
      e.uid = uids[Math.floor(rand() * uids.length)];
      e.gid = uids[Math.floor(rand() * uids.length)];
      if (g.atimes && !isDir(e)) e.atime = rand() < 0.3 ? e.mtime : time();
      if (g.crtimes) e.crtime = rand() < 0.5 ? e.mtime : time();
    }
    e.userName = e.uid ? `user${e.uid}` : 'root';
    e.groupName = e.gid ? `group${e.gid}` : 'root';
    const node: TreeNode = { entry: e, children: [] };
    parent.children.push(node);
    if (isDir(e)) dirs.push(node);
  }
  return root;
}

/** Marks hard-link groups: entries sharing (dev, ino) get one group id (proto >= 30 writer input). */
function assignGroups(entries: FileEntry[]): void {
  const byIno = new Map<number, FileEntry[]>();
  for (const e of entries) if (e.ino !== undefined) byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), e]);
  for (const [ino, members] of byIno) if (members.length > 1) for (const m of members) m.hlinkGroup = ino;
}

function flatten(root: TreeNode): FileEntry[] {
  const out: FileEntry[] = [];
  const walk = (n: TreeNode): void => {
    out.push(n.entry);
    for (const c of n.children) walk(c);
  };
  walk(root);
  return out;
}

/** Session in the sender's shape: one list, or inc-recursion lists (top level, then a DFS of dirs). */
function buildSession(root: TreeNode, o: FlistOptions): DecodedSession {
  const lists: DecodedSession['lists'] = [];
  let arrival = o.incRecurse ? 1 : 0;
  const stamp = (entries: FileEntry[], ndxStart: number, dirIndex: number): void => {
    arrival = ndxStart;
    for (const e of entries) e.arrival = arrival++;
    lists.push({ ndxStart, dirIndex, entries, sorted: [], ioError: 0 });
  };
  if (!o.incRecurse) {
    const all = flatten(root);
    for (const e of all) e.xflags = e.name === '.' ? 0x1 : 0;
    stamp(all, 0, -1);
    return { lists, users: new Map([[1000, 'user1000'], [1001, 'user1001'], [0, 'root']]), groups: new Map([[1001, 'group1001']]), trailingIoError: 0 };
  }
  // dir indexes: per list, the list's dirs in sorted order (see flist-support readSession)
  const dirNodes: TreeNode[] = [];
  const nodeOf = new Map<FileEntry, TreeNode>();
  const first = [root.entry, ...root.children.map((c) => c.entry)];
  for (const c of root.children) nodeOf.set(c.entry, c);
  nodeOf.set(root.entry, root);
  stamp(first, 1, -1);
  const sortedDirs = (entries: FileEntry[], proto: number): FileEntry[] =>
    [...entries].filter(isDir).sort((a, b) => cmp(a, b, proto));
  dirNodes.push(...sortedDirs(first, o.protocol).map((e) => nodeOf.get(e) as TreeNode));
  const visit = (node: TreeNode): void => {
    if (node === root) return;
    const idx = dirNodes.indexOf(node);
    const entries = node.children.map((c) => c.entry);
    for (const c of node.children) nodeOf.set(c.entry, c);
    const prev = lists[lists.length - 1];
    stamp(entries, prev.ndxStart + prev.entries.length + 1, idx);
    const subdirs = sortedDirs(entries, o.protocol).map((e) => nodeOf.get(e) as TreeNode);
    dirNodes.push(...subdirs);
    for (const d of subdirs) visit(d);
  };
  for (const d of sortedDirs(first, o.protocol)) visit(nodeOf.get(d) as TreeNode);
  return { lists };
}

/** What the receiver should see for an entry the sender described. */
function expected(e: FileEntry, o: FlistOptions): Record<string, unknown> {
  const dev = isDevice(e);
  return {
    name: e.name,
    mode: e.mode,
    size: dev ? 0 : isSymlink(e) ? (e.linkTarget ?? '').length : e.size,
    mtime: e.mtime,
    mtimeNsec: o.protocol >= 31 ? e.mtimeNsec : 0,
    uid: o.owner ? e.uid : 0,
    gid: o.group ? e.gid : 0,
    rdev: dev && o.devices ? [e.rdevMajor, e.rdevMinor] : [0, 0],
    linkTarget: isSymlink(e) && o.links ? e.linkTarget : undefined,
    checksum: o.checksumLength && isRegular(e) ? e.checksum?.toString('hex') : undefined,
    atime: o.atimes && !isDir(e) ? e.atime : undefined,
    crtime: o.crtimes ? (e.crtime ?? e.mtime) : undefined,
    arrival: e.arrival,
  };
}

function actual(e: FileEntry): Record<string, unknown> {
  return {
    name: e.name,
    mode: e.mode,
    size: e.size,
    mtime: e.mtime,
    mtimeNsec: e.mtimeNsec,
    uid: e.uid,
    gid: e.gid,
    rdev: [e.rdevMajor, e.rdevMinor],
    linkTarget: e.linkTarget,
    checksum: e.checksum?.toString('hex'),
    atime: e.atime,
    crtime: e.crtime,
    arrival: e.arrival,
  };
}

/** Hard-link groups as sets of names (only groups with 2+ members). */
function groupsOf(entries: FileEntry[], key: (e: FileEntry) => number | undefined): string[] {
  const m = new Map<number, string[]>();
  for (const e of entries) {
    const k = key(e);
    if (k !== undefined) m.set(k, [...(m.get(k) ?? []), e.name]);
  }
  return [...m.values()].filter((v) => v.length > 1).map((v) => v.sort().join('|')).sort();
}

const dialects: Array<[string, FlistOptions]> = [
  ['27', baseOptions(27, { hardLinks: true, checksumLength: 16 })],
  ['28', baseOptions(28, { hardLinks: true })],
  ['29', baseOptions(29, { hardLinks: true, checksumLength: 16 })],
  ['30 byte flags', baseOptions(30, { hardLinks: true, safeFlist: true })],
  ['30 varint', baseOptions(30, { varintFlags: true, safeFlist: true, hardLinks: true })],
  ['31 byte flags', baseOptions(31, { hardLinks: true, checksumLength: 16 })],
  ['32 varint id0', baseOptions(32, { varintFlags: true, id0Names: true, hardLinks: true, atimes: true, crtimes: true })],
  ['32 numeric, no -o/-g/-D/-l', baseOptions(32, { varintFlags: true, numericIds: true, owner: false, group: false, devices: false, specials: false, links: false })],
  ['32 inc-recurse', baseOptions(32, { varintFlags: true, incRecurse: true, id0Names: true, hardLinks: true, checksumLength: 16 })],
  ['30 inc-recurse byte flags', baseOptions(30, { incRecurse: true, safeFlist: true, hardLinks: true })],
];

for (const [label, o] of dialects) {
  t.test(`round trip: ${label}`, async (tt) => {
    for (const seed of [1, 2, 3]) {
      const root = randomTree(seed * 7919 + o.protocol, 400, {
        protocol: o.protocol,
        hardLinks: o.hardLinks,
        checksumLength: o.checksumLength,
        atimes: o.atimes,
        crtimes: o.crtimes,
      });
      const sent = buildSession(root, o);
      const sentEntries = allEntries(sent);
      assignGroups(sentEntries);
      const bytes = writeSession(sent, o);
      const got = await readSession(readerFor(bytes, o.protocol), o);
      const gotEntries = allEntries(got);
      tt.equal(gotEntries.length, sentEntries.length, `seed ${seed}: count`);
      tt.same(gotEntries.map(actual), sentEntries.map((e) => expected(e, o)), `seed ${seed}: attributes`);
      if (o.hardLinks) {
        const want = groupsOf(sentEntries, (e) => (isRegular(e) ? e.hlinkGroup : undefined));
        tt.same(groupsOf(gotEntries, (e) => e.hlinkGroup), want, `seed ${seed}: hard-link groups`);
        tt.ok(want.length > 0, 'tree has hard links');
      }
      if (o.incRecurse) {
        tt.ok(got.lists.length > 3, 'several sub-lists');
        const named = gotEntries.filter((e) => e.userName);
        tt.ok(named.length > 0, 'inline user names');
      } else if (o.owner && !o.numericIds) {
        tt.same(got.users, new Map([[1000, 'user1000'], [1001, 'user1001'], ...(o.id0Names ? ([[0, 'root']] as const) : [])]));
      }
      // the re-encoding of what we read is identical (writer state is fully determined)
      const again = writeSession(got, o);
      tt.equal(again.toString('hex'), bytes.toString('hex'), `seed ${seed}: re-encode`);
    }
  });
}

t.test('20 000 entries encode + decode + sort quickly', async (tt) => {
  const o = baseOptions(31, { varintFlags: true, safeFlist: true, hardLinks: true });
  const entries: FileEntry[] = [];
  for (let i = 0; i < 20000; i++) {
    const d = `dir${i % 100}/sub${i % 7}`;
    entries.push({ ...blank(`${d}/file-${i}.dat`, 0o100644), size: i * 13, mtime: 1700000000 + (i % 50), mtimeNsec: i % 3 ? 0 : i, uid: 1000, gid: 1000, arrival: i });
  }
  const session: DecodedSession = { lists: [{ ndxStart: 0, dirIndex: -1, entries, sorted: [], ioError: 0 }], users: new Map(), groups: new Map() };
  const t0 = performance.now();
  const bytes = writeSession(session, o);
  const t1 = performance.now();
  const got = await readSession(readerFor(bytes, o.protocol), o);
  const t2 = performance.now();
  tt.equal(got.lists[0].entries.length, 20000);
  tt.comment(`encode ${(t1 - t0).toFixed(1)} ms, decode+sort ${(t2 - t1).toFixed(1)} ms, ${bytes.length} bytes`);
  tt.ok(t1 - t0 < 30_000, 'encode bounded (~40-70 ms measured without tap; the bound only catches quadratic behaviour)');
  // Decoding is dominated by ProtocolReader's per-field awaits, which tap's async hooks slow ~5x.
  tt.ok(t2 - t1 < 60_000, 'decode + sort bounded (guards against quadratic behaviour)');
  const t3 = performance.now();
  sortFileList(got.lists[0].entries, 31, 0);
  tt.ok(performance.now() - t3 < 10_000, 'sort of 20 000 entries is not quadratic');
});
