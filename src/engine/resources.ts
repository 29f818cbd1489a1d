/**
 * What one session owns besides its sandbox's descriptors: timers, child tasks and things to
 * close (streams, listeners). The session ends them all however it ends (success, failure, a
 * client that vanished, an operator's kick) and reports anything that was still running, so a
 * leak shows up as a log line instead of a slowly dying server.
 */

/** Leftovers found (and released) at the end of a session; all zero for a clean ending. */
export interface Leftovers {
  fds: number;
  timers: number;
  tasks: number;
}

/** How long end() waits for child tasks that were cancelled to stop. */
const TASK_GRACE_MS = 5000;

export class SessionResources {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly tasks = new Set<Promise<unknown>>();
  private readonly closers = new Set<() => void>();
  private readonly cancelHandlers: Array<(err: Error) => void> = [];
  private reason: Error | null = null;

  /** Why the session was cancelled (null while it runs normally). */
  get cancelled(): Error | null {
    return this.reason;
  }

  /** Calls `fn` once when the session is cancelled (at once if it already is). */
  onCancel(fn: (err: Error) => void): void {
    if (this.reason) fn(this.reason);
    else this.cancelHandlers.push(fn);
  }

  /** Stops the session's tasks at their next wait (reads and writes fail with `err`). */
  cancel(err: Error): void {
    if (this.reason) return;
    this.reason = err;
    for (const fn of this.cancelHandlers.splice(0)) fn(err);
  }

  setTimeout(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  setInterval(fn: () => void, ms: number): NodeJS.Timeout {
    const t = setInterval(fn, ms);
    this.timers.add(t);
    return t;
  }

  /** Waits for p, at most ms (the timer is cleared either way). */
  async within(p: Promise<unknown>, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((r) => {
      timer = this.setTimeout(r, ms);
    });
    try {
      await Promise.race([p, limit]);
    } finally {
      this.clearTimer(timer);
    }
  }

  clearTimer(t: NodeJS.Timeout | null | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.timers.delete(t);
  }

  /** A task started beside the main one (it is awaited, after cancellation, when the session ends). */
  task<T>(p: Promise<T>): Promise<T> {
    this.tasks.add(p);
    const done = (): void => {
      this.tasks.delete(p);
    };
    p.then(done, done);
    return p;
  }

  /** Something to close when the session ends; the returned function releases it earlier. */
  own(close: () => void): () => void {
    const once = (): void => {
      if (this.closers.delete(once)) close();
    };
    this.closers.add(once);
    return once;
  }

  /**
   * Ends what is left: cancels, waits (bounded) for child tasks, clears timers, runs closers.
   * `fds` is the number of file descriptors the sandbox still had open (it closes them itself).
   */
  async end(fds: () => number, err = new Error('session ended')): Promise<Leftovers> {
    const tasks = this.tasks.size;
    if (tasks > 0) {
      this.cancel(err);
      await this.within(Promise.allSettled([...this.tasks]), TASK_GRACE_MS);
    }
    const left: Leftovers = { fds: fds(), timers: this.timers.size, tasks };
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const close of [...this.closers]) {
      try {
        close();
      } catch {
        // best effort: the session is over
      }
    }
    this.cancel(err);
    return left;
  }
}

export function anyLeft(l: Leftovers): boolean {
  return l.fds + l.timers + l.tasks > 0;
}
