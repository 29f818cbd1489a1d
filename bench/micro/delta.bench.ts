/**
 * Micro-benchmark of the delta search and the block-sum builder.
 * Run: npx tsx bench/micro/delta.bench.ts [MiB]
 */
import { randomFillSync } from 'node:crypto';
import { initChecksums, type ChecksumName, type ChecksumSpec } from '../../src/protocol/checksum.js';
import { chooseSumHead } from '../../src/protocol/sumhead.js';
import { BlockSumsBuilder, DeltaMatcher, type DeltaSink } from '../../src/engine/delta.js';
import { hashWasmBinaries } from '../../src/patches/hash-wasm.js';
import { collectBlockSums } from '../../test/helpers/block-sums.js';

const MiB = 1024 * 1024;
const size = Number(process.argv[2] ?? 64) * MiB;
const CHUNK = 256 * 1024;

function spec(name: ChecksumName): ChecksumSpec {
  return { name, protocol: 32, seed: 0x5eed1234, seedFix: true, negotiated: true };
}

function feed(push: (b: Buffer) => void, data: Buffer): void {
  for (let p = 0; p < data.length; p += CHUNK) push(data.subarray(p, Math.min(data.length, p + CHUNK)));
}

/** Best-of-5 MiB/s by CPU time (wall time is meaningless on a shared, loaded box). */
function time(label: string, bytes: number, fn: () => void): void {
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.cpuUsage();
    fn();
    const u = process.cpuUsage(t0);
    runs.push((u.user + u.system) / 1e6);
  }
  runs.sort((a, b) => a - b);
  const best = runs[0];
  const median = runs[2];
  console.log(
    `${label.padEnd(40)} best ${(bytes / MiB / best).toFixed(0).padStart(5)} MiB/s, median ${(bytes / MiB / median).toFixed(0).padStart(5)} MiB/s`,
  );
}

await initChecksums(hashWasmBinaries());
const basis = randomFillSync(Buffer.allocUnsafe(size));
const unrelated = randomFillSync(Buffer.allocUnsafe(size));
const edited = Buffer.from(basis);
// 1 % scattered edits: 1 % of the blocks get one changed byte.
const head = chooseSumHead(size, 31, 16);
for (let b = 0; b < head.count; b += 100) edited[b * head.blength + 17] ^= 0x55;

for (const name of ['xxh128', 'md5', 'md4'] as ChecksumName[]) {
  time(`builder ${name} (blength ${head.blength})`, size, () => {
    const b = new BlockSumsBuilder(head, spec(name), () => undefined);
    feed((c) => b.push(c), basis);
    b.finish();
  });
}
const h700 = chooseSumHead(size, 31, 16, { blockSize: 700 });
time('builder xxh128 (blength 700)', size, () => {
  const b = new BlockSumsBuilder(h700, spec('xxh128'), () => undefined);
  feed((c) => b.push(c), basis);
  b.finish();
});

const sp = spec('xxh128');
const sums = collectBlockSums(head, sp, [basis]);

let literal = 0;
let matched = 0;
const sink: DeltaSink = {
  literal: (d) => {
    literal += d.length;
  },
  match: (_i, d) => {
    matched += d.length;
  },
};
for (const [label, data] of [
  ['search no-match (random vs random)', unrelated],
  ['search all-match (identical)', basis],
  ['search 1 % scattered edits', edited],
] as Array<[string, Buffer]>) {
  time(label, size, () => {
    literal = matched = 0;
    const m = new DeltaMatcher(sums, sp, sink);
    feed((c) => m.push(c), data);
    m.finish();
  });
  console.log(`    literal ${literal}  matched ${matched}`);
}
