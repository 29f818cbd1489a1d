/**
 * File-list order: rsync's f_name_cmp (flist.c) and the duplicate removal of clean_flist.
 */
import { isDir, wireName, type FileEntry } from './entry.js';
import { XMIT } from './xmit.js';

const enum Seg {
  Dir,
  Slash,
  Base,
  Trailing,
}
const ITEM = 0;
const PATH = 1;

/** One side of the comparison: walks dirname, "/", basename, ("/" for dirs). */
class NameCursor {
  s = '';
  i = 0;
  seg: Seg = Seg.Base;
  type = ITEM;

  constructor(
    dir: string | null,
    private readonly base: string,
    private readonly isDir: boolean,
    private readonly tPath: number,
  ) {
    if (dir === null) this.enterBase();
    else {
      this.type = tPath;
      this.seg = Seg.Dir;
      this.s = dir;
    }
  }

  enterBase(): void {
    this.type = this.isDir ? this.tPath : ITEM;
    this.i = 0;
    if (this.type === PATH && this.base === '.') {
      // proto >= 29: the root dir "." sorts before everything
      this.type = ITEM;
      this.seg = Seg.Trailing;
      this.s = '';
    } else {
      this.seg = Seg.Base;
      this.s = this.base;
    }
  }

  get atEnd(): boolean {
    return this.i >= this.s.length;
  }

  get char(): number {
    return this.i < this.s.length ? this.s.charCodeAt(this.i) : 0;
  }
}

function splitName(name: string): [string | null, string] {
  const i = name.lastIndexOf('/');
  return i < 0 ? [null, name] : [name.slice(0, i), name.slice(i + 1)];
}

function compareSplit(
  d1: string | null, b1: string, dir1: boolean,
  d2: string | null, b2: string, dir2: boolean,
  protocol: number,
): number {
  const tPath = protocol >= 29 ? PATH : ITEM;
  if (d1 !== null && d1 === d2) d1 = d2 = null;
  const c1 = new NameCursor(d1, b1, dir1, tPath);
  const c2 = new NameCursor(d2, b2, dir2, tPath);
  if (c1.type !== c2.type) return c1.type === PATH ? 1 : -1;
  for (;;) {
    if (c1.atEnd) {
      switch (c1.seg) {
        case Seg.Dir:
          c1.seg = Seg.Slash;
          c1.s = '/';
          c1.i = 0;
          break;
        case Seg.Slash:
          c1.enterBase();
          break;
        case Seg.Base:
          c1.seg = Seg.Trailing;
          if (c1.type === PATH) {
            c1.s = '/';
            c1.i = 0;
            break;
          }
          c1.type = ITEM;
          break;
        case Seg.Trailing:
          c1.type = ITEM;
          break;
      }
      if (!c2.atEnd && c1.type !== c2.type) return c1.type === PATH ? 1 : -1;
    }
    if (c2.atEnd) {
      switch (c2.seg) {
        case Seg.Dir:
          c2.seg = Seg.Slash;
          c2.s = '/';
          c2.i = 0;
          break;
        case Seg.Slash:
          c2.enterBase();
          break;
        case Seg.Base:
          c2.seg = Seg.Trailing;
          if (c2.type === PATH) {
            c2.s = '/';
            c2.i = 0;
            break;
          }
          if (c1.atEnd) return 0;
          c2.type = ITEM;
          break;
        case Seg.Trailing:
          if (c1.atEnd) return 0;
          c2.type = ITEM;
          break;
      }
      if (c1.type !== c2.type) return c1.type === PATH ? 1 : -1;
    }
    const dif = c1.char - c2.char;
    c1.i++;
    c2.i++;
    if (dif !== 0) return dif;
  }
}

/** rsync's f_name_cmp: bytewise before protocol 29; path-component order (dirs after files) from 29. */
export function compareFileNames(a: FileEntry, b: FileEntry, protocol: number): number {
  const [d1, b1] = splitName(wireName(a));
  const [d2, b2] = splitName(wireName(b));
  return compareSplit(d1, b1, isDir(a), d2, b2, isDir(b), protocol);
}

/**
 * A string whose plain (char code) order equals f_name_cmp's order, so sorting needs no per-pair
 * state machine. Proto >= 29: every path component is prefixed by a type char (\x01 = the final
 * non-directory name, \x02 = a directory / path component) and directory components end in '/';
 * type chars only ever meet type chars because they always follow a '/' (or start the key).
 * The root "." is an empty item. Proto < 29: the name itself.
 */
export function fileNameSortKey(e: FileEntry, protocol: number): string {
  const name = wireName(e);
  if (protocol < 29) return name;
  const dir = isDir(e);
  let key = '';
  let start = 0;
  for (;;) {
    const slash = name.indexOf('/', start);
    if (slash < 0) break;
    key += `\x02${name.slice(start, slash)}/`;
    start = slash + 1;
  }
  const base = name.slice(start);
  if (!dir) return `${key}\x01${base}`;
  if (base === '.') return `${key}\x01`;
  return `${key}\x02${base}/`;
}

/**
 * Sorts a list (stable), assigns e.ndx = ndxStart + position, and deactivates duplicates: the first
 * of equal names is kept, except that a directory wins over a non-directory of the same name.
 */
export function sortFileList(entries: FileEntry[], protocol: number, ndxStart: number): FileEntry[] {
  const items = entries.map((e) => ({ e, key: fileNameSortKey(e, protocol) }));
  items.sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
  const sorted = items.map((it) => it.e);
  const kept = new Map<string, FileEntry>();
  sorted.forEach((e, i) => {
    e.ndx = ndxStart + i;
    if (e.inactive) return;
    const key = wireName(e);
    const other = kept.get(key);
    if (!other) {
      kept.set(key, e);
      return;
    }
    if (isDir(e) && !isDir(other)) {
      other.inactive = true;
      kept.set(key, e);
      return;
    }
    if (isDir(e) && isDir(other)) mergeDuplicateDirFlags(other, e);
    e.inactive = true;
  });
  return sorted;
}

/** Two entries for one directory: it is a top dir if either says so, a content dir if either is. */
function mergeDuplicateDirFlags(keep: FileEntry, drop: FileEntry): void {
  keep.xflags |= drop.xflags & XMIT.TOP_DIR;
  if (!(drop.xflags & XMIT.NO_CONTENT_DIR)) keep.xflags &= ~XMIT.NO_CONTENT_DIR;
}

