// A side that disappears mid-transfer: the relay names it, shuts the other side down through EOF
// (a stock receiver then removes its temp file, as with a direct rsync) and exits non-zero.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildTree, file } from './lib/interop.js';
import { relay, relayCase, STOCK } from './lib/relay.js';

t.test('the source is killed in the middle of a new 64 MiB file', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.src, [file('a.txt', 'first'), file('big.bin', randomBytes(64 << 20))]);
  await buildTree(c.dst, [file('existing.txt', 'keep me')]);
  // 8 MB/s from the source: the file needs ~8 s, the source is killed after 2.
  const started = Date.now();
  const r = await relay(['-a', ...STOCK, '--src-rsync-path=timeout -s KILL 2 rsync --bwlimit=8000', `x:${c.src}/`, `y:${c.dst}/`]);
  t.ok(Date.now() - started < 30_000, 'the relay ends promptly');
  t.not(r.code, 0, 'non-zero exit');
  t.match(r.stderr, /rrsyncd relay: connection to the source \(x:.*\) closed unexpectedly/);
  const names = readdirSync(c.dst).sort();
  t.same(names, ['a.txt', 'existing.txt'], 'no big.bin and no temp file under the destination');
  t.equal(readFileSync(join(c.dst, 'existing.txt'), 'utf8'), 'keep me');
});

t.test('the destination is killed: the source is shut down and the run fails', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.src, [file('big.bin', randomBytes(64 << 20))]);
  const r = await relay([
    '-a',
    ...STOCK,
    '--src-rsync-path=rsync --bwlimit=8000',
    '--dst-rsync-path=timeout -s KILL 2 rsync',
    `x:${c.src}/`,
    `y:${c.dst}/`,
  ]);
  t.not(r.code, 0, 'non-zero exit');
  t.match(r.stderr, /rrsyncd relay: connection to the destination \(y:.*\) closed unexpectedly/);
  // SIGKILL leaves the receiver's temp file (.big.bin.XXXXXX), as with a direct rsync; never the final name.
  t.notOk(readdirSync(c.dst).includes('big.bin'), 'no big.bin under its final name');
});

t.test('a file that vanishes before the source sends it: warning, exit 24, the rest arrives', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.src, [file('a-big.bin', randomBytes(16 << 20)), file('b-gone.txt', 'soon gone'), file('c.txt', 'c')]);
  await buildTree(c.dst, []);
  const running = relay(['-a', ...STOCK, '--src-rsync-path=rsync --bwlimit=4000', `x:${c.src}/`, `y:${c.dst}/`]);
  // Once the destination is writing a-big.bin, the list is out and b-gone.txt not yet opened.
  for (let i = 0; i < 400 && !readdirSync(c.dst).some((n) => n.startsWith('.a-big.bin.')); i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  rmSync(join(c.src, 'b-gone.txt'));
  const r = await running;
  t.equal(r.code, 24, r.stderr);
  t.match(r.stderr, /file has vanished: .*b-gone\.txt/);
  t.same(readdirSync(c.dst).sort(), ['a-big.bin', 'c.txt']);
  t.same(readFileSync(join(c.dst, 'a-big.bin')), readFileSync(join(c.src, 'a-big.bin')));
});

t.test('a missing source directory: rsync\'s message, exit 23, the destination left as it was', async (t) => {
  const c = await relayCase(t);
  await buildTree(c.dst, [file('existing.txt', 'keep me')]);
  const r = await relay(['-a', '--delete', ...STOCK, `x:${c.dir}/missing/`, `y:${c.dst}/`]);
  t.equal(r.code, 23, r.stderr);
  t.match(r.stderr, /change_dir .*missing.* failed: No such file or directory/);
  t.same(readdirSync(c.dst), ['existing.txt'], 'nothing deleted after a source I/O error');
});
