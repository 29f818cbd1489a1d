/**
 * The server-wide memory watermark: every tenant's sessions share one process, so above this much
 * memory in use new sessions are refused ("server busy", exit 5 as rsync's daemon does for "max
 * connections") rather than letting the process grow until it is killed with all of them.
 */
import { getHeapStatistics } from 'node:v8';

/** Exit status of a refused session: rsync's RERR_STARTCLIENT, what a daemon at its limit gives. */
export const EXIT_SERVER_BUSY = 5;
export const SERVER_BUSY_MESSAGE = 'rrsyncd: server busy (memory in use above its watermark) -- try again later';

/** `configured` bytes, or (0) three quarters of V8's heap limit. */
export function memoryWatermark(configured: number): number {
  return configured > 0 ? configured : Math.floor(getHeapStatistics().heap_size_limit * 0.75);
}

/** The V8 heap plus memory held by Buffers (outside the heap, but just as much ours). */
export function memoryInUse(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}
