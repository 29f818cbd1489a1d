/**
 * Coverage feedback from V8's block coverage (the inspector's precise coverage with call counts):
 * every (block range, hit-count bucket) of the project's own source is a feature, as libFuzzer
 * counts (edge, bucket) pairs. Taking coverage resets V8's counters.
 */
import { Session } from 'node:inspector';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface ScriptCoverage {
  url: string;
  functions: Array<{ ranges: Range[] }>;
}

/** libFuzzer's counter buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+. */
function bucket(count: number): number {
  if (count < 4) return count - 1;
  if (count < 8) return 3;
  if (count < 16) return 4;
  if (count < 32) return 5;
  if (count < 128) return 6;
  return 7;
}

export class Coverage {
  private readonly session = new Session();
  private readonly known = new Map<string, Array<{ start: number; end: number; id: number }>>();
  private nextId = 0;

  /** `include` selects the scripts that count (the project's src/, not node internals). */
  constructor(private readonly include: (url: string) => boolean) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  private post(method: string, params?: object): unknown {
    let result: unknown;
    let error: Error | null = null;
    let called = false;
    this.session.post(method, params, (err, res) => {
      called = true;
      error = err;
      result = res;
    });
    // The in-thread inspector session answers synchronously.
    if (!called) throw new Error(`inspector ${method} did not answer synchronously`);
    if (error) throw error;
    return result;
  }

  private take(): ScriptCoverage[] {
    const res = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    return res.result.filter((s) => this.include(s.url));
  }

  /**
   * V8 leaves out a nested block whose count equals its parent's, so each block this function
   * ever reported is kept and given the count of the innermost reported range around it.
   */
  private effectiveCounts(url: string, ranges: Range[], visit: (id: number, count: number) => void): void {
    if (ranges.length === 0 || ranges[0].count === 0) return;
    const key = `${url}:${ranges[0].startOffset}`;
    let known = this.known.get(key);
    if (!known) this.known.set(key, (known = []));
    for (const r of ranges) {
      if (!known.some((k) => k.start === r.startOffset && k.end === r.endOffset)) {
        known.push({ start: r.startOffset, end: r.endOffset, id: this.nextId++ });
      }
    }
    for (const k of known) {
      let count = 0;
      let width = Infinity;
      for (const r of ranges) {
        if (r.startOffset <= k.start && r.endOffset >= k.end && r.endOffset - r.startOffset < width) {
          width = r.endOffset - r.startOffset;
          count = r.count;
        }
      }
      if (count > 0) visit(k.id, count);
    }
  }

  /** Block ranges hit since the last take (without counts). */
  hitRanges(): number[] {
    const out: number[] = [];
    for (const s of this.take()) for (const f of s.functions) this.effectiveCounts(s.url, f.ranges, (id) => out.push(id));
    return out;
  }

  /** (range, bucket) features since the last take. */
  features(): number[] {
    const out: number[] = [];
    for (const s of this.take()) {
      for (const f of s.functions) this.effectiveCounts(s.url, f.ranges, (id, count) => out.push(id * 8 + bucket(count)));
    }
    return out;
  }

  /** Discards the counters gathered so far. */
  reset(): void {
    this.take();
  }

  stop(): void {
    this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }
}
