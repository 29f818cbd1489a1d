// Every change a push makes to the destination passes the destination gateway: a recorder added
// to the gateway sees each path that a tree diff shows as added, removed or changed, for a real
// client's push with --delete --backup -H --partial-dir, at protocols 29 to 32.
import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { snapshotTreeSync, treeChanges, type TreeChanges, type TreeSnapshot } from '../helpers/tree.js';
import { join } from 'node:path';
import { newCase, file, dir, slink, hlink, noise, type Node, type Transport } from './lib/interop.js';
import { startEngineHost } from './lib/engine-host.js';
import type { Change } from '../../src/gateway/index.js';

const OLD = { sec: 1_500_000_000, nsec: 42_000 };
const DATA = noise(300_000, 7);
const changedData = (): Buffer => {
  const b = Buffer.from(DATA);
  b.write('changed in the middle', 150_000);
  return b;
};

const src = (): Node[] => [
  file('same.txt', 'same\n', { mtime: OLD }),
  file('changed.bin', changedData()),
  file('new.txt', 'new\n'),
  file('times.txt', 'same data, new time\n'),
  file('h1', 'hard-linked\n'),
  hlink('h2', 'h1'),
  file('sub/deep/x', 'x\n'),
  slink('link', 'new.txt'),
  file('was-dir', 'a file where a directory was\n'),
  file('resumed.bin', DATA),
];
const dst = (): Node[] => [
  file('same.txt', 'same\n', { mtime: OLD }),
  file('changed.bin', DATA, { mtime: OLD }),
  file('times.txt', 'same data, new time\n', { mtime: OLD }),
  file('gone.txt', 'deleted, kept as gone.txt~\n'),
  file('sub/gone-too', 'deleted\n'),
  dir('was-dir'),
  slink('link', 'same.txt'),
  // An interrupted earlier transfer left part of resumed.bin in the partial dir.
  file('.p/resumed.bin', DATA.subarray(0, 100_000)),
];

/** Root-relative paths (under `prefix`) that were added, removed or changed in any way. */
function diff(before: TreeSnapshot, after: TreeSnapshot, prefix: string): TreeChanges {
  const key = (rel: string): string => (rel === '.' ? prefix : `${prefix}/${rel}`);
  const c = treeChanges(before, after);
  return { added: c.added.map(key), removed: c.removed.map(key), changed: c.changed.map(key) };
}

const ARGS = ['-a', '--delete', '--backup', '-H', '--partial-dir=.p'];

for (const protocol of [30, 31, 32, 29]) {
  t.test(`a recording gateway sees every change of a push: ${ARGS.join(' ')} --protocol=${protocol}`, async (t) => {
    const changes: Change[] = [];
    const host = await startEngineHost({ changePolicies: [{ after: (c) => void changes.push({ ...c }) }] });
    t.teardown(() => host.close());
    const tr: Transport = { kind: 'engine', rsh: host.rsh, host: 'x', env: host.env };
    const c = await newCase(t, tr, 'push', src());
    await c.seedDst(dst());
    const dstDir = c.remoteDst();
    const before = snapshotTreeSync(dstDir);
    const r = await c.runRemote([...ARGS, `--protocol=${protocol}`]);
    t.equal(r.code, 0, 'the push succeeded', { stderr: r.stderr });
    const after = snapshotTreeSync(dstDir);
    const d = diff(before, after, 'dst');
    const touched = (p: string): boolean => changes.some((ch) => ch.path === p || ch.from === p);
    const removedBy = (p: string): boolean => changes.some((ch) => (ch.op === 'delete' && ch.path === p) || (ch.op === 'rename' && ch.from === p));
    t.ok(d.added.length > 0 && d.removed.length > 0 && d.changed.length > 0, 'the push added, removed and changed entries', d);
    for (const p of d.added) t.ok(touched(p), `added ${p}: recorded`);
    for (const p of d.removed) t.ok(removedBy(p), `removed ${p}: recorded as a deletion or a rename away`);
    for (const p of d.changed) t.ok(touched(p), `changed ${p}: recorded`);
    // What the options make the server do, seen as such:
    const has = (pred: (c: Change) => boolean, what: string): void => void t.ok(changes.some(pred), what);
    has((ch) => ch.purpose === 'make-room' && ch.op === 'delete' && ch.path === 'dst/was-dir', 'a directory makes room for a file');
    has((ch) => ch.purpose === 'backup' && ch.op === 'rename' && ch.from === 'dst/sub/gone-too', '--delete --backup: a deleted file becomes its backup');
    has((ch) => ch.purpose === 'backup' && ch.path === 'dst/changed.bin~', '--backup of a replaced file');
    has((ch) => ch.op === 'link' && (ch.path === 'dst/h1' || ch.path === 'dst/h2' || ch.from === 'dst/h1' || ch.from === 'dst/h2'), '-H: the second name is a hard link');
    has(
      (ch) => (ch.op === 'rename' && ch.from === 'dst/.p/resumed.bin') || (ch.op === 'delete' && ch.path === 'dst/.p/resumed.bin'),
      '--partial-dir: the partial file was the basis (moved into place, or removed once used)',
    );
    has((ch) => ch.op === 'symlink', 'the symlink is made');
    t.ok(existsSync(join(dstDir, 'gone.txt~')), 'the deleted file was kept as its backup');
    t.equal(readFileSync(join(dstDir, 'resumed.bin')).length, DATA.length, 'the resumed file is whole');
  });
}
