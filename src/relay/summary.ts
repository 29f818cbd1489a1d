/**
 * The end-of-run lines: rsync's --stats totals (with the relay's two byte counts) and the -v
 * "sent … received …" summary. "Sent" is what went to the destination, "received" what came
 * from the source.
 */
import type { RelayOptions } from './args.js';
import type { ListSummary } from './file-list.js';
import type { TransferTotals } from './transfer.js';
import { formatCount, type Terminal } from './messages.js';

export interface RunFigures {
  summary: ListSummary;
  totals: TransferTotals;
  flistBytes: number;
  readFromSource: number;
  writtenToDestination: number;
  seconds: number;
}

function kinds(parts: Array<[string, number]>): string {
  const shown = parts.filter(([, n]) => n > 0).map(([k, n]) => `${k}: ${formatCount(n)}`);
  return shown.length ? ` (${shown.join(', ')})` : '';
}

export function printSummary(term: Terminal, o: RelayOptions, f: RunFigures): void {
  const { summary: s, totals: t } = f;
  if (o.stats) {
    const d = t.deleted;
    const deleted = d ? d.files + d.dirs + d.symlinks + d.devices + d.specials : 0;
    const lines = [
      '',
      `Number of files: ${formatCount(s.files)}${kinds([['reg', s.regular], ['dir', s.dirs], ['link', s.links]])}`,
      `Number of deleted files: ${formatCount(deleted)}${d ? kinds([['reg', d.files], ['dir', d.dirs], ['link', d.symlinks], ['dev', d.devices], ['special', d.specials]]) : ''}`,
      `Number of regular files transferred: ${formatCount(t.filesTransferred)}`,
      `Total file size: ${formatCount(s.totalSize)} bytes`,
      `Total transferred file size: ${formatCount(t.transferredSize)} bytes`,
      `Literal data: ${formatCount(t.literal)} bytes`,
      `Matched data: ${formatCount(t.matched)} bytes`,
      `File list size: ${formatCount(f.flistBytes)}`,
      `Total bytes sent: ${formatCount(f.writtenToDestination)}`,
      `Total bytes received: ${formatCount(f.readFromSource)}`,
      `Bytes read from the source: ${formatCount(f.readFromSource)}`,
      `Bytes written to the destination: ${formatCount(f.writtenToDestination)}`,
      '',
    ];
    term.out(`${lines.join('\n')}\n`);
  }
  if (o.verbose || o.stats) {
    const moved = f.readFromSource + f.writtenToDestination;
    const rate = moved / Math.max(0.001, f.seconds);
    const speedup = moved > 0 ? s.totalSize / moved : 0;
    term.out(
      `sent ${formatCount(f.writtenToDestination)} bytes  received ${formatCount(f.readFromSource)} bytes  ${rate.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })} bytes/sec\n` +
        `total size is ${formatCount(s.totalSize)}  speedup is ${speedup.toFixed(2)}${o.dryRun ? ' (DRY RUN)' : ''}\n`,
    );
  }
}
