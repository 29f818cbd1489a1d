/**
 * Timestamps for utimes-family calls.
 *
 * Node's fs.utimes/futimes/lutimes take seconds as doubles, and libuv (uv__fs_to_timespec)
 * truncates the nanoseconds to whole MICROseconds ("compatibility hack"); Node also replaces any
 * negative time (before 1970) with "now". So through Node we can set exactly the microsecond
 * (the double is chosen at the middle of the target microsecond so rounding cannot cross into
 * the next one), never the sub-microsecond digits. rsync compares only whole seconds unless the
 * client passes --modify-window=-1 (util1.c same_time), so µs is enough by default. Exact
 * nanoseconds and pre-1970 times go through coreutils `touch -d @S.N` in a child process (ms).
 */

export interface Timestamp {
  sec: number;
  nsec: number;
}

/** The double to hand to Node, or null if Node cannot produce the wanted timespec. */
export function nodeTimeFor(t: Timestamp, exactNs: boolean): number | null {
  if (!Number.isSafeInteger(t.sec) || t.sec < 0) return null;
  if (!Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec >= 1e9) return null;
  if (exactNs && t.nsec % 1000 !== 0) return null;
  const usec = Math.floor(t.nsec / 1000);
  const x = t.sec + (usec * 1000 + 500) / 1e9;
  const got = simulateLibuv(x);
  if (got.sec !== t.sec || got.nsec !== usec * 1000) return null;
  return x;
}

/** What libuv's uv__fs_to_timespec makes of a double (same IEEE operations as the C code). */
export function simulateLibuv(x: number): Timestamp {
  let sec = Math.trunc(x);
  let nsec = Math.trunc((x - sec) * 1e9);
  nsec -= nsec % 1000;
  if (nsec < 0) {
    nsec += 1e9;
    sec -= 1;
  }
  return { sec, nsec };
}

/** `touch -d` argument for an exact timestamp. */
export function touchDate(t: Timestamp): string {
  if (t.sec < 0 && t.nsec > 0) {
    // -6 s + 0.75 s is -5.25 s: print the magnitude of the negative value
    return `@-${-t.sec - 1}.${String(1e9 - t.nsec).padStart(9, '0')}`;
  }
  return `@${t.sec}.${String(t.nsec).padStart(9, '0')}`;
}

export function checkTimestamp(t: Timestamp): boolean {
  return Number.isSafeInteger(t.sec) && Number.isInteger(t.nsec) && t.nsec >= 0 && t.nsec < 1e9;
}
