/**
 * Live heap bytes per file-list entry for each role, without incremental recursion (the case a
 * session's memory budget bounds; see ENTRY_BYTES in src/engine/budget.ts).
 * Run: npx tsx bench/micro/flist-memory.bench.ts receiver|sender [entries] [protocol] [H] [o]
 * (H: -H, pairs of hard links; o: -o -g with id names; c: --checksum; big: one 3 GiB file with a 2103 mtime). One role and variant per process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeMemoryTree, measureReceiver, measureSender, type Variant } from '../../test/helpers/flist-memory.js';

const [role = 'receiver', count = '200000', proto = '31', ...flags] = process.argv.slice(2);
const n = Number(count);
const v: Variant = { protocol: Number(proto), hardLinks: flags.includes('H'), owner: flags.includes('o'), checksum: flags.includes('c'), big: flags.includes('big') };
let m;
if (role === 'sender') {
  const root = mkdtempSync(join(tmpdir(), 'flist-memory-'));
  try {
    makeMemoryTree(root, n, v);
    m = await measureSender(root, v);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
} else {
  m = await measureReceiver(n, v);
}
const per = (x: number): string => (x / m.entries).toFixed(1);
console.log(
  `${role} proto ${v.protocol}${v.hardLinks ? ' -H' : ''}${v.owner ? ' -og' : ''}${v.checksum ? ' -c' : ''}${v.big ? ' (3 GiB file, 2103 mtime)' : ''}: ${m.entries} entries, ` +
    `live ${per(m.live)} B/entry, charged ${per(m.charged)} B/entry (ratio ${(m.live / m.charged).toFixed(2)})`,
);
