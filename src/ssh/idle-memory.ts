/**
 * Memory given back when the server goes idle. A busy period grows V8's heap and leaves the
 * Buffers of finished transfers freed in malloc's arenas; neither shrinks by itself once the
 * sessions end, so without this the idle server keeps its peak RSS (docs/architecture.md, the
 * soak). When the last session has ended and none has started for `delayMs`, V8 is asked for its
 * memory-reducing full GC (stop-the-world, so never while a session runs), then malloc_trim(0)
 * hands the freed Buffers back. Once per idle period; a no-op without the native addon.
 */

/** The native addon's two calls (src/native.ts); absent ones are skipped. */
export interface MemoryReleaser {
  lowMemoryNotification?(): void;
  releaseFreedMemory?(): void;
}

interface IdleMemoryOptions {
  /** Whether no session is running anywhere in the server. */
  isIdle: () => boolean;
  /** Quiet time after the last session ends before the release (default 5 s). */
  delayMs?: number;
  /** Told how long the release kept the event loop (it stops the world). */
  onReleased?: (pauseMs: number) => void;
  /** Timers, replaceable in tests. */
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export const IDLE_RELEASE_DELAY_MS = 5000;

export class IdleMemoryRelease {
  private timer: unknown;
  /** A session ended since the last release: there may be something to give back. */
  private dirty = false;
  private closed = false;
  private readonly delayMs: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;

  constructor(
    private readonly native: MemoryReleaser | null,
    private readonly opts: IdleMemoryOptions,
  ) {
    this.delayMs = opts.delayMs ?? IDLE_RELEASE_DELAY_MS;
    this.setTimer = opts.setTimer ?? unrefTimeout;
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
  }

  /** A session started: a pending release waits for the next idle moment. */
  sessionStarted(): void {
    this.cancel();
  }

  /**
   * A session ended: when it was the last one, the release is (re)scheduled `delayMs` later.
   * `ranEngine` false (a `true` probe, a refused exec) allocated next to nothing: alone it
   * schedules nothing, so a monitor's probes do not cost a full GC each.
   */
  sessionEnded(ranEngine = true): void {
    if (!this.native || this.closed) return;
    if (ranEngine) this.dirty = true;
    if (!this.dirty || !this.opts.isIdle()) return;
    this.cancel();
    this.timer = this.setTimer(() => this.release(), this.delayMs);
  }

  /** Server shutdown: nothing left scheduled. */
  close(): void {
    this.closed = true;
    this.cancel();
  }

  private cancel(): void {
    if (this.timer === undefined) return;
    this.clearTimer(this.timer);
    this.timer = undefined;
  }

  private release(): void {
    this.timer = undefined;
    if (!this.dirty || !this.opts.isIdle() || !this.native) return;
    this.dirty = false;
    const started = performance.now();
    // the GC first: it frees the Buffers whose memory malloc_trim then returns
    this.native.lowMemoryNotification?.();
    this.native.releaseFreedMemory?.();
    this.opts.onReleased?.(performance.now() - started);
  }
}

function unrefTimeout(fn: () => void, ms: number): NodeJS.Timeout {
  const t = setTimeout(fn, ms);
  t.unref();
  return t;
}
