/**
 * File-list index ("ndx") encoding. Proto < 30: plain int32. Proto >= 30: delta-encoded against
 * separate previous-positive / previous-negative registers, one pair per direction.
 */
import type { ByteWriter } from './bytes.js';

export const NDX_DONE = -1;
export const NDX_FLIST_EOF = -2;
export const NDX_DEL_STATS = -3;
export const NDX_FLIST_OFFSET = -101;

export class NdxState {
  prevPositive = -1;
  prevNegative = 1;
}

export function writeNdx(w: ByteWriter, state: NdxState, protocol: number, ndx: number): void {
  if (protocol < 30) {
    w.i32(ndx);
    return;
  }
  let n: number;
  let diff: number;
  if (ndx >= 0) {
    n = ndx;
    diff = ndx - state.prevPositive;
    state.prevPositive = ndx;
  } else if (ndx === NDX_DONE) {
    w.u8(0);
    return;
  } else {
    w.u8(0xff);
    n = -ndx;
    diff = n - state.prevNegative;
    state.prevNegative = n;
  }
  if (diff > 0 && diff < 0xfe) {
    w.u8(diff);
  } else if (diff < 0 || diff > 0x7fff) {
    w.u8(0xfe);
    w.u8((n >> 24) | 0x80);
    w.u8(n & 0xff);
    w.u8((n >> 8) & 0xff);
    w.u8((n >> 16) & 0xff);
  } else {
    w.u8(0xfe);
    w.u8(diff >> 8);
    w.u8(diff & 0xff);
  }
}
