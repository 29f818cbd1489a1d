/**
 * What every fuzz target shares: an in-memory ProtocolReader over the input bytes, a writer that
 * discards its output, the allocation guard, and the rule for which errors are clean rejections.
 */
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { ProtocolReader } from '../src/protocol/input.js';
import { ProtocolWriter } from '../src/protocol/output.js';
import { RsyncError } from '../src/protocol/errors.js';
import { PeerExitSignal } from '../src/engine/peer-exit.js';

/** One allocation larger than this is a crash: a peer made us size memory from its numbers. */
const MAX_ALLOCATION = 64 * 1024 * 1024;

export class AllocationTooLarge extends Error {
  constructor(what: string, bytes: number) {
    super(`fuzz: ${what} of ${bytes} bytes (limit ${MAX_ALLOCATION})`);
    this.name = 'AllocationTooLarge';
  }
}

export interface Target {
  name: string;
  /** Longest input the mutator makes. */
  maxLen: number;
  /** Byte strings the mutator may insert (option names, magic numbers). */
  dict?: Buffer[];
  /** Runs one input; returns normally or throws (clean rejections are filtered by the caller). */
  run(data: Buffer): void | Promise<void>;
  /** Small valid encodings made with the project's own writers. */
  seeds(): Buffer[];
}

/** The clean ways to refuse bad input: rsync-style errors carrying an exit code. */
export function isCleanRejection(err: unknown): boolean {
  return err instanceof RsyncError || err instanceof PeerExitSignal;
}

/** A Readable stand-in that delivers `data` and then ends, all before the first await returns. */
export function readerOf(data: Buffer, protocol = 32, multiplexed = false): ProtocolReader {
  const src = new EventEmitter() as EventEmitter & { pause(): void; resume(): void };
  src.pause = () => {};
  src.resume = () => {};
  const r = new ProtocolReader(src as unknown as Readable);
  r.protocol = protocol;
  if (multiplexed) r.setMultiplexed(true);
  src.emit('data', data);
  src.emit('end');
  return r;
}

let discard: ProtocolWriter | null = null;

/**
 * A writer whose bytes go nowhere (targets that also write, like the negotiation). One writer
 * serves every run: a fresh one allocates a 320 KiB buffer, which costs more than a run.
 */
export function nullWriter(protocol = 32): ProtocolWriter {
  discard ??= new ProtocolWriter({ write: (): boolean => true, once: (): void => {} });
  discard.pending.reset();
  discard.protocol = protocol;
  return discard;
}

/** The protocol version a knob byte selects (27..32). */
export function protocolOf(k: number): number {
  return 27 + (k % 6);
}

/** Splits input bytes into a small header (target knobs) and the rest. */
export function knobs(data: Buffer, n: number): { k: number[]; rest: Buffer } {
  const k: number[] = [];
  for (let i = 0; i < n; i++) k.push(data[i] ?? 0);
  return { k, rest: data.subarray(n) };
}

let guarded = false;

/**
 * Makes Buffer and typed-array allocations above MAX_ALLOCATION throw AllocationTooLarge, so an
 * allocation sized from the wire shows up as a crash instead of an OOM kill (or going unnoticed).
 */
export function installAllocationGuard(): void {
  if (guarded) return;
  guarded = true;
  const check = (what: string, n: unknown, unit: number): void => {
    if (typeof n === 'number' && n * unit > MAX_ALLOCATION) throw new AllocationTooLarge(what, n * unit);
  };
  for (const fn of ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const) {
    const orig = Buffer[fn] as (...a: unknown[]) => Buffer;
    (Buffer as unknown as Record<string, unknown>)[fn] = function (this: unknown, ...a: unknown[]): Buffer {
      check(`Buffer.${fn}`, a[0], 1);
      return orig.apply(this, a);
    };
  }
  const g = globalThis as unknown as Record<string, unknown>;
  for (const name of ['ArrayBuffer', 'Uint8Array', 'Int8Array', 'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array', 'Float64Array', 'BigUint64Array']) {
    const ctor = g[name] as { BYTES_PER_ELEMENT?: number } & (new (...a: unknown[]) => unknown);
    const unit = ctor.BYTES_PER_ELEMENT ?? 1;
    g[name] = new Proxy(ctor, {
      construct(target, args, newTarget) {
        check(`new ${name}`, args[0], unit);
        return Reflect.construct(target, args, newTarget) as object;
      },
    });
  }
}
