// Delta through the relay: the destination holds an older copy of a 64 MiB file of which 1 % has
// changed; only the changed blocks may come from the source (counted by the relay's --stats).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../helpers/server.js';
import { bytesReadFromSource, relay, relayCase, sameAsLocal, STOCK, type RelayCase } from './lib/relay.js';

const SIZE = 64 << 20;
const CHANGES = 16;
const CHANGE = Math.ceil(SIZE / 100 / CHANGES); // 16 changes = 1 % of the file

async function deltaCase(t: Test): Promise<RelayCase> {
  const c = await relayCase(t);
  await mkdir(c.dst);
  const big = join(c.src, 'big.bin');
  await writeFile(big, randomBytes(SIZE));
  await writeFile(join(c.src, 'small.txt'), 'unchanged\n');
  await copyFile(big, join(c.dst, 'big.bin'));
  await copyFile(join(c.src, 'small.txt'), join(c.dst, 'small.txt'));
  const fh = await open(big, 'r+');
  for (let i = 0; i < CHANGES; i++) await fh.write(randomBytes(CHANGE), 0, CHANGE, Math.floor((i * SIZE) / CHANGES) + 12345);
  await fh.close();
  await utimes(join(c.dst, 'big.bin'), new Date(1e12), new Date(1e12));
  // The reference run starts from the same old destination.
  const cp = await run('cp', ['-a', c.dst, c.ref]);
  if (cp.code !== 0) throw new Error(cp.stderr);
  return c;
}

const CASES: Array<{ name: string; extra: string[]; protocol: number }> = [
  { name: 'protocol 32 on both sides', extra: [], protocol: 32 },
  { name: 'destination at protocol 29 (md4, both sides offered 29)', extra: ['--dst-rsync-path=rsync --protocol=29'], protocol: 29 },
  { name: '-z (zstd on both sides, tokens forwarded as they are)', extra: ['-z'], protocol: 32 },
  { name: '-z with the destination at protocol 29 (old-style zlib on both sides)', extra: ['-z', '--dst-rsync-path=rsync --protocol=29'], protocol: 29 },
];

for (const k of CASES) {
  t.test(`1 % of a 64 MiB file changed, ${k.name}: under 10 % read from the source`, async (t) => {
    const c = await deltaCase(t);
    const r = await relay(['-a', '--stats', ...k.extra, ...STOCK, `x:${c.src}/`, `y:${c.dst}/`]);
    t.equal(r.code, 0, r.stderr);
    const read = bytesReadFromSource(r.stdout);
    t.ok(read < SIZE / 10, `read ${read} bytes from the source (file: ${SIZE})`);
    t.match(r.stdout, /Matched data: [1-9][\d,]* bytes/);
    await sameAsLocal(t, c, ['-a', `--protocol=${k.protocol}`]);
  });
}

t.test('-W: whole file from the source, checksummed again by the relay', async (t) => {
  const c = await deltaCase(t);
  const r = await relay(['-a', '-W', '--stats', ...STOCK, `x:${c.src}/`, `y:${c.dst}/`]);
  t.equal(r.code, 0, r.stderr);
  t.ok(bytesReadFromSource(r.stdout) > SIZE, 'the whole file crossed');
  await sameAsLocal(t, c, ['-a']);
});
