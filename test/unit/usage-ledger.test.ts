// The usage ledger registry without sessions: the background walk's counting, the state file
// across a "restart" (a second registry), the periodic reconcile and its drift, a reused inode
// under another path, and a walk that is dropped because a session charged the ledger meanwhile.
import t, { type Test } from 'tap';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { UsageLedgers } from '../../src/usage/registry.js';
import { measureSubtree } from '../../src/usage/walk.js';
import { diskUsage } from '../helpers/usage.js';

function fixture(t: Test): { root: string; state: string } {
  const top = mkdtempSync(join(tmpdir(), 'rrsyncd-ledger-unit-'));
  t.teardown(() => rmSync(top, { recursive: true, force: true }));
  const root = join(top, 'root');
  mkdirSync(join(root, 'sub'), { recursive: true });
  writeFileSync(join(root, 'a'), Buffer.alloc(1000));
  linkSync(join(root, 'a'), join(root, 'sub', 'a-link'));
  symlinkSync('x'.repeat(300), join(root, 'sub', 'l'));
  return { root, state: join(top, 'state') };
}

async function open(reg: UsageLedgers, root: string) {
  const sb = Sandbox.open(root);
  try {
    return await reg.open(sb);
  } finally {
    sb.close();
  }
}

t.test('measured by a walk, saved, loaded by the next process without a walk, reconciled with drift', async (t) => {
  const { root, state } = fixture(t);
  const one = new UsageLedgers();
  one.configure({ stateDir: state, reconcileSeconds: 0 });
  const l = await open(one, root);
  t.same({ bytes: l.bytes, entries: l.entries }, { bytes: 1300, entries: 4 }, 'a file and its link once, a 300-byte symlink, a directory');
  t.same({ bytes: l.bytes, entries: l.entries }, diskUsage(root));
  l.charge({ bytes: 10, entries: 1 });
  one.close();
  t.equal(readdirSync(join(state, 'usage')).length, 1, 'one state file');

  const two = new UsageLedgers();
  two.configure({ stateDir: state, reconcileSeconds: 1 });
  t.teardown(() => two.close());
  const again = two.forRoot(root)!;
  t.same({ bytes: again.bytes, entries: again.entries, measuredAt: again.measuredAt }, { bytes: 1310, entries: 5, measuredAt: l.measuredAt }, 'loaded, not walked');
  await two.reconcile(again);
  t.same(again.drift && { bytes: again.drift.bytes, entries: again.drift.entries }, { bytes: -10, entries: -1 }, 'the first reconcile corrects the charge no file backs');
  writeFileSync(join(root, 'sub', 'behind'), Buffer.alloc(777));
  const deadline = Date.now() + 20_000;
  while (again.bytes !== 2077 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.same({ bytes: again.bytes, entries: again.entries }, diskUsage(root), 'the periodic reconcile found the new file');
  t.same(again.drift && { bytes: again.drift.bytes, entries: again.drift.entries }, { bytes: 777, entries: 1 });
});

t.test('a reconcile is dropped while a session writes to the root', async (t) => {
  const { root } = fixture(t);
  const reg = new UsageLedgers();
  t.teardown(() => reg.close());
  const l = await open(reg, root);
  writeFileSync(join(root, 'new'), Buffer.alloc(50));
  l.sessions++;
  await reg.reconcile(l);
  t.equal(l.bytes, 1300, 'not applied while a session runs');
  l.sessions--;
  await reg.reconcile(l);
  t.equal(l.bytes, 1350, 'applied once the root is quiet');
});

t.test('an inode found under another real path is a new root', async (t) => {
  const { root } = fixture(t);
  const reg = new UsageLedgers();
  t.teardown(() => reg.close());
  const l = await open(reg, root);
  const moved = `${root}-moved`;
  renameSync(root, moved);
  writeFileSync(join(moved, 'more'), Buffer.alloc(5));
  const m = await open(reg, moved);
  t.not(m, l, 'a fresh ledger');
  t.same({ bytes: m.bytes, entries: m.entries }, diskUsage(moved));
  t.equal(reg.peek(root), undefined, 'the old path is forgotten');
});

t.test("removing a subtree frees a hard-linked file's data only when all its names go", (t) => {
  const { root } = fixture(t);
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  const sub = measureSubtree(sb, 'sub');
  t.same({ entries: sub.entries, bytes: sub.bytes, freed: sub.freedBytes() }, { entries: 3, bytes: 1300, freed: 300 }, 'a-link keeps nothing: a is outside');
  const all = measureSubtree(sb, '');
  t.equal(all.freedBytes(), 1300, 'both names of a are inside');
  t.end();
});
