/**
 * The file list, read from the source in its dialect and written to the destination in the
 * destination's (protocol, varint flags, hard-link encoding, --checksum sums), plus the index maps
 * between the two sorted lists: each side sorts and numbers the list its own way.
 */
import { digestLength, type ChecksumSpec } from '../protocol/checksum.js';
import { FlistReader, FlistWriter, isDir, isRegular, isSymlink, sortFileList, type FileEntry, type FlistOptions } from '../protocol/flist.js';
import { ProtocolError } from '../protocol/errors.js';
import { CF } from '../engine/context.js';
import type { RelayOptions } from './args.js';
import type { Side } from './side.js';

export function flistOptionsFor(side: Side, o: RelayOptions, fileSum: ChecksumSpec): FlistOptions {
  return {
    protocol: side.protocol,
    varintFlags: (side.compatFlags & CF.VARINT_FLIST_FLAGS) !== 0,
    safeFlist: (side.compatFlags & CF.SAFE_FLIST) !== 0 || side.protocol >= 31,
    incRecurse: false,
    id0Names: (side.compatFlags & CF.ID0_NAMES) !== 0,
    links: o.links,
    owner: o.owner,
    group: o.group,
    devices: o.devices,
    specials: o.specials,
    hardLinks: o.hardLinks,
    atimes: false,
    crtimes: false,
    numericIds: o.numericIds,
    checksumLength: o.checksum ? digestLength(fileSum.name) : 0,
    relative: false,
  };
}

export interface RelayedList {
  /** Source's sorted list (index = source ndx). */
  srcSorted: FileEntry[];
  /** Destination's sorted list (index = destination ndx). */
  dstSorted: FileEntry[];
  srcToDst: Int32Array;
  dstToSrc: Int32Array;
  ioError: number;
  /** Bytes of the list as the source sent it. */
  wireBytes: number;
}

export interface ListSummary {
  files: number;
  regular: number;
  dirs: number;
  links: number;
  totalSize: number;
}

export function summarize(entries: FileEntry[]): ListSummary {
  const s: ListSummary = { files: 0, regular: 0, dirs: 0, links: 0, totalSize: 0 };
  for (const e of entries) {
    if (e.inactive) continue;
    s.files++;
    if (isRegular(e)) s.regular++;
    else if (isDir(e)) s.dirs++;
    else if (isSymlink(e)) s.links++;
    s.totalSize += isDir(e) ? 0 : e.size;
  }
  return s;
}

/**
 * Reads the whole list from `src` (entries, id lists, protocol < 30 trailing io_error) and writes
 * it to `dst`. Hard links: a list read at >= 30 (leader indexes) is only ever written at >= 30
 * (chooseOffers keeps both sides on the same side of 30), one read below 30 carries (dev, ino)
 * pairs, which the writer turns into leader indexes when needed. `sameFileSums`: the --checksum sums mean the same on both sides (else they are
 * sent as zeros, and the destination transfers every file it cannot tell apart).
 */
export async function relayFileList(src: Side, dst: Side, srcOpts: FlistOptions, dstOpts: FlistOptions, sameFileSums: boolean): Promise<RelayedList> {
  const r = src.reader;
  const before = r.totalRead;
  const reader = new FlistReader(srcOpts);
  const { entries, ioError: endError } = await reader.readList(r, 0, (a) => entries[a]);
  let ioError = endError;
  let ids = { users: new Map<number, string>(), groups: new Map<number, string>() };
  if ((srcOpts.owner || srcOpts.group) && !srcOpts.numericIds) ids = await reader.readIdLists(r);
  if (src.protocol < 30) ioError |= await reader.readTrailingIoError(r);

  const w = dst.writer;
  const writer = new FlistWriter(dstOpts);
  const dstEntries = entries.map((e) => ({ ...e }));
  for (const e of dstEntries) {
    if (!sameFileSums) e.checksum = undefined;
    writer.writeEntry(w, e);
    await w.writable();
  }
  writer.writeEnd(w, ioError);
  if ((dstOpts.owner || dstOpts.group) && !dstOpts.numericIds) writer.writeIdLists(w, ids.users, ids.groups);
  if (dst.protocol < 30) writer.writeTrailingIoError(w, ioError);
  w.flush();

  const srcSorted = sortFileList(entries, src.protocol, 0);
  const dstSorted = sortFileList(dstEntries, dst.protocol, 0);
  const n = entries.length;
  const srcToDst = new Int32Array(n).fill(-1);
  const dstToSrc = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const s = entries[i]!;
    const d = dstEntries[i]!;
    if (s.arrival !== i || d.arrival !== i) throw new ProtocolError('file list arrival order is inconsistent');
    srcToDst[s.ndx] = d.ndx;
    dstToSrc[d.ndx] = s.ndx;
  }
  return { srcSorted, dstSorted, srcToDst, dstToSrc, ioError, wireBytes: r.totalRead - before };
}
