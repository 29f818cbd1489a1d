/** Every fuzz target, by name. */
import type { Target } from '../harness.js';
import { execCommand, secludedArgs, serverArgs } from './args.js';
import { flist } from './flist.js';
import { handshake } from './handshake.js';
import { sumhead, tokenTargets } from './transfer.js';
import { filter, idlist, mux, ndx, varint } from './wire.js';

export const TARGETS: Target[] = [execCommand, serverArgs, secludedArgs, handshake, flist, sumhead, ...tokenTargets, filter, mux, ndx, varint, idlist];

export function targetByName(name: string): Target | undefined {
  return TARGETS.find((t) => t.name === name);
}
