import t from 'tap';
import { fillPadding } from '../../src/patches/ssh2-packets.js';

t.test('padding comes from the pool: exactly the asked range, never the same bytes twice', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const buf = Buffer.alloc(40, 0xee);
    fillPadding(buf, 5, 16);
    if (!buf.subarray(0, 5).equals(Buffer.alloc(5, 0xee)) || !buf.subarray(21).equals(Buffer.alloc(19, 0xee))) {
      t.fail('bytes outside the range were touched');
      break;
    }
    seen.add(buf.subarray(5, 21).toString('hex'));
  }
  t.equal(seen.size, 20_000, '20 000 fills (several pool refills), all different');
  // Bits look random: about half of them set over many fills.
  const many = Buffer.alloc(200);
  let ones = 0;
  for (let i = 0; i < 100; i++) {
    fillPadding(many, 0, 200);
    for (const b of many) ones += b.toString(2).split('1').length - 1;
  }
  t.ok(Math.abs(ones / (100 * 200 * 8) - 0.5) < 0.01, `fraction of one bits ${ones / 160000}`);
});

t.test('large requests go to the system generator', async (t) => {
  const big = Buffer.alloc(4096);
  fillPadding(big, 0, 4096);
  t.ok(big.some((b) => b !== 0), 'a large buffer is filled');
  t.throws(() => fillPadding(Buffer.alloc(8), 6, 300), RangeError, 'out of range is refused');
});
