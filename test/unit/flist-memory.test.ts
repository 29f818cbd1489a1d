// A session's memory budget charges each file-list entry at least the live heap it holds: the
// receiver decoding a list through its FileLists, the sender walking a real tree through its
// SenderWalker and SendLists, without incremental recursion (the whole list held at once), with
// the options that add to an entry (-H, --checksum) and values that no longer fit V8's small
// integers (a 3 GiB file, a post-2038 mtime). The charge must not be far above either (2×).
// Costs are taken between a small and a large list, so what a run holds anyway cancels out.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeMemoryTree, marginal, measureReceiver, measureSender, type Measured, type Variant } from '../helpers/flist-memory.js';

const RECEIVED = 20_000;
const WALKED = 8_000;

function check(t: Test, m: Measured, what: string): void {
  const per = (x: number): string => (x / m.entries).toFixed(1);
  const text = `${what}: live ${per(m.live)} B/entry, charged ${per(m.charged)} B/entry`;
  t.ok(m.live > 0, `${what}: the list is measured`);
  t.ok(m.charged >= m.live, `${text}: the charge covers it`);
  t.ok(m.charged <= 2 * m.live, `${text}: the charge is not far above it`);
}

function label(role: string, v: Variant): string {
  return `${role} protocol ${v.protocol}${v.hardLinks ? ' -H' : ''}${v.checksum ? ' -c' : ''}${v.owner ? ' -og' : ''}${v.big ? ' (3 GiB, 2103)' : ''}`;
}

t.test('receiver: each entry is charged what it holds', async (t) => {
  await measureReceiver(2000, { protocol: 31, hardLinks: true, checksum: true }); // compile first
  const variants: Variant[] = [
    { protocol: 31, checksum: true },
    { protocol: 31, big: true, owner: true },
    { protocol: 29, hardLinks: true },
  ];
  for (const v of variants) {
    const small = await measureReceiver(RECEIVED / 5, v);
    check(t, marginal(small, await measureReceiver(RECEIVED, v)), label('receiver', v));
  }
});

t.test('sender: each entry walked is charged what it holds', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'flist-memory-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const variants: Variant[] = [{ protocol: 31, big: true }, { protocol: 31, hardLinks: true, checksum: true }];
  for (const [i, v] of variants.entries()) {
    const dir = join(root, String(i));
    makeMemoryTree(dir, WALKED, v);
    await measureSender(dir, v); // compile first (and the tree's inodes are cached)
    const small = await measureSender(dir, v, ['dir-000']); // a quarter of the tree
    check(t, marginal(small, await measureSender(dir, v)), label('sender', v));
  }
});
