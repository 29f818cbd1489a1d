/**
 * --timeout=N on the receiving side (docs/protocol.md §3.4): an empty MSG_DATA keep-alive whenever
 * nothing was written for ceil(N/2) s, and exit 30 "io timeout after N seconds -- exiting" once
 * nothing was read from the client for N s. Activity is observed through the reader's and
 * writer's byte counters, so no hook in the protocol layer is needed.
 */
import { ExitCode, RsyncError } from '../protocol/errors.js';
import type { SessionContext } from './context.js';

const TICK_MS = 1000;

export class IoTimeout {
  private timer: NodeJS.Timeout | null = null;
  private lastRead = 0;
  private lastWrite = 0;
  private lastTick = 0;
  private seenRead = 0;
  private seenWritten = 0;
  private fail: ((err: Error) => void) | null = null;
  /** Rejects when the timeout fires; never resolves. */
  readonly expired: Promise<never>;

  constructor(
    private readonly ctx: SessionContext,
    private readonly seconds: number,
    private readonly who = 'generator',
  ) {
    this.expired = new Promise<never>((_, reject) => {
      this.fail = reject;
    });
    this.expired.catch(() => undefined); // observed by whoever races it
  }

  start(): void {
    if (this.seconds <= 0 || this.timer) return;
    const now = Date.now();
    this.lastRead = this.lastWrite = this.lastTick = now;
    this.seenRead = this.ctx.reader.totalRead;
    this.seenWritten = this.ctx.writer.totalWritten;
    this.timer = this.ctx.resources.setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    this.ctx.resources.clearTimer(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const now = Date.now();
    // A tick that comes late means the event loop was busy with our own file work (data that
    // arrived meanwhile is not counted yet): like the reference's MSK_ACTIVE_RECEIVER, that is
    // not the client being idle.
    if (now - this.lastTick > 2 * TICK_MS) this.lastRead = now;
    this.lastTick = now;
    const r = this.ctx.reader;
    const w = this.ctx.writer;
    if (r.totalRead !== this.seenRead) {
      this.seenRead = r.totalRead;
      this.lastRead = now;
    }
    if (w.totalWritten !== this.seenWritten) {
      this.seenWritten = w.totalWritten;
      this.lastWrite = now;
    }
    if (now - this.lastRead >= this.seconds * 1000) {
      this.stop();
      const idle = Math.floor((now - this.lastRead) / 1000);
      this.ctx.log.warn({ timeout: this.seconds }, 'io timeout');
      this.fail?.(new RsyncError(`[${this.who}] io timeout after ${idle} seconds -- exiting`, ExitCode.TIMEOUT));
      return;
    }
    if (w.isMultiplexed && now - this.lastWrite >= Math.ceil(this.seconds / 2) * 1000) {
      w.keepAlive();
      this.seenWritten = w.totalWritten;
      this.lastWrite = now;
    }
  }
}
