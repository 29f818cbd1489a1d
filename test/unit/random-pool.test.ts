import t from 'tap';
import crypto from 'node:crypto';
import { randomPoolActive } from '../../src/patches/ssh2-random.js';

t.test('small fills come from the pool: exactly the asked range, never the same bytes twice', async (t) => {
  t.equal(randomPoolActive, true, 'installed before ssh2 loaded');
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const buf = Buffer.alloc(40, 0xee);
    t.equal(crypto.randomFillSync(buf, 5, 16), buf);
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
    crypto.randomFillSync(many, 0, 200);
    for (const b of many) ones += b.toString(2).split('1').length - 1;
  }
  t.ok(Math.abs(ones / (100 * 200 * 8) - 0.5) < 0.01, `fraction of one bits ${ones / 160000}`);
});

t.test('large and invalid requests behave as the system call does', async (t) => {
  const big = Buffer.alloc(4096);
  crypto.randomFillSync(big);
  t.ok(big.some((b) => b !== 0), 'a large buffer is filled');
  const view = new Uint32Array(8);
  crypto.randomFillSync(view);
  t.ok(view.some((v) => v !== 0), 'typed arrays other than bytes work');
  t.throws(() => crypto.randomFillSync(Buffer.alloc(8), 6, 4), RangeError, 'out of range is refused');
  t.throws(() => crypto.randomFillSync(Buffer.alloc(8), -1, 2), RangeError);
});
