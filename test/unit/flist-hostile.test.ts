/**
 * Hostile file lists (docs/attacks.md §2.1, §2.4, Appendix A) and the sort comparator.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FlistReader,
  FlistWriter,
  compareFileNames,
  fileNameSortKey,
  sortFileList,
  XMIT,
  type FileEntry,
  type FlistOptions,
} from '../../src/protocol/flist.js';
import { baseOptions, collectingWriter, readerFor } from './flist-support.js';

function entry(name: string, mode = 0o100644, extra: Partial<FileEntry> = {}): FileEntry {
  return { name, mode, size: 1, mtime: 1000, mtimeNsec: 0, uid: 0, gid: 0, rdevMajor: 0, rdevMinor: 0, xflags: 0, ndx: 0, arrival: 0, ...extra };
}

function encode(o: FlistOptions, entries: FileEntry[]): Buffer {
  const { w, bytes } = collectingWriter(o.protocol);
  const fw = new FlistWriter(o);
  entries.forEach((e, i) => fw.writeEntry(w, { ...e, arrival: e.arrival || i }));
  fw.writeEnd(w, 0);
  return bytes();
}

async function decode(o: FlistOptions, buf: Buffer, ndxStart = 0, expectDir?: string): Promise<FileEntry[]> {
  return (await new FlistReader(o).readList(readerFor(buf, o.protocol), ndxStart, () => undefined, expectDir)).entries;
}

const V32 = baseOptions(32, { varintFlags: true, id0Names: true });
const UNSAFE = /ABORTING due to unsafe pathname from sender/;

t.test('unsafe names are refused', async (tt) => {
  for (const name of ['../x', 'a/../../x', 'a/..', '/etc/passwd', 'a/.']) {
    await tt.rejects(decode(V32, encode(V32, [entry(name)])), UNSAFE, name);
  }
  // empty name: flags, length 0
  await tt.rejects(decode(V32, Buffer.from([0x08, 0x00, 0x00])), UNSAFE, 'empty name');
  // 5000-byte name is refused from its length, before the bytes are read
  const long = Buffer.from([0x40, 0x93, 0x88]); // XMIT_LONG_NAME, varint 5000, (no bytes follow)
  await tt.rejects(decode(V32, long), UNSAFE, '5000-byte name');
  // SAME_NAME prefix longer than the previous name
  await tt.rejects(decode(V32, Buffer.from([0x20, 0x05, 0x01, 0x61])), UNSAFE, 'prefix beyond previous name');
});

t.test('names are cleaned; -R allows and strips a leading slash', async (tt) => {
  const got = await decode(V32, encode(V32, [entry('a//b/./c/')]));
  tt.equal(got[0].name, 'a/b/c');
  const R = { ...V32, relative: true };
  const abs = await decode(R, encode(R, [entry('/usr/lib', 0o40755)]));
  tt.equal(abs[0].name, 'usr/lib');
  tt.equal(abs[0].leadingSlash, true);
  // the writer restores the slash from leadingSlash
  tt.same(encode(R, abs), encode(R, [entry('/usr/lib', 0o40755)]));
});

t.test('flags for features that were not negotiated are refused', async (tt) => {
  const withH = { ...V32, hardLinks: true };
  const linked = [entry('a', 0o100644, { hlinkGroup: 1 }), entry('b', 0o100644, { hlinkGroup: 1 })];
  await tt.rejects(decode(V32, encode(withH, linked)), /Invalid flist flag/, 'HLINKED without -H (proto 32)');
  const h29 = baseOptions(29, { hardLinks: true });
  await tt.rejects(decode(baseOptions(29), encode(h29, [entry('a', 0o100644, { dev: 1, ino: 2 })])), /Invalid flist flag/, 'HLINKED without -H (proto 29)');
  // MOD_NSEC before protocol 31
  await tt.rejects(decode(baseOptions(30, { varintFlags: true }), Buffer.from([0xa0, 0x00, 0x01, 0x61])), /Invalid flist flag/);
  // the safe-flist io_error end marker without safe flist
  await tt.rejects(decode(baseOptions(29), Buffer.from([0x04, 0x10, 0x01])), /Invalid flist flag/);
  const safe = await new FlistReader(baseOptions(30, { safeFlist: true })).readList(readerFor(Buffer.from([0x04, 0x10, 0x01]), 30), 0, () => undefined);
  tt.equal(safe.ioError, 1, 'io_error from the 0x1004 marker');
  // user name follows although -o is off
  await tt.rejects(decode({ ...V32, owner: false }, Buffer.from([0x84, 0x00, 0x01, 0x61])), /Invalid flist flag/);
});

t.test('out-of-range values are refused', async (tt) => {
  await tt.rejects(decode(V32, encode(V32, [entry('a', 0o100644, { mtimeNsec: 1_000_000_000 })])), /nsec/, 'nsec 10^9');
  await tt.rejects(decode(V32, encode(V32, [entry('a', 0o070644)])), /invalid file mode/, 'unknown file type');
  await tt.rejects(decode(V32, encode(V32, [entry('.', 0o100644)])), /non-directory transfer-root/, '. not a dir');
  await tt.rejects(decode(V32, encode(V32, [entry('a', 0o100644, { size: -5 })])), /negative/, 'negative size');
  const hugeLink = encode(V32, [entry('l', 0o120777, { linkTarget: 'x'.repeat(5000) })]);
  await tt.rejects(decode(V32, hugeLink), /linkname_len/, '5000-byte symlink target');
});

t.test('hard-link references must point at an earlier group leader', async (tt) => {
  const H = { ...V32, hardLinks: true };
  // flags HLINKED (0x200) as varint 82 00; name "b"; first_hlink_ndx
  const ref = (n: number): Buffer => Buffer.from([0x82, 0x00, 0x01, 0x62, n]);
  await tt.rejects(decode(H, ref(0)), /out of range/, 'reference to itself (first entry)');
  const leader = encode(H, [entry('a', 0o100644, { hlinkGroup: 9 })]).subarray(0, -2); // drop end marker
  await tt.rejects(decode(H, Buffer.concat([leader, ref(1), Buffer.from([0, 0])])), /out of range/, 'ndx >= current');
  await tt.rejects(decode(H, Buffer.concat([leader, ref(7), Buffer.from([0, 0])])), /out of range/, 'ndx beyond the list');
  const plain = encode(H, [entry('a')]).subarray(0, -2);
  await tt.rejects(decode(H, Buffer.concat([plain, ref(0), Buffer.from([0, 0])])), /not a group leader/, 'reference to a non-hlinked entry');
  const ok = await decode(H, Buffer.concat([leader, ref(0), Buffer.from([0, 0])]));
  tt.equal(ok[1].hlinkGroup, 0);
  tt.equal(ok[1].size, 1, 'abbreviated entry copies the leader');
});

t.test('inc-recursion sub-list entries must live in the announced directory', async (tt) => {
  const buf = encode(V32, [entry('d/x'), entry('e/y')]);
  await tt.rejects(decode(V32, buf, 5, 'd'), /invalid path from sender/);
  await tt.rejects(decode(V32, encode(V32, [entry('d/x')]), 1, ''), /invalid path from sender/, 'nested name in the first list');
});

t.test('truncated input is an EOF error, not a hang', async (tt) => {
  const full = encode(V32, [entry('abc')]);
  await tt.rejects(decode(V32, full.subarray(0, 4)), /connection unexpectedly closed/);
});

// ---------------------------------------------------------------------------------------------

const TRICKY: Array<[string, boolean]> = [
  ['.', true], ['a', false], ['a.txt', false], ['a', true], ['a/b', false], ['a-b', false], ['ab', false],
  ['ab', true], ['ab/x', false], ['a-b', true], ['a-b/c', false], ['B', false], ['_z', false], ['a b', false],
  ['a0', false], ['a.d', true], ['a.d/z', true], ['a.d/z/q', false], ['\xe9', false], ['\x01x', false],
];

function tricky(): FileEntry[] {
  return TRICKY.map(([n, d]) => entry(n, d ? 0o40755 : 0o100644));
}

t.test('comparator: proto 28 bytewise, proto 29 dirs after files', async (tt) => {
  const names = (p: number): string[] => sortFileList(tricky(), p, 0).map((e) => `${e.name}${e.mode & 0o40000 ? '/' : ''}`);
  tt.same(names(28), ['\x01x', './', 'B', '_z', 'a', 'a/', 'a b', 'a-b', 'a-b/', 'a-b/c', 'a.d/', 'a.d/z/', 'a.d/z/q', 'a.txt', 'a/b', 'a0', 'ab', 'ab/', 'ab/x', '\xe9']);
  tt.same(names(29), ['./', '\x01x', 'B', '_z', 'a', 'a b', 'a-b', 'a.txt', 'a0', 'ab', '\xe9', 'a-b/', 'a-b/c', 'a.d/', 'a.d/z/', 'a.d/z/q', 'a/', 'a/b', 'ab/', 'ab/x']);
  tt.equal(compareFileNames(entry('a'), entry('a', 0o40755), 28), 0, 'proto 28: same name compares equal');
  tt.ok(compareFileNames(entry('a'), entry('a', 0o40755), 29) < 0, 'proto 29: file before dir');
});

t.test('sort keys agree with the f_name_cmp port', async (tt) => {
  const all = tricky();
  for (const p of [27, 29, 32]) {
    for (const a of all) {
      for (const b of all) {
        const ka = fileNameSortKey(a, p);
        const kb = fileNameSortKey(b, p);
        const byKey = ka < kb ? -1 : ka > kb ? 1 : 0;
        tt.equal(Math.sign(compareFileNames(a, b, p)), byKey, `${p}: ${a.name} vs ${b.name}`);
      }
    }
  }
});

t.test('duplicates: first kept, a directory wins over a file', async (tt) => {
  const list = [entry('x'), entry('x', 0o40755, { xflags: XMIT.NO_CONTENT_DIR }), entry('y'), entry('y'), entry('z', 0o40755), entry('z', 0o40755, { xflags: XMIT.TOP_DIR })];
  const sorted = sortFileList(list, 29, 10);
  const active = sorted.filter((e) => !e.inactive);
  tt.same(active.map((e) => [e.name, e.mode >> 12]), [['y', 8], ['x', 4], ['z', 4]]);
  tt.same(sorted.map((e) => e.ndx), [10, 11, 12, 13, 14, 15]);
  tt.equal(list[2].inactive, undefined);
  tt.equal(list[3].inactive, true);
  tt.equal(list[0].inactive, true, 'file x lost to dir x');
  tt.ok(list[4].xflags & XMIT.TOP_DIR, 'dir flags merged');
});

t.test('order matches real rsync --list-only', { skip: !existsSync('/usr/bin/rsync') && 'no rsync' }, async (tt) => {
  const root = mkdtempSync(join(tmpdir(), 'flist-sort-'));
  try {
    const src = join(root, 'src');
    for (const d of ['a', 'a-b', 'a.d/z', 'ab', 'b c']) mkdirSync(join(src, d), { recursive: true });
    for (const f of ['a.txt', 'a b', 'a0', 'B', '_z', 'a/b', 'a-b/c', 'a.d/z/q', 'ab/x', 'ab.c', 'b c/d', 'b-c']) writeFileSync(join(src, f), '');
    for (const proto of [28, 29, 31]) {
      const out = execFileSync('/usr/bin/rsync', ['-r', '--list-only', '--no-inc-recursive', `--protocol=${proto}`, `${src}/`], { encoding: 'latin1' });
      const listed = out.trim().split('\n').map((l) => l.replace(/^\S+\s+\S+\s+\S+\s+\S+\s+/, ''));
      const ours = listed.map((n) => entry(n, 0o100644));
      // rebuild modes from the listing's leading 'd'
      out.trim().split('\n').forEach((l, i) => { if (l.startsWith('d')) ours[i].mode = 0o40755; });
      const shuffled = [...ours].reverse();
      tt.same(sortFileList(shuffled, proto, 0).map((e) => e.name), listed, `proto ${proto}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
