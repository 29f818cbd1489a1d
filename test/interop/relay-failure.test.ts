// A side that disappears mid-transfer: the relay names it, shuts the other side down through EOF
// (a stock receiver then removes its temp file, as with a direct rsync) and exits non-zero.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
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
