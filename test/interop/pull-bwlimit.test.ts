// --bwlimit on a pull: rsync applies it where data is written, so the client forwards it to the
// server's sender (io.c sleep_for_bwlimit), which must keep its average output under the limit.
// Only a lower bound on the duration is checked (load can only make a run slower).
import t from 'tap';
import { file, newCase, noise, PIPE_RSH, type Transport } from './lib/interop.js';

const tr: Transport = { kind: 'pipe', rsh: PIPE_RSH, host: 'x', env: {} };
const SIZE = 2 * 1024 * 1024;

for (const proto of [29, 32]) {
  t.test(`pull --bwlimit=1000 at protocol ${proto}: the sender keeps under 1000 KiB/s`, async (t) => {
    const c = await newCase(t, tr, 'pull', [file('big', noise(SIZE, proto)), file('small', 'x\n')]);
    const args = ['-a', '--bwlimit=1000', `--protocol=${proto}`];
    await c.syncSources();
    const started = Date.now();
    const remote = await c.runRemote(args, { keepSources: true });
    const elapsedMs = Date.now() - started;
    const local = await c.runLocal(args, { keepSources: true });
    const r = { remote, local, remoteArgs: remote.args, localArgs: local.args };
    c.sameExit(t, r, 0);
    // 2 MiB at 1000 KiB/s is 2.05 s; allow the first burst (a second's worth at most)
    t.ok(elapsedMs >= 1500, `took ${elapsedMs} ms, at least the 1.5 s the limit requires`);
    await c.compare(t);
  });
}

t.test('pull without --bwlimit is not throttled by the sender (the same 2 MiB)', async (t) => {
  const c = await newCase(t, tr, 'pull', [file('big', noise(SIZE, 7))]);
  const r = await c.run(['-a']);
  c.sameExit(t, r, 0);
  await c.compare(t);
});
