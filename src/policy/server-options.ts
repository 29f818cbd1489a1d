/**
 * The typed form of an `rsync --server ...` command line, produced by policy/options.ts and read by
 * the engine. Path-like values and args are byte strings: JS strings whose char codes are the raw
 * bytes (latin1 decoding), so names that are not UTF-8 survive unchanged.
 */
export type DeleteTiming = 'before' | 'during' | 'delay' | 'after';

export interface ServerOptions {
  /** --sender: the server sends (a pull). */
  sender: boolean;
  /** -s / --protect-args / --secluded-args: the remaining args come in the stream. */
  protectArgs: boolean;
  /** The `e.` capability letters after `e` (e.g. ".iLsfxCIvu"); undefined when absent. */
  clientInfo?: string;

  verbose: number;
  quiet: boolean;
  dryRun: boolean;
  listOnly: boolean;
  stats: boolean;
  /** --log-format=FMT as the client passes it (%i, %i%I, %o, X). */
  logFormat?: string;
  /** --info=FLAGS words (upper-cased by the client). */
  info: string[];
  /** --msgs2stderr (true) / --no-msgs2stderr (false) / unspecified. */
  msgs2stderr?: boolean;

  recursive: boolean;
  dirs: boolean;
  relative: boolean;
  impliedDirs: boolean;
  links: boolean;
  copyLinks: boolean;
  copyDirlinks: boolean;
  copyUnsafeLinks: boolean;
  safeLinks: boolean;
  mungeLinks: boolean;
  keepDirlinks: boolean;
  hardLinks: number;
  perms: boolean;
  executability: boolean;
  owner: boolean;
  group: boolean;
  numericIds: boolean;
  usermap?: string;
  groupmap?: string;
  devices: boolean;
  specials: boolean;
  times: boolean;
  atimes: number;
  crtimes: boolean;
  omitDirTimes: boolean;
  omitLinkTimes: boolean;
  acls: boolean;
  xattrs: number;
  oneFileSystem: number;
  pruneEmptyDirs: boolean;

  checksum: boolean;
  checksumChoice?: string;
  checksumSeed?: number;
  ignoreTimes: boolean;
  sizeOnly: boolean;
  update: boolean;
  existing: boolean;
  ignoreExisting: boolean;
  modifyWindow: number;
  minSize?: number;
  maxSize?: number;
  /** -W: true; --no-W / --no-whole-file: false; unspecified: undefined. */
  wholeFile?: boolean;
  blockSize?: number;
  sparse: boolean;
  inplace: boolean;
  /** 1 = --append, 2 = --append-verify (sent as --append --append). */
  append: number;
  partial: boolean;
  partialDir?: string;
  delayUpdates: boolean;
  tempDir?: string;
  fsync: boolean;
  preallocate: boolean;
  backup: boolean;
  backupDir?: string;
  suffix?: string;
  compareDest: string[];
  copyDest: string[];
  linkDest: string[];
  fuzzy: number;
  mkpath: boolean;

  /** Any --delete* option given (incl. --delete-excluded). */
  deleteMode: boolean;
  /** Explicit timing; undefined for plain --delete (before for proto < 30, during for >= 30). */
  deleteTiming?: DeleteTiming;
  deleteExcluded: boolean;
  deleteMissingArgs: boolean;
  ignoreMissingArgs: boolean;
  /** --max-delete=N; the client sends -1 for 0. undefined = no limit. */
  maxDelete?: number;
  force: boolean;
  ignoreErrors: boolean;
  removeSourceFiles: boolean;

  /** -z (old-style zlib unless negotiated). */
  compress: boolean;
  /** --compress-choice=NAME; --new-compress => 'zlibx'; --old-compress => 'zlib'. */
  compressChoice?: string;
  compressLevel?: number;
  skipCompress?: string;

  filesFrom?: string;
  from0: boolean;
  cvsExclude: boolean;
  useQsort: boolean;
  iconv?: string;
  timeout: number;
  /** --bwlimit, converted to bytes per second (the client's plain number means KiB/s). */
  bwlimit?: number;
  maxAlloc?: number;
  super: boolean;

  /** --open-noatime: open files with O_NOATIME. */
  openNoatime: boolean;
  /** --fake-super: store privileged attributes in xattrs. */
  fakeSuper: boolean;

  /**
   * Canonical long names of every option the client gave (short letters mapped to their long
   * names, aliases to one spelling, e.g. 'delete-after', 'copy-links', 'no-W'), in order, without
   * duplicates. policy/restrict.ts checks these against the grant's allow-list.
   */
  given: string[];

  /** Paths after the "." argument (byte strings). */
  args: string[];
}
