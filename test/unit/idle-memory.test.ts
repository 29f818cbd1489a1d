// IdleMemoryRelease: the GC and malloc_trim run once the server has been idle for the delay, never
// while a session runs, once per idle period, and not at all without the native addon. A fake
// clock drives the timers; the real addon's calls are exercised last (no memory figures asserted).
import t from 'tap';
import { nativeBinding } from '../../src/native.js';
import { IdleMemoryRelease, type MemoryReleaser } from '../../src/ssh/idle-memory.js';

class FakeClock {
  now = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  set = (fn: () => void, ms: number): unknown => {
    const id = this.next++;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  };
  clear = (handle: unknown): void => {
    this.timers.delete(handle as number);
  };
  get pending(): number {
    return this.timers.size;
  }
  advance(ms: number): void {
    this.now += ms;
    for (const [id, timer] of [...this.timers].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at > this.now || !this.timers.has(id)) continue;
      this.timers.delete(id);
      timer.fn();
    }
  }
}

function setup(native: MemoryReleaser | null = null) {
  const calls: string[] = [];
  const releaser: MemoryReleaser = native ?? {
    lowMemoryNotification: () => calls.push('gc'),
    releaseFreedMemory: () => calls.push('trim'),
  };
  const clock = new FakeClock();
  let running = 0;
  const idle = new IdleMemoryRelease(releaser, { isIdle: () => running === 0, delayMs: 5000, setTimer: clock.set, clearTimer: clock.clear });
  const start = (): void => {
    running++;
    idle.sessionStarted();
  };
  const end = (): void => {
    running--;
    idle.sessionEnded();
  };
  return { calls, clock, idle, start, end };
}

t.test('the last session ending releases after the quiet delay: GC first, then malloc_trim', (t) => {
  const { calls, clock, start, end } = setup();
  start();
  end();
  clock.advance(4999);
  t.same(calls, [], 'not before the delay');
  clock.advance(1);
  t.same(calls, ['gc', 'trim']);
  clock.advance(60_000);
  t.same(calls, ['gc', 'trim'], 'once per idle period');
  t.end();
});

t.test('nothing is released while a session runs', (t) => {
  const { calls, clock, start, end } = setup();
  start();
  start();
  end();
  t.equal(clock.pending, 0, 'one session still running: nothing scheduled');
  clock.advance(10_000);
  start();
  end();
  t.equal(clock.pending, 0);
  end();
  clock.advance(3000);
  start();
  t.equal(clock.pending, 0, 'a session starting cancels the pending release');
  clock.advance(10_000);
  t.same(calls, [], 'no GC with a session running');
  end();
  clock.advance(5000);
  t.same(calls, ['gc', 'trim'], 'released once everything ended');
  t.end();
});

t.test('debounced: sessions ending in quick succession give one release after the last', (t) => {
  const { calls, clock, start, end } = setup();
  for (let i = 0; i < 10; i++) {
    start();
    end();
    clock.advance(1000);
  }
  t.same(calls, [], 'each end restarts the wait');
  clock.advance(4000);
  t.same(calls, ['gc', 'trim']);
  start();
  end();
  clock.advance(5000);
  t.same(calls, ['gc', 'trim', 'gc', 'trim'], 'a new idle period after new work releases again');
  t.end();
});

t.test('a `true` probe or a refused exec alone schedules nothing; after a transfer it still may', (t) => {
  const { calls, clock, idle } = setup();
  idle.sessionStarted();
  idle.sessionEnded(false);
  t.equal(clock.pending, 0, 'nothing ran: nothing to give back');
  idle.sessionStarted();
  idle.sessionEnded(true);
  idle.sessionStarted();
  idle.sessionEnded(false);
  t.equal(clock.pending, 1, 'the probe after a transfer re-arms the pending release');
  clock.advance(5000);
  t.same(calls, ['gc', 'trim']);
  idle.sessionStarted();
  idle.sessionEnded(false);
  clock.advance(60_000);
  t.same(calls, ['gc', 'trim'], 'probes after the release cost no further GC');
  t.end();
});

t.test('a release found busy at its time waits for the next end', (t) => {
  const calls: string[] = [];
  const clock = new FakeClock();
  let idleNow = true;
  const idle = new IdleMemoryRelease(
    { lowMemoryNotification: () => calls.push('gc'), releaseFreedMemory: () => calls.push('trim') },
    { isIdle: () => idleNow, delayMs: 100, setTimer: clock.set, clearTimer: clock.clear },
  );
  idle.sessionEnded();
  idleNow = false; // a session started without sessionStarted (belt and braces)
  clock.advance(100);
  t.same(calls, []);
  idleNow = true;
  idle.sessionEnded();
  clock.advance(100);
  t.same(calls, ['gc', 'trim']);
  t.end();
});

t.test('close() cancels and stops scheduling', (t) => {
  const { calls, clock, idle, start, end } = setup();
  start();
  end();
  idle.close();
  t.equal(clock.pending, 0);
  start();
  end();
  t.equal(clock.pending, 0);
  clock.advance(10_000);
  t.same(calls, []);
  t.end();
});

t.test('without the native addon nothing is scheduled', (t) => {
  const clock = new FakeClock();
  const idle = new IdleMemoryRelease(null, { isIdle: () => true, delayMs: 10, setTimer: clock.set, clearTimer: clock.clear });
  idle.sessionEnded();
  t.equal(clock.pending, 0);
  const partial = new IdleMemoryRelease({}, { isIdle: () => true, delayMs: 10, setTimer: clock.set, clearTimer: clock.clear });
  partial.sessionEnded();
  t.doesNotThrow(() => clock.advance(10), 'an addon built before lowMemoryNotification: the calls it lacks are skipped');
  t.end();
});

t.test('the real addon: both calls run on the main thread', { skip: nativeBinding?.lowMemoryNotification ? false : 'native addon not built (or RRSYNCD_NATIVE=off)' }, (t) => {
  const fired: string[] = [];
  const idle = new IdleMemoryRelease(
    {
      lowMemoryNotification: () => (nativeBinding!.lowMemoryNotification!(), fired.push('gc')),
      releaseFreedMemory: () => (nativeBinding!.releaseFreedMemory!(), fired.push('trim')),
    },
    { isIdle: () => true, delayMs: 1 },
  );
  idle.sessionEnded();
  setTimeout(() => {
    t.same(fired, ['gc', 'trim']);
    t.end();
  }, 50);
});
