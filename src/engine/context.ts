/**
 * Everything the roles need to know about one session once the handshake is over.
 */
import type { Logger } from 'pino';
import type { ProtocolReader } from '../protocol/input.js';
import type { ProtocolWriter } from '../protocol/output.js';
import type { ChecksumSpec } from '../protocol/checksum.js';
import type { CompressName } from '../protocol/token.js';
import type { ServerOptions } from '../policy/server-options.js';
import type { Grant } from '../policy/grant.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { SessionResources } from './resources.js';
import type { MemoryBudget } from './budget.js';
import type { Gateway } from '../gateway/gateway.js';
import type { FlistOptions } from '../protocol/flist/entry.js';
import type { TransferLog } from './transfer-log.js';
import { digestLength } from '../protocol/checksum.js';
import { CF } from '../protocol/compat.js';

export interface SessionContext {
  protocol: number;
  compatFlags: number;
  seed: number;
  /** Block and whole-file transfer checksum. */
  xferSum: ChecksumSpec;
  /** --checksum file-list checksum. */
  fileSum: ChecksumSpec;
  compress: CompressName;
  compressLevel: number | undefined;
  opts: ServerOptions;
  grant: Grant;
  /** Reads of the tree (the roles' read access). */
  sandbox: Sandbox;
  /** Every change of the tree. */
  gateway: Gateway;
  reader: ProtocolReader;
  writer: ProtocolWriter;
  log: Logger;
  /** Timers, child tasks and cancellation of this session (ended with it). */
  resources: SessionResources;
  /** Memory the client's requests may make this session hold (block sums, file lists, id lists). */
  budget: MemoryBudget;
  /** io_error bits collected on our side (1 general, 2 vanished, 4 delete limit). */
  ioError: number;
  /** Set when a per-file error was reported (exit 23 at the end). */
  hadTransferError: boolean;
  /** Sender: a root-relative directory never listed nor sent (a revisions root's staging place). */
  hiddenPath?: string;
  /** What the role did, for the exec summary record and the metrics. */
  stats?: { files?: number; deletions?: number; literalBytes?: number; matchedBytes?: number };
  /** log.transfers: one record per file sent, received or deleted (absent: off). */
  transferLog?: TransferLog;
}

export function incRecurse(ctx: SessionContext): boolean {
  return (ctx.compatFlags & CF.INC_RECURSE) !== 0;
}

/** The file-list dialect both roles use, from the negotiated flags and the client's options. */
export function flistOptionsFor(ctx: SessionContext): FlistOptions {
  const o = ctx.opts;
  return {
    protocol: ctx.protocol,
    varintFlags: (ctx.compatFlags & CF.VARINT_FLIST_FLAGS) !== 0,
    safeFlist: (ctx.compatFlags & CF.SAFE_FLIST) !== 0 || ctx.protocol >= 31,
    incRecurse: incRecurse(ctx),
    id0Names: (ctx.compatFlags & CF.ID0_NAMES) !== 0,
    links: o.links,
    owner: o.owner,
    group: o.group,
    devices: o.devices,
    specials: o.specials,
    hardLinks: o.hardLinks > 0,
    atimes: o.atimes > 0,
    crtimes: o.crtimes,
    numericIds: o.numericIds,
    checksumLength: o.checksum ? digestLength(ctx.fileSum.name) : 0,
    relative: o.relative,
    missingArgs: o.deleteMissingArgs,
  };
}
