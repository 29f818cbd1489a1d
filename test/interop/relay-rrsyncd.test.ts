// rrsyncd as one side (or both) of a relay: its engine through the pipe harness (test/pipe/rsh.sh,
// root RRSYNCD_TEST_ROOT) facing a stock rsync --server, in both directions, and rrsyncd behind
// real ssh (startServer); each destination compared with a direct local rsync.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { buildTree, dir, file, hlink, slink, standardTree } from './lib/interop.js';
import { bytesReadFromSource, LOCAL_RSH, onePercentChanged, PIPE_RSH, relay, relayCase, sameAsLocal, type RelayCase } from './lib/relay.js';
import { run, startServer } from '../helpers/server.js';

const STOCK_SIDE = (side: 'src' | 'dst'): string => `--${side}-rsh=${LOCAL_RSH}`;
const ENGINE_SIDE = (side: 'src' | 'dst'): string => `--${side}-rsh=${PIPE_RSH}`;

/** The pipe harness serves RRSYNCD_TEST_ROOT; the case dir is the root, so names are relative. */
function engineRoot(t: Test, c: RelayCase): void {
  const before = { root: process.env.RRSYNCD_TEST_ROOT, grant: process.env.RRSYNCD_TEST_GRANT };
  process.env.RRSYNCD_TEST_ROOT = c.dir;
  // Two engine sides share the root: without noLock the second would find it locked.
  process.env.RRSYNCD_TEST_GRANT = JSON.stringify({ noLock: true });
  t.teardown(() => {
    for (const [k, v] of [['RRSYNCD_TEST_ROOT', before.root], ['RRSYNCD_TEST_GRANT', before.grant]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

async function copyTree(from: string, to: string): Promise<void> {
  const r = await run('cp', ['-a', from, to]);
  if (r.code !== 0) throw new Error(r.stderr);
}

const TREE = [...standardTree(), file('h1', 'linked'), hlink('h2', 'h1')];

for (const [srcKind, dstKind] of [['engine', 'stock'], ['stock', 'engine'], ['engine', 'engine']] as const) {
  t.test(`new tree -aH, source ${srcKind}, destination ${dstKind}`, async (t) => {
    const c = await relayCase(t);
    engineRoot(t, c);
    await buildTree(c.src, TREE);
    const side = (s: 'src' | 'dst', k: string): string => (k === 'engine' ? ENGINE_SIDE(s) : STOCK_SIDE(s));
    const srcPath = srcKind === 'engine' ? 'src/' : `${c.src}/`;
    const dstPath = dstKind === 'engine' ? 'dst/' : `${c.dst}/`;
    const r = await relay(['-aH', side('src', srcKind), side('dst', dstKind), `x:${srcPath}`, `y:${dstPath}`]);
    t.equal(r.code, 0, r.stderr);
    await sameAsLocal(t, c, ['-aH']);
  });
}

t.test('stock source at protocol 29, rrsyncd destination: --delete -z', async (t) => {
  const c = await relayCase(t);
  engineRoot(t, c);
  await buildTree(c.src, [file('a.txt', 'a'.repeat(10000)), dir('d'), file('d/b', 'b'), slink('l', 'a.txt')]);
  await buildTree(c.dst, [file('old', 'x'), dir('d'), file('d/stale', 's')]);
  await copyTree(c.dst, c.ref);
  const r = await relay(['-avz', '--delete', STOCK_SIDE('src'), '--src-rsync-path=rsync --protocol=29', ENGINE_SIDE('dst'), `x:${c.src}/`, 'y:dst/']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^deleting old$/m);
  await sameAsLocal(t, c, ['-a', '--delete', '--protocol=29']);
});

for (const [srcKind, dstKind] of [['engine', 'stock'], ['stock', 'engine']] as const) {
  t.test(`delta of a 16 MiB file with 1 % changed, source ${srcKind}, destination ${dstKind}`, async (t) => {
    const c = await relayCase(t);
    engineRoot(t, c);
    const size = 16 << 20;
    // (the old copy gets another mtime, so the quick check cannot skip the file)
    await onePercentChanged(c.src, c.dst, 'big', size, 8);
    await copyTree(c.dst, c.ref);
    const side = (s: 'src' | 'dst', k: string): string => (k === 'engine' ? ENGINE_SIDE(s) : STOCK_SIDE(s));
    const srcPath = srcKind === 'engine' ? 'src/' : `${c.src}/`;
    const dstPath = dstKind === 'engine' ? 'dst/' : `${c.dst}/`;
    const r = await relay(['-a', '--stats', side('src', srcKind), side('dst', dstKind), `x:${srcPath}`, `y:${dstPath}`]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /Matched data: [1-9][\d,]* bytes/, 'the old copy was the basis');
    const read = bytesReadFromSource(r.stdout);
    t.ok(read < size / 10, `read ${read} bytes from the source (file: ${size})`);
    await sameAsLocal(t, c, ['-a']);
  });
}

t.test('rrsyncd behind real ssh: first the destination, then the source', async (t) => {
  const srv = await startServer();
  t.teardown(() => srv.cleanup());
  const c = await relayCase(t);
  await buildTree(c.src, standardTree());
  const push = await relay(['-a', STOCK_SIDE('src'), `--dst-rsh=${srv.rsh}`, `x:${c.src}/`, srv.remote('copy/')]);
  t.equal(push.code, 0, push.stderr);
  const pull = await relay(['-a', `--src-rsh=${srv.rsh}`, STOCK_SIDE('dst'), srv.remote('copy/'), `y:${c.dst}/`]);
  t.equal(pull.code, 0, pull.stderr);
  await sameAsLocal(t, c, ['-a']);
  const copy = { ...c, dst: join(srv.root, 'copy') };
  await sameAsLocal(t, copy, ['-a']);
});
