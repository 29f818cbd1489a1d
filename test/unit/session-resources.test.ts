/**
 * What a session owns is released when it ends: SessionResources reports and clears timers and
 * cancels and awaits child tasks; the sandbox closes the file descriptors it handed out and a
 * later close of one of them is a no-op; an aborted ProtocolWriter wakes the task waiting for
 * the client to read; the memory budget refuses past its limit with exit 22.
 */
import t from 'tap';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { SessionResources, anyLeft } from '../../src/engine/resources.js';
import { MemoryBudget } from '../../src/engine/budget.js';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { RsyncError } from '../../src/protocol/errors.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { tmpDir } from './sandbox-helpers.js';

function openFds(): Set<string> {
  return new Set(readdirSync('/proc/self/fd'));
}

t.test('end() reports and releases timers and tasks', async (t) => {
  const r = new SessionResources();
  let fired = false;
  r.setTimeout(() => (fired = true), 60_000);
  let stop: (err: Error) => void = () => undefined;
  const task = r.task(new Promise<void>((_, reject) => (stop = reject)));
  task.catch(() => undefined);
  r.onCancel((err) => stop(err));
  const left = await r.end(() => 2);
  t.same(left, { fds: 2, timers: 1, tasks: 1 }, 'the leftovers are counted');
  t.ok(anyLeft(left), 'anyLeft says so');
  t.ok(r.cancelled, 'the session is cancelled');
  t.notOk(fired, 'the timer never fires');
  t.notOk(process.getActiveResourcesInfo().includes('Timeout'), 'no timer is left active');
});

t.test('a clean ending reports nothing', async (t) => {
  const r = new SessionResources();
  const timer = r.setTimeout(() => undefined, 60_000);
  r.clearTimer(timer);
  await r.task(Promise.resolve());
  await r.within(Promise.resolve(), 60_000);
  const left = await r.end(() => 0);
  t.notOk(anyLeft(left), JSON.stringify(left));
});

t.test('the sandbox closes the files still open when it closes', async (t) => {
  const root = tmpDir(t);
  writeFileSync(join(root, 'f'), 'data');
  const before = openFds();
  const sb = Sandbox.open(root);
  const { fd } = sb.openRead('f');
  const tmp = sb.createTemp('', 'g');
  t.equal(sb.openFileCount, 2, 'two files open');
  sb.close(tmp.fd);
  t.equal(sb.openFileCount, 1, 'one after closing the temp file');
  sb.close();
  t.same([...openFds()].filter((f) => !before.has(f)), [], 'every descriptor is closed');
  t.doesNotThrow(() => sb.close(fd), 'a late close is a no-op');
});

t.test('an aborted writer wakes the task waiting for the client', async (t) => {
  const sink = new Writable({ highWaterMark: 1, write: () => undefined }); // never drains
  const w = new ProtocolWriter(sink);
  w.bytes(Buffer.alloc(300 * 1024));
  const waiting = w.writable();
  w.abort(new RsyncError('connection unexpectedly closed', 12));
  await t.rejects(waiting, /connection unexpectedly closed/);
  await t.resolves(w.drain(), 'drain() returns at once');
});

t.test('the memory budget refuses past its limit', async (t) => {
  const b = new MemoryBudget(1000);
  b.charge(600, 'x');
  t.throws(() => b.charge(600, 'the block sums'), { code: 22, message: /session memory budget exceeded: the block sums needs 1 KiB more, 1 KiB of 1 KiB/ });
  b.release(600);
  t.doesNotThrow(() => b.charge(600, 'y'));
});
