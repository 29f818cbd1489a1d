/**
 * node:zlib's internal handle (Node 20): it has no public synchronous *stateful* API, so the zlib
 * token codec drives the binding handle as node:zlib's own *Sync functions do
 * (`_handle.writeSync` + `_writeState`), minus the close at the end.
 */
import zlib from 'node:zlib';

export interface NativeZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  reset(): void;
  params(level: number, strategy: number): void;
  onerror: (message: string, errno: number) => void;
}

/** The handle and its write-state words (avail_out, avail_in) of a zlib stream, or null. */
export function zlibInternals(owner: zlib.DeflateRaw | zlib.InflateRaw): { handle: NativeZlibHandle; state: Uint32Array } | null {
  const internals = owner as unknown as { _handle?: NativeZlibHandle; _writeState?: Uint32Array };
  const handle = internals._handle;
  if (!handle || typeof handle.writeSync !== 'function' || !(internals._writeState instanceof Uint32Array)) return null;
  return { handle, state: internals._writeState };
}

/** Self-check: problems with this Node's zlib internals ([] when none). */
export function checkNodeZlib(): string[] {
  const d = zlib.createDeflateRaw();
  try {
    const got = zlibInternals(d);
    if (!got) return ['node:zlib: DeflateRaw has no _handle.writeSync / _writeState'];
    const missing = (['reset', 'params'] as const).filter((m) => typeof got.handle[m] !== 'function');
    return missing.map((m) => `node:zlib: _handle.${m} is missing`);
  } finally {
    d.close();
  }
}
