/**
 * Receiver helpers for the options that pick where a file's data comes from or goes to:
 * --partial-dir, --temp-dir, --backup-dir, --compare-dest/--copy-dest/--link-dest (all confined to
 * the grant's root) and the reference's fuzzy basis search (-y, generator.c find_fuzzy()).
 *
 * Paths: every value is confined with policy/paths.ts. An absolute value names a path below the
 * grant's root; a relative one is relative to the destination directory (the reference's cwd),
 * except --partial-dir, which is relative to each file's own directory.
 */
import type { Grant } from '../../policy/grant.js';
import { confinePath } from '../../policy/paths.js';
import { baseOf, dirOf, joinRel } from '../relpath.js';

/** The reference's MAX_BASIS_DIRS. */
export const MAX_BASIS_DIRS = 20;

/** The partial dir --delay-updates uses when none is given (options.c tmp_partialdir). */
export const TMP_PARTIAL_DIR = '.~tmp~';

export type AltDestType = 'compare' | 'copy' | 'link';

export function altDestOption(type: AltDestType): string {
  return `--${type}-dest`;
}

/** A root-relative directory for an option value: absolute = below the root, relative = below `baseDir`. */
export function auxDir(arg: string, grant: Grant, baseDir: string, what: string): string {
  const c = confinePath(arg, grant, what);
  return c.anchored ? c.rel : joinRel(baseDir, c.rel);
}

/** --partial-dir=DIR: `<file's dir>/DIR/<name>`, or `DIR/<name>` when DIR is absolute (util1.c partial_dir_fname). */
export class PartialDir {
  readonly absolute: boolean;
  /** Normalized DIR (root-relative when absolute). */
  readonly rel: string;

  /** `resolve`: how an absolute DIR is found (at a root of `/`, through the operator's symlinks). */
  constructor(arg: string, grant: Grant, resolve: (rel: string) => string = (rel) => rel) {
    const c = confinePath(arg, grant, '--partial-dir');
    this.absolute = c.anchored;
    this.rel = c.anchored ? resolve(c.rel) : c.rel;
  }

  /** '' / '.' (after cleaning) means "no partial dir" in the reference. */
  static usable(arg: string | undefined, grant: Grant): boolean {
    if (arg === undefined || arg === '') return false;
    const c = confinePath(arg, grant, '--partial-dir');
    return c.anchored || c.rel !== '';
  }

  pathFor(destRel: string): string {
    const dir = this.absolute ? this.rel : joinRel(dirOf(destRel), this.rel);
    return joinRel(dir, baseOf(destRel));
  }

  /** The directory that holds `partialPath` (removed again when it becomes empty, if relative). */
  dirOf(partialPath: string): string {
    return dirOf(partialPath);
  }
}

// ---- fuzzy basis (-y) ------------------------------------------------------------------------

const UNIT = 1 << 16;
const DISQUALIFIED = 0xffff0000;

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** util1.c find_filename_suffix(): the "significant" suffix of a name (with its dot), or ''. */
function findFilenameSuffix(name: Buffer): Buffer {
  let start = 0;
  let fnLen = name.length;
  while (fnLen > 0 && name[start] === 0x2e) {
    start++;
    fnLen--;
  }
  let hadTilde = false;
  if (fnLen > 1 && name[start + fnLen - 1] === 0x7e) {
    fnLen--;
    hadTilde = true;
  }
  let suf: Buffer = Buffer.alloc(0);
  let s = start + fnLen;
  const rest = (at: number): string => name.subarray(at).toString('latin1');
  while (fnLen > 1) {
    do s--;
    while (name[s] !== 0x2e && s !== start);
    if (s === start) break;
    const sLen = fnLen - (s - start);
    fnLen = s - start;
    if (sLen === 4) {
      if (rest(s + 1) === 'bak' || rest(s + 1) === 'old') continue;
    } else if (sLen === 5) {
      if (rest(s + 1) === 'orig') continue;
    } else if (sLen > 2 && hadTilde && name[s + 1] === 0x7e && isDigit(name[s + 2])) {
      continue;
    }
    suf = name.subarray(s, s + sLen);
    if (sLen === 1) break;
    let allDigits = true;
    for (let k = s + 1; k < s + sLen; k++) {
      if (!isDigit(name[k])) {
        allDigits = false;
        break;
      }
    }
    if (!allDigits) return suf;
    // An all-digit suffix may not be that significant: keep looking further left.
  }
  return suf;
}

/** util1.c fuzzy_distance(): a weighted Levenshtein distance in units of 1<<16. */
function fuzzyDistance(s1: Buffer, s2: Buffer, upperLimit: number): number {
  const len1 = s1.length;
  const len2 = s2.length;
  if (Math.abs(len1 - len2) * UNIT > upperLimit) return 0xffff * UNIT + 1;
  if (len1 === 0 || len2 === 0) {
    const s = len1 === 0 ? s2 : s1;
    let cost = 0;
    for (const b of s) cost += b >= 0x80 ? b - 256 : b; // a plain (signed) char in the reference
    return (s.length * UNIT + cost) >>> 0;
  }
  const a = new Array<number>(len2);
  for (let i2 = 0; i2 < len2; i2++) a[i2] = (i2 + 1) * UNIT;
  for (let i1 = 0; i1 < len1; i1++) {
    let diag = i1 * UNIT;
    let above = (i1 + 1) * UNIT;
    for (let i2 = 0; i2 < len2; i2++) {
      const left = a[i2]!;
      let cost = s1[i1]! - s2[i2]!;
      if (cost !== 0) cost = cost < 0 ? UNIT - cost : UNIT + cost;
      const diagInc = diag + cost;
      const leftInc = left + UNIT + s1[i1]!;
      const aboveInc = above + UNIT + s2[i2]!;
      above = left < above ? Math.min(leftInc, diagInc) : Math.min(aboveInc, diagInc);
      a[i2] = above;
      diag = left;
    }
  }
  return a[len2 - 1]!;
}

/** One regular file of a directory listing used for the fuzzy search. */
export interface FuzzyEntry {
  name: string;
  size: number;
  mtime: number;
  /** Being transferred now: not a basis for later files (FLAG_FILE_SENT). */
  sent: boolean;
}

/**
 * generator.c find_fuzzy(): an exact size+mtime match first, else the closest name (distance
 * below 25). `dirlists[i]` is searched as fnamecmp_type FUZZY + i.
 */
export function findFuzzy(
  name: string,
  size: number,
  mtime: number,
  dirlists: ReadonlyArray<FuzzyEntry[] | null>,
  sameTime: (a: number, b: number) => boolean,
): { dir: number; entry: FuzzyEntry } | null {
  for (let i = 0; i < dirlists.length; i++) {
    for (const fp of dirlists[i] ?? []) {
      if (!fp.size || fp.sent) continue;
      if (fp.size === size && sameTime(fp.mtime, mtime)) return { dir: i, entry: fp };
    }
  }
  const fname = Buffer.from(name, 'latin1');
  const fnameSuf = findFilenameSuffix(fname);
  let lowest = 25 << 16;
  let best: { dir: number; entry: FuzzyEntry } | null = null;
  for (let i = 0; i < dirlists.length; i++) {
    for (const fp of dirlists[i] ?? []) {
      if (!fp.size || fp.sent) continue;
      const n = Buffer.from(fp.name, 'latin1');
      let dist = fuzzyDistance(n, fname, lowest);
      if (dist < DISQUALIFIED) dist += fuzzyDistance(findFilenameSuffix(n), fnameSuf, DISQUALIFIED) * 10;
      if (dist <= lowest) {
        lowest = dist;
        best = { dir: i, entry: fp };
      }
    }
  }
  return best;
}

/** Byte-wise name order (the reference's sorted dirlist for plain files). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));
}
