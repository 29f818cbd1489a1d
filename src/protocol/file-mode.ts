/**
 * st_mode file-type bits as they travel in a file list (the values are Linux's and every
 * rsync's: a mode is sent whole). The one set of S_IF* constants in the tree.
 */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export type FileType = 'file' | 'dir' | 'symlink' | 'chr' | 'blk' | 'fifo' | 'sock';

const TYPE_BY_FORMAT: ReadonlyMap<number, FileType> = new Map([
  [S_IFREG, 'file'],
  [S_IFDIR, 'dir'],
  [S_IFLNK, 'symlink'],
  [S_IFCHR, 'chr'],
  [S_IFBLK, 'blk'],
  [S_IFIFO, 'fifo'],
  [S_IFSOCK, 'sock'],
]);

export const FORMAT_OF_TYPE: Readonly<Record<FileType, number>> = {
  file: S_IFREG,
  dir: S_IFDIR,
  symlink: S_IFLNK,
  chr: S_IFCHR,
  blk: S_IFBLK,
  fifo: S_IFIFO,
  sock: S_IFSOCK,
};

/** The type named by a mode's S_IFMT bits, or undefined for a format no file system makes. */
export function fileTypeOf(mode: number): FileType | undefined {
  return TYPE_BY_FORMAT.get(mode & S_IFMT);
}

export function isKnownFileType(mode: number): boolean {
  return TYPE_BY_FORMAT.has(mode & S_IFMT);
}
