/**
 * What the two sides must agree on for the destination's block sums to be valid at the source:
 * the protocol range, the strong checksum (with its seed rules) and the token compression. When
 * they cannot agree, the relay falls back to whole-file transfers it can re-checksum itself.
 */
import { canonicalChecksumName, SUPPORTED_CHECKSUMS, type ChecksumName, type ChecksumSpec } from '../protocol/checksum.js';
import { canonicalCompressName, SUPPORTED_COMPRESSIONS, type CompressName } from '../protocol/token.js';
import { CF } from '../engine/context.js';
import type { Side } from './side.js';

/**
 * Protocols 27-29 imply the "md4 old" file checksum (the seed comes first), which no name a newer
 * side can negotiate reproduces; so a side >= 30 facing one < 30 is offered 29 (like --protocol=29).
 */
export function chooseOffers(srcVersion: number, dstVersion: number, max: number): [number, number] {
  const low = Math.min(srcVersion, dstVersion);
  const high = Math.max(srcVersion, dstVersion);
  if (low < 30 && high >= 30) return [Math.min(srcVersion, 29), Math.min(dstVersion, 29)];
  return [max, max];
}

function firstCommon<T extends string>(ours: readonly T[], a: string[], b: string[], canon: (n: string) => T | undefined): T | undefined {
  const has = (list: string[], name: T): boolean => list.some((w) => canon(w) === name);
  return ours.find((n) => n !== 'none' && has(a, n) && has(b, n));
}

/** The checksum a side ends up with when it does not negotiate names. */
function impliedChecksum(side: Side): ChecksumName {
  return side.protocol >= 30 ? 'md5' : 'md4';
}

/** Names to send each side (undefined: that side does not negotiate). */
export function chooseChecksumNames(src: Side, dst: Side): [ChecksumName | undefined, ChecksumName | undefined] {
  if (src.checksumList && dst.checksumList) {
    const common = firstCommon(SUPPORTED_CHECKSUMS, src.checksumList, dst.checksumList, canonicalChecksumName);
    const pick = common ?? 'md5';
    return [pick, pick];
  }
  if (src.checksumList) return [impliedChecksum(dst), undefined];
  if (dst.checksumList) return [undefined, impliedChecksum(src)];
  return [undefined, undefined];
}

export function checksumSpecFor(side: Side, sent: ChecksumName | undefined): ChecksumSpec {
  return {
    name: sent ?? impliedChecksum(side),
    protocol: side.protocol,
    seed: side.seed,
    seedFix: (side.compatFlags & CF.CHKSUM_SEED_FIX) !== 0,
    negotiated: sent !== undefined,
  };
}

/** Equal block sums and equal file sums for the same data (given the same seed). */
export function sameStrongSums(a: ChecksumSpec, b: ChecksumSpec): boolean {
  if (a.name !== b.name || a.seed !== b.seed) return false;
  if (a.name === 'md5' && a.seedFix !== b.seedFix) return false;
  // "md4 old" (implied at 27-29) prefixes the file checksum with the seed; negotiated md4 does not.
  if (a.name === 'md4' && a.negotiated !== b.negotiated) return false;
  return true;
}

const COMPRESS_PREFERENCE = SUPPORTED_COMPRESSIONS.filter((c) => c !== 'none');

/** Compression names to send each side, and what each side will use. */
export function chooseCompression(src: Side, dst: Side): { send: [CompressName | undefined, CompressName | undefined]; use: [CompressName, CompressName] } {
  const s = src.compressList;
  const d = dst.compressList;
  if (s && d) {
    const pick = firstCommon(COMPRESS_PREFERENCE, s, d, canonicalCompressName) ?? 'zlib';
    return { send: [pick, pick], use: [pick, pick] };
  }
  // A side that does not negotiate uses old-style zlib; offer the other side zlib too.
  const has = (list: string[] | undefined, n: CompressName): boolean => !!list?.some((w) => canonicalCompressName(w) === n);
  const sPick = s ? (has(s, 'zlib') ? 'zlib' : (firstCommon(COMPRESS_PREFERENCE, s, s, canonicalCompressName) ?? 'zlib')) : undefined;
  const dPick = d ? (has(d, 'zlib') ? 'zlib' : (firstCommon(COMPRESS_PREFERENCE, d, d, canonicalCompressName) ?? 'zlib')) : undefined;
  return { send: [sPick, dPick], use: [sPick ?? 'zlib', dPick ?? 'zlib'] };
}

/**
 * raw: token bytes are forwarded as they are (same codec, same quirks);
 * transcode: decoded and encoded again (block references survive; needs no basis data);
 * whole: the source is asked for whole files (no block sums) and the relay computes the
 * destination's file checksum from the literal data.
 */
export type TokenMode = 'raw' | 'transcode' | 'whole';

export function chooseTokenMode(
  sums: [ChecksumSpec, ChecksumSpec],
  compress: [CompressName, CompressName],
  protocols: [number, number],
): TokenMode {
  if (!sameStrongSums(sums[0], sums[1])) return 'whole';
  const [cs, cd] = compress;
  // Old-style zlib feeds matched blocks into its history (which the relay never sees), in a
  // protocol-dependent way before 31.
  const zlibQuirkSame = (protocols[0] >= 31) === (protocols[1] >= 31);
  if (cs === cd && (cs !== 'zlib' || zlibQuirkSame)) return 'raw';
  if (cs !== 'zlib' && cd !== 'zlib') return 'transcode';
  return 'whole';
}
