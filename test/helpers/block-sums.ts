/** Every block sum of a basis in one BlockSums (the builder streams them a batch at a time). */
import type { ChecksumSpec } from '../../src/protocol/checksum.js';
import type { BlockSums, SumHead } from '../../src/protocol/sumhead.js';
import { BlockSumsBuilder } from '../../src/engine/delta.js';

/** The sums of `chunks` (basis data in order) under `head`; a short basis is padded with zeros. */
export function collectBlockSums(head: SumHead, spec: ChecksumSpec, chunks: Iterable<Buffer>): BlockSums {
  const sum1 = new Uint32Array(head.count);
  const sum2 = Buffer.alloc(head.count * head.s2length);
  let done = 0;
  const b = new BlockSumsBuilder(head, spec, (s1, s2) => {
    sum1.set(s1, done);
    s2.copy(sum2, done * head.s2length);
    done += s1.length;
  });
  for (const c of chunks) b.push(c);
  b.finish();
  if (done !== head.count) throw new Error(`the builder gave ${done} sums for ${head.count} blocks`);
  return { head, sum1, sum2 };
}
