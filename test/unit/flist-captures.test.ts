/**
 * Decodes the file lists of the real-rsync captures byte-exactly and re-encodes them with
 * FlistWriter (same options) to reproduce the reference writer's bytes.
 */
import t, { type Test } from 'tap';
import { isDir, isSymlink, XMIT, type FileEntry, type FlistOptions } from '../../src/protocol/flist.js';
import {
  allEntries,
  baseOptions,
  captureCompatFlags,
  captureStream,
  optionsFromCompat,
  readerFor,
  readSession,
  writeSession,
  type DecodedSession,
} from './flist-support.js';

const MTIME = 0x65937d25;
const LONG = 'long_named_file_nnnnnnnnnnnnnnnnnnnn.txt';
/** the source tree of most captures, in the 3.5.0 sender's (readdir) order */
const TREE_SEND_ORDER = ['.', 'fifo', 'd1', 'empty', 'e', 'a.txt', 'd1/d2', 'd1/sl', 'd1/hard.txt', 'd1/f.bin', `d1/d2/${LONG}`];
const SORTED_27 = ['.', 'a.txt', 'd1', 'd1/d2', `d1/d2/${LONG}`, 'd1/f.bin', 'd1/hard.txt', 'd1/sl', 'e', 'empty', 'fifo'];
const SORTED_29 = ['.', 'a.txt', 'empty', 'fifo', 'd1', 'd1/f.bin', 'd1/hard.txt', 'd1/sl', 'd1/d2', `d1/d2/${LONG}`, 'e'];
const SMALL_TREE = ['.', 'sub', 'a.txt', 'sub/b.txt'];
const SMALL_TREE_LINK = ['.', 'link', 'sub', 'a.txt', 'sub/b.txt'];

interface Spec {
  file: string;
  dir: 'c2s' | 's2c';
  protocol: number;
  over?: Partial<FlistOptions>;
  names: string[];
  /** false for writers other than rsync 3.x (openrsync does not compress) */
  reencode?: boolean;
  check?: (tt: Test, s: DecodedSession, byName: Map<string, FileEntry>) => void;
}

function checkBigTree(tt: Test, s: DecodedSession, m: Map<string, FileEntry>, protocol: number): void {
  const get = (n: string): FileEntry => {
    const e = m.get(n);
    if (!e) throw new Error(`missing ${n}`);
    return e;
  };
  tt.equal(get('.').mode, 0o40755);
  tt.equal(get('.').size, 4096);
  tt.equal(get('.').mtime, MTIME);
  tt.ok(get('.').xflags & XMIT.TOP_DIR, '. is a top dir');
  tt.equal(get('fifo').mode, 0o10644);
  tt.equal(get('fifo').size, 0);
  tt.equal(get('empty').mode, 0o100644);
  tt.equal(get('a.txt').size, 6);
  tt.equal(get('d1/hard.txt').size, 6);
  tt.equal(get('d1/f.bin').size, 4907);
  tt.equal(get(`d1/d2/${LONG}`).size, 300);
  tt.equal(get('d1/sl').mode, 0o120777);
  tt.equal(get('d1/sl').linkTarget, '../a.txt');
  tt.equal(get('d1/sl').size, 8);
  tt.equal(get('e').uid, 1000);
  tt.equal(get('e').gid, 1000);
  tt.equal(get('a.txt').uid, 0);
  for (const e of allEntries(s)) tt.equal(e.mtime, MTIME, `mtime ${e.name}`);
  const sorted = s.lists.length === 1 ? s.lists[0].sorted.map((e) => e.name) : undefined;
  if (sorted) tt.same(sorted, protocol >= 29 ? SORTED_29 : SORTED_27, 'sorted order');
  if (s.users) tt.same([...s.users], [[1000, 'cloudsdk']], 'uid list');
  if (s.groups) tt.same([...s.groups], [[1000, 'cloudsdk']], 'gid list');
}

function checkNsec(tt: Test, s: DecodedSession, nsec: number): void {
  for (const e of allEntries(s)) if (!isSymlink(e)) tt.equal(e.mtimeNsec, nsec, `nsec ${e.name}`);
}

const specs: Spec[] = [
  {
    file: 't1.txt', dir: 'c2s', protocol: 32, names: SMALL_TREE,
    check: (tt, s, m) => {
      tt.equal(m.get('.')?.userName, 'root');
      tt.equal(m.get('.')?.groupName, 'root');
      tt.equal(m.get('a.txt')?.size, 6);
      tt.equal(m.get('sub/b.txt')?.mode, 0o100644);
      tt.equal(m.get('.')?.mtime, 0x6b038312);
      checkNsec(tt, s, 0x04f1d77c);
      tt.same(s.lists.map((l) => l.ndxStart), [1, 5]);
      tt.same(s.lists[0].sorted.map((e) => `${e.ndx}:${e.name}`), ['1:.', '2:a.txt', '3:sub']);
      tt.same(s.lists[1].sorted.map((e) => `${e.ndx}:${e.name}`), ['5:sub/b.txt']);
    },
  },
  { file: 'push27.txt', dir: 'c2s', protocol: 27, names: TREE_SEND_ORDER, check: (tt, s, m) => checkBigTree(tt, s, m, 27) },
  { file: 'push29.txt', dir: 'c2s', protocol: 29, names: TREE_SEND_ORDER, check: (tt, s, m) => checkBigTree(tt, s, m, 29) },
  { file: 'push30.txt', dir: 'c2s', protocol: 30, names: TREE_SEND_ORDER, check: (tt, s, m) => {
    checkBigTree(tt, s, m, 30);
    tt.equal(m.get('e')?.userName, 'cloudsdk');
    tt.same(s.lists.map((l) => l.ndxStart), [1, 8, 13, 15]);
  } },
  { file: 'push_c309.txt', dir: 'c2s', protocol: 30, names: TREE_SEND_ORDER, check: (tt, s, m) => checkBigTree(tt, s, m, 30) },
  { file: 'push_c313.txt', dir: 'c2s', protocol: 31, names: TREE_SEND_ORDER, check: (tt, s, m) => {
    checkBigTree(tt, s, m, 31);
    checkNsec(tt, s, 500000000);
  } },
  {
    file: 'push_copenrsync.txt', dir: 'c2s', protocol: 27, reencode: false,
    names: SORTED_27,
    check: (tt, s, m) => checkBigTree(tt, s, m, 27),
  },
  { file: 'pull27.txt', dir: 's2c', protocol: 27, names: TREE_SEND_ORDER, check: (tt, s, m) => checkBigTree(tt, s, m, 27) },
  { file: 'pull29.txt', dir: 's2c', protocol: 29, names: TREE_SEND_ORDER, check: (tt, s, m) => checkBigTree(tt, s, m, 29) },
  {
    file: 'pull32.txt', dir: 's2c', protocol: 32, names: SMALL_TREE_LINK,
    check: (tt, _s, m) => {
      tt.equal(m.get('link')?.linkTarget, 'a.txt');
      tt.equal(m.get('link')?.mtimeNsec, 0);
      tt.equal(m.get('a.txt')?.mtimeNsec, 123456789);
    },
  },
  {
    file: 'hlink29.txt', dir: 'c2s', protocol: 29, over: { hardLinks: true }, names: TREE_SEND_ORDER,
    check: (tt, s, m) => {
      checkBigTree(tt, s, m, 29);
      const a = m.get('a.txt');
      const h = m.get('d1/hard.txt');
      tt.ok(a?.hlinkGroup !== undefined && a.hlinkGroup === h?.hlinkGroup, 'same group');
      tt.equal(a?.dev, 0xfe00);
      tt.equal(a?.ino, 0x230918);
      tt.equal(h?.ino, 0x230918);
      tt.equal(m.get('d1/f.bin')?.hlinkGroup, undefined);
    },
  },
  {
    file: 'hlink32.txt', dir: 'c2s', protocol: 32, over: { hardLinks: true }, names: TREE_SEND_ORDER,
    check: (tt, s, m) => {
      checkBigTree(tt, s, m, 32);
      tt.equal(m.get('a.txt')?.arrival, 6);
      tt.equal(m.get('a.txt')?.hlinkGroup, 6);
      tt.equal(m.get('d1/hard.txt')?.hlinkGroup, 6);
      tt.ok((m.get('a.txt')?.xflags ?? 0) & XMIT.HLINK_FIRST);
    },
  },
  {
    file: 'cks29.txt', dir: 'c2s', protocol: 29, over: { checksumLength: 16, devices: true }, names: SMALL_TREE_LINK,
    check: (tt, _s, m) => {
      tt.equal(m.get('a.txt')?.checksum?.toString('hex'), '63481c78ae04c201fa01ea9d2b1db56d');
      tt.equal(m.get('link')?.checksum, undefined);
    },
  },
  {
    file: 'cks32.txt', dir: 'c2s', protocol: 32, over: { checksumLength: 16 }, names: SMALL_TREE_LINK,
    check: (tt, _s, m) => tt.equal(m.get('a.txt')?.checksum?.toString('hex'), '9ce4c8f135b4105a6df569e0c786ba6b'),
  },
  {
    file: 'listonly.txt', dir: 's2c', protocol: 32,
    over: { links: false, owner: false, group: false, devices: false, specials: false },
    names: ['.', 'link', 'sub', 'a.txt'],
    check: (tt, _s, m) => {
      tt.equal(m.get('link')?.linkTarget, undefined, 'no target without -l');
      tt.ok((m.get('sub')?.xflags ?? 0) & XMIT.NO_CONTENT_DIR, 'sub is not a content dir (-d)');
      tt.ok(isDir(m.get('sub') as FileEntry));
    },
  },
  { file: 'emptypush.txt', dir: 'c2s', protocol: 32, names: [] },
];

for (const spec of specs) {
  t.test(spec.file, async (tt) => {
    const compat = captureCompatFlags(spec.file);
    const o = compat ? optionsFromCompat(spec.protocol, compat, spec.over) : baseOptions(spec.protocol, spec.over);
    const stream = captureStream(spec.file, spec.dir);
    tt.ok(stream.length > 0, 'stream extracted');
    const session = await readSession(readerFor(stream, spec.protocol), o);
    const entries = allEntries(session);
    tt.same(entries.map((e) => e.name), spec.names, 'names in arrival order');
    const byName = new Map(entries.map((e) => [e.name, e]));
    spec.check?.(tt, session, byName);
    if (spec.reencode !== false) {
      const again = writeSession(session, o);
      tt.equal(again.toString('hex'), stream.subarray(0, again.length).toString('hex'), 're-encoded bytes match');
    }
  });
}
