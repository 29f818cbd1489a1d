// Push receiver option --timeout=N: keep-alives (empty MSG_DATA) after ceil(N/2) s without output,
// exit 30 "[generator] io timeout after N seconds -- exiting" after N s without input. The real
// client is stopped (SIGSTOP) mid-transfer to make the connection go quiet.
import t from 'tap';
import { spawn } from 'node:child_process';
import { engineTransport, newCase, file, noise, type Transport } from './lib/interop.js';
import { RSYNC } from '../helpers/server.js';
import { compareRun } from './push-opts.helpers.js';
import { IoTimeout } from '../../src/engine/io-timeout.js';
import { SessionResources } from '../../src/engine/resources.js';
import type { SessionContext } from '../../src/engine/context.js';
import { RsyncError } from '../../src/protocol/errors.js';

let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

t.test('--timeout on an active transfer: no false timeout', async (t) => {
  const c = await newCase(t, tr, 'push', [file('a.bin', noise(400_000, 1)), file('b.txt', 'b\n')]);
  await compareRun(t, c, ['-a', '-i', '--timeout=2']);
  await c.write('a.bin', Buffer.concat([noise(400_000, 1).subarray(0, 300_000), Buffer.from('tail')]));
  await compareRun(t, c, ['-a', '-i', '--timeout=1', '--bwlimit=200']);
});

t.test('--timeout=3 with the client stopped for 8 s: the server gives up with exit 30', async (t) => {
  const c = await newCase(t, tr, 'push', [file('a.txt', 'a\n'), file('z.bin', noise(2_000_000, 2))]);
  await c.syncSources();
  const args = c.remoteArgs(['-a', '--timeout=3', '--bwlimit=300']);
  const child = spawn(RSYNC, args, { cwd: c.dir, env: { ...process.env, ...tr.env, RRSYNCD_TEST_ROOT: c.remoteRoot }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const done = new Promise<number>((r) => child.on('close', (code) => r(code ?? -1)));
  await new Promise((r) => setTimeout(r, 1500));
  child.kill('SIGSTOP');
  await new Promise((r) => setTimeout(r, 8000));
  child.kill('SIGCONT');
  const code = await Promise.race([done, new Promise<number>((r) => setTimeout(() => r(-2), 30_000))]);
  if (code === -2) child.kill('SIGKILL');
  t.equal(code, 30, 'client exits with 30 (timeout)', { out });
  t.match(out, /io timeout after \d+ seconds -- exiting/, 'the server said why');
});

/** A session context with just the counters IoTimeout watches. */
function fakeCtx(): { ctx: SessionContext; io: { read: number; keepAlives: number } } {
  const io = { read: 0, keepAlives: 0 };
  const writer = {
    totalWritten: 0,
    isMultiplexed: true,
    keepAlive() {
      io.keepAlives++;
      this.totalWritten += 4;
    },
  };
  const ctx = {
    reader: {
      get totalRead() {
        return io.read;
      },
    },
    writer,
    log: { warn() {}, info() {}, debug() {} },
    resources: new SessionResources(),
  } as unknown as SessionContext;
  return { ctx, io };
}

t.test('IoTimeout: keep-alives every ceil(N/2) s of silence, expiry after N s without input', async (t) => {
  const { ctx, io } = fakeCtx();
  const to = new IoTimeout(ctx, 2);
  to.start();
  t.teardown(() => to.stop());
  // input keeps arriving for 3.5 s: no expiry, but keep-alives since nothing is written
  const feeder = setInterval(() => io.read++, 300);
  const early = await Promise.race([to.expired.then(() => 'expired', () => 'expired'), new Promise((r) => setTimeout(() => r('alive'), 3500))]);
  clearInterval(feeder);
  t.equal(early, 'alive', 'no timeout while input arrives');
  t.ok(io.keepAlives >= 2, `keep-alives sent (${io.keepAlives})`);
  const err = await to.expired.catch((e: unknown) => e);
  t.ok(err instanceof RsyncError, 'expires once input stops');
  t.equal((err as RsyncError).code, 30, 'exit code 30');
  t.match((err as Error).message, /^\[generator\] io timeout after \d seconds -- exiting$/);
});
