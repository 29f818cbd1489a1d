/**
 * ssh2 fills the random padding of every packet it sends (4 to 19 bytes) with a call of its own
 * to crypto.randomFillSync: ~5 µs each, ~160 ms of CPU per GiB sent in 32 KiB packets. This
 * serves such small requests from a pool of CSPRNG bytes refilled 64 KiB at a time; every byte
 * is handed out once and then cleared in the pool. ssh2's protocol modules keep their own
 * reference to randomFillSync when they load, so this must be installed first: src/cli.ts
 * imports this module before anything that loads ssh2.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';

const POOL_BYTES = 64 * 1024;
/** Larger requests go straight to the system generator. */
const SMALL = 256;

const original = crypto.randomFillSync;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

function pooledRandomFillSync<T extends NodeJS.ArrayBufferView>(buf: T, offset = 0, size?: number): T {
  const n = size ?? buf.byteLength - offset;
  if (!(buf instanceof Uint8Array) || !Number.isInteger(offset) || offset < 0 || !Number.isInteger(n) || n < 0 || n > SMALL || offset + n > buf.byteLength) {
    return original(buf, offset, size);
  }
  if (used + n > POOL_BYTES) {
    original(pool);
    used = 0;
  }
  buf.set(pool.subarray(used, used + n), offset);
  pool.fill(0, used, used + n);
  used += n;
  return buf;
}

/** Whether ssh2 picks the pool up (false: its protocol modules were loaded before this one). */
export const randomPoolActive = ((): boolean => {
  const require = createRequire(import.meta.url);
  let loadedBefore = false;
  try {
    loadedBefore = require.cache[require.resolve('ssh2/lib/protocol/crypto.js')] !== undefined;
  } catch {
    loadedBefore = false;
  }
  crypto.randomFillSync = pooledRandomFillSync as typeof crypto.randomFillSync;
  return !loadedBefore;
})();
