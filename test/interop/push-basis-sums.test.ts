/**
 * Delta pushes whose basis has many blocks (-B100 on a 3 MB file: 30 000 blocks, several of the
 * generator's batches of sums) at every protocol, against a stock rsync server doing the same:
 * the trees, itemized changes and literal/matched data are the reference's. The session budget
 * is 128 KiB, below the 180 KiB the sums take in all: the generator streams them, holding one
 * batch.
 */
import t from 'tap';
import { engineTransport, file, newCase, noise, PROTOCOLS, REF_DELTA, runAndCompare, stats, statNum, type Transport } from './lib/interop.js';

t.jobs = 2;
let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const SIZE = 3_000_000 + 123;
const grant = { limits: { allowDevices: false, allowChown: false, memoryBytes: 128 * 1024 } };

for (const p of PROTOCOLS) {
  t.test(`--protocol=${p}: -B100 delta push onto a 30 000-block basis under a 128 KiB budget`, async (t) => {
    const base = noise(SIZE, 100 + p);
    const c = await newCase(t, tr, 'push', [file('big.bin', base), file('small.txt', 'x\n')]);
    await runAndCompare(t, c, ['-a', `--protocol=${p}`], { grant });
    const edited = Buffer.from(base);
    for (let i = 0; i < 20; i++) edited.write(`EDIT${i}`, Math.floor((SIZE / 20) * i) + 333, 'latin1');
    await c.write('big.bin', Buffer.concat([edited.subarray(0, 1_000_000), Buffer.from('inserted!'), edited.subarray(1_000_000)]));
    const r = await runAndCompare(t, c, ['-a', '-i', '--stats', '-B100', `--protocol=${p}`], { grant, localOnly: REF_DELTA });
    const s = stats(r.remote.stdout);
    const ls = stats(r.local.stdout);
    t.ok(statNum(s, 'Matched data') > SIZE * 0.95, 'most of the file was matched against the basis', s);
    t.equal(statNum(s, 'Literal data'), statNum(ls, 'Literal data'), 'literal data as the reference', { s, ls });
    t.equal(statNum(s, 'Matched data'), statNum(ls, 'Matched data'), 'matched data as the reference');
  });
}
