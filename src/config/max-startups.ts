/** sshd's MaxStartups syntax for `limits.maxStartups` (the admission itself is src/ssh/front-door.ts). */
export interface MaxStartups {
  start: number;
  rate: number;
  full: number;
}

/** Parses "start:rate:full" or "N"; throws with the reason. */
export function parseMaxStartups(text: string): MaxStartups {
  const single = /^(\d+)$/.exec(text);
  if (single) {
    const n = Number(single[1]);
    if (n < 1) throw new Error('must be at least 1');
    return { start: n, rate: 100, full: n };
  }
  const m = /^(\d+):(\d+):(\d+)$/.exec(text);
  if (!m) throw new Error(`"${text}" is not start:rate:full (e.g. 10:30:100) or a number`);
  const [start, rate, full] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (start < 1) throw new Error('start must be at least 1');
  if (rate < 1 || rate > 100) throw new Error('rate must be 1-100 (percent)');
  if (full < start) throw new Error('full must not be below start');
  return { start, rate, full };
}
