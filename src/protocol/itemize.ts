/**
 * The item flags ("iflags", protocol >= 29) that lead every file request and itemized change, and
 * the fnamecmp_type byte that follows them when ITEM.BASIS_TYPE_FOLLOWS is set (rsync.h ITEM_*,
 * FNAMECMP_*).
 */
export const ITEM = {
  REPORT_ATIME: 0x0001,
  REPORT_CHANGE: 0x0002,
  REPORT_SIZE: 0x0004,
  REPORT_TIMEFAIL: 0x0004,
  REPORT_TIME: 0x0008,
  REPORT_PERMS: 0x0010,
  REPORT_OWNER: 0x0020,
  REPORT_GROUP: 0x0040,
  REPORT_ACL: 0x0080,
  REPORT_XATTR: 0x0100,
  REPORT_CRTIME: 0x0400,
  BASIS_TYPE_FOLLOWS: 0x0800,
  XNAME_FOLLOWS: 0x1000,
  IS_NEW: 0x2000,
  LOCAL_CHANGE: 0x4000,
  TRANSFER: 0x8000,
} as const;

/** Bits that make an item worth reporting ("significant"): everything but these. */
const ITEM_INSIGNIFICANT = ITEM.BASIS_TYPE_FOLLOWS | ITEM.XNAME_FOLLOWS | ITEM.LOCAL_CHANGE;

export function isSignificant(iflags: number): boolean {
  return (iflags & ~ITEM_INSIGNIFICANT) !== 0;
}

/** fnamecmp_type values: 0..0x7f index an alt-dest dir (--compare-dest/--copy-dest/--link-dest). */
export const FNAMECMP = {
  BASIS_DIR_HIGH: 0x7f,
  FNAME: 0x80,
  PARTIAL_DIR: 0x81,
  BACKUP: 0x82,
  FUZZY: 0x83,
} as const;

/**
 * rsync's `%i` (YXcstpoguax, log.c): `transferChar` is what a transfer shows ('<' sent, '>'
 * received), `typeChar` the entry's type (f d L D S).
 */
export function itemizeText(iflags: number, typeChar: string, transferChar: '<' | '>'): string {
  const y =
    iflags & ITEM.LOCAL_CHANGE ? (iflags & ITEM.XNAME_FOLLOWS ? 'h' : 'c') : iflags & ITEM.TRANSFER ? transferChar : '.';
  if (iflags & ITEM.IS_NEW) return `${y}${typeChar}+++++++++`;
  let rest = '';
  for (const [bit, c] of REPORT_LETTERS) rest += iflags & bit ? c : '.';
  if (y !== transferChar && rest === '.........') rest = '         ';
  return `${y}${typeChar}${rest}`;
}

const REPORT_LETTERS: ReadonlyArray<readonly [number, string]> = [
  [ITEM.REPORT_CHANGE, 'c'],
  [ITEM.REPORT_SIZE, 's'],
  [ITEM.REPORT_TIME, 't'],
  [ITEM.REPORT_PERMS, 'p'],
  [ITEM.REPORT_OWNER, 'o'],
  [ITEM.REPORT_GROUP, 'g'],
  [ITEM.REPORT_ATIME, 'u'],
  [ITEM.REPORT_ACL, 'a'],
  [ITEM.REPORT_XATTR, 'x'],
];
