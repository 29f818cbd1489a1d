/**
 * The per-file transfer log (rsyncd's `transfer logging`, config `log.transfers`): one info
 * record per file sent, received or deleted, with what rsyncd's `%o %f %l %i` and the literal and
 * matched data of `%b`/`%c` would say. Off by default; the roles check `ctx.transferLog` before
 * building a record.
 */
import type { Logger } from 'pino';
import { printable } from '../printable.js';

interface TransferRecord {
  op: 'send' | 'recv' | 'del';
  /** Root-relative name (a byte string). */
  path: string;
  /** The file's length (0 for a deletion). */
  length: number;
  /** Data that crossed the wire for this file, and data taken from the basis (send/recv). */
  literal?: number;
  matched?: number;
  /** rsync's %i: `>f+++++++++`, `<f.st......`, `*deleting`. */
  itemize: string;
}

export type TransferLog = (record: TransferRecord) => void;

export function transferLogTo(log: Logger): TransferLog {
  return (r) => log.info({ event: 'transfer.file', ...r, path: printable(r.path) }, 'transfer');
}
