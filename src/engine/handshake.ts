/**
 * The session start: protected args (-s), version exchange, compat flags, checksum/compression
 * name negotiation and the checksum seed (docs/protocol.md §2). Nothing here is multiplexed.
 */
import { randomInt } from 'node:crypto';
import type { ProtocolReader } from '../protocol/input.js';
import type { ProtocolWriter } from '../protocol/output.js';
import { ExitCode, ProtocolError, RsyncError } from '../protocol/errors.js';
import {
  canonicalChecksumName,
  SUPPORTED_CHECKSUMS,
  type ChecksumName,
  type ChecksumSpec,
} from '../protocol/checksum.js';
import {
  canonicalCompressName,
  defaultCompressLevel,
  SUPPORTED_COMPRESSIONS,
  type CompressName,
} from '../protocol/token.js';
import type { ServerOptions } from '../policy/server-options.js';
import { CF } from '../protocol/compat.js';

const PROTOCOL_VERSION = 32;
const MIN_PROTOCOL_VERSION = 27;
const MAX_PROTECTED_ARGS = 10000;
const MAX_PROTECTED_BYTES = 1024 * 1024;
const MAX_NEGOTIATION_STRING = 255;

/** -s: the client writes the rest of its argv as NUL-terminated strings, ending with an empty one. */
export async function readProtectedArgs(r: ProtocolReader): Promise<string[]> {
  const args: string[] = [];
  let total = 0;
  let current: number[] = [];
  for (;;) {
    const b = await r.readU8();
    total++;
    if (total > MAX_PROTECTED_BYTES) throw new RsyncError('rrsyncd: protected args too long', ExitCode.SYNTAX);
    if (b !== 0) {
      if (current.length >= 4096) throw new RsyncError('rrsyncd: protected arg too long', ExitCode.SYNTAX);
      current.push(b);
      continue;
    }
    if (current.length === 0) return args;
    args.push(Buffer.from(current).toString('latin1'));
    current = [];
    if (args.length > MAX_PROTECTED_ARGS) throw new RsyncError('rrsyncd: too many protected args', ExitCode.SYNTAX);
  }
}

export async function exchangeVersions(r: ProtocolReader, w: ProtocolWriter): Promise<number> {
  w.i32(PROTOCOL_VERSION);
  w.flush();
  const remote = await r.readI32();
  if (remote < 20 || remote > 40) {
    throw new ProtocolError(`protocol version mismatch -- is your shell clean? (remote version ${remote})`);
  }
  if (remote < MIN_PROTOCOL_VERSION) {
    throw new RsyncError(
      `rrsyncd: protocol version ${remote} is not supported (this server speaks ${MIN_PROTOCOL_VERSION}-${PROTOCOL_VERSION})`,
      ExitCode.PROTOCOL,
    );
  }
  return Math.min(remote, PROTOCOL_VERSION);
}

/** The client's `-e.` letters decide which compat flags we may set (docs/protocol.md §1.4, §2.2). */
export function computeCompatFlags(opts: ServerOptions, allowIncRecurse: boolean): number {
  const info = opts.clientInfo ?? '';
  const has = (c: string): boolean => info.includes(c);
  let flags = CF.SYMLINK_TIMES;
  if (allowIncRecurse && has('i')) flags |= CF.INC_RECURSE;
  if (has('f')) flags |= CF.SAFE_FLIST;
  if (has('x')) flags |= CF.AVOID_XATTR_OPTIM;
  if (has('C')) flags |= CF.CHKSUM_SEED_FIX;
  if (has('I')) flags |= CF.INPLACE_PARTIAL_DIR;
  if (has('v')) flags |= CF.VARINT_FLIST_FLAGS;
  if (has('u')) flags |= CF.ID0_NAMES;
  return flags;
}

export interface Negotiated {
  xferName: ChecksumName;
  fileName: ChecksumName;
  negotiatedChecksum: boolean;
  compress: CompressName;
  compressLevel: number | undefined;
}

function splitChoice(choice: string): [string, string] {
  const [a, b] = choice.split(',', 2);
  return [a, b ?? a];
}

function checksumFromOption(name: string): ChecksumName {
  if (name === 'auto') return 'md5';
  const c = canonicalChecksumName(name);
  if (!c || !SUPPORTED_CHECKSUMS.includes(c)) {
    throw new RsyncError(`rsync: unknown checksum name: ${name}`, ExitCode.UNSUPPORTED);
  }
  return c;
}

function explicitCompression(opts: ServerOptions): CompressName | undefined {
  if (!opts.compressChoice) return undefined;
  const c = canonicalCompressName(opts.compressChoice);
  if (!c || !SUPPORTED_COMPRESSIONS.includes(c)) {
    throw new RsyncError(`rsync: unknown compress name: ${opts.compressChoice}`, ExitCode.UNSUPPORTED);
  }
  return c;
}

/** Pick the first name of the client's list that we support (works with every client version, docs/protocol.md §11 trap 14). */
function pickFromClientList<T extends string>(clientList: string, ours: readonly T[], canon: (n: string) => T | undefined): T | undefined {
  for (const word of clientList.split(/\s+/)) {
    if (!word) continue;
    const c = canon(word);
    if (c && ours.includes(c)) return c;
  }
  return undefined;
}

/**
 * Writes our name lists (when negotiating) and reads the client's. Both sides write first, then
 * read, so there is no ordering deadlock.
 */
export async function negotiate(
  r: ProtocolReader,
  w: ProtocolWriter,
  protocol: number,
  compatFlags: number,
  opts: ServerOptions,
): Promise<Negotiated> {
  const nameExchange = protocol >= 30 && (compatFlags & CF.VARINT_FLIST_FLAGS) !== 0;
  const wantCompress = opts.compress || opts.compressChoice !== undefined;
  const explicitCompress = explicitCompression(opts);
  const exchangeChecksums = nameExchange && !opts.checksumChoice;
  const exchangeCompress = nameExchange && wantCompress && !explicitCompress;

  if (exchangeChecksums) w.vstring(Buffer.from(SUPPORTED_CHECKSUMS.join(' '), 'latin1'));
  if (exchangeCompress) w.vstring(Buffer.from(SUPPORTED_COMPRESSIONS.join(' '), 'latin1'));
  w.flush();

  let xferName: ChecksumName;
  let fileName: ChecksumName;
  let negotiatedChecksum = false;
  if (opts.checksumChoice) {
    const [a, b] = splitChoice(opts.checksumChoice);
    xferName = checksumFromOption(a);
    fileName = checksumFromOption(b);
    negotiatedChecksum = a !== 'auto';
    if (!negotiatedChecksum) xferName = fileName = protocol >= 30 ? 'md5' : 'md4';
  } else if (exchangeChecksums) {
    const list = (await r.readVstring(MAX_NEGOTIATION_STRING)).toString('latin1');
    const pick = pickFromClientList(list, SUPPORTED_CHECKSUMS, canonicalChecksumName);
    if (!pick) throw new RsyncError(`rsync: Failed to negotiate a checksum choice (client: ${list})`, ExitCode.UNSUPPORTED);
    xferName = fileName = pick;
    negotiatedChecksum = true;
  } else {
    xferName = fileName = protocol >= 30 ? 'md5' : 'md4';
  }

  let compress: CompressName = 'none';
  if (explicitCompress) {
    compress = explicitCompress;
  } else if (exchangeCompress) {
    const list = (await r.readVstring(MAX_NEGOTIATION_STRING)).toString('latin1');
    const pick = pickFromClientList(list, SUPPORTED_COMPRESSIONS, canonicalCompressName);
    if (!pick) throw new RsyncError(`rsync: Failed to negotiate a compression choice (client: ${list})`, ExitCode.UNSUPPORTED);
    compress = pick;
  } else if (opts.compress) {
    compress = 'zlib';
  }
  const compressLevel = compress === 'none' ? undefined : (opts.compressLevel ?? defaultCompressLevel(compress));
  return { xferName, fileName, negotiatedChecksum, compress, compressLevel };
}

export function chooseSeed(opts: ServerOptions): number {
  if (opts.checksumSeed !== undefined && opts.checksumSeed !== 0) return opts.checksumSeed | 0;
  return randomInt(1, 0x7fffffff);
}

export function checksumSpecs(n: Negotiated, protocol: number, seed: number, compatFlags: number): { xfer: ChecksumSpec; file: ChecksumSpec } {
  const seedFix = (compatFlags & CF.CHKSUM_SEED_FIX) !== 0;
  const make = (name: ChecksumName): ChecksumSpec => ({ name, protocol, seed, seedFix, negotiated: n.negotiatedChecksum });
  return { xfer: make(n.xferName), file: make(n.fileName) };
}
