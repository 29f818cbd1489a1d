/**
 * rsync checksums: the rolling "sum1", the seeded per-block strong sums, the whole-file transfer
 * checksum and the --checksum file-list sums, for every digest rsync negotiates (docs/protocol.md
 * §2.5). Pure: no fs, no sockets.
 *
 * MD4, XXH64, XXH3 and XXH128 come from hash-wasm's WebAssembly builds. hash-wasm's public API
 * can only create seeded XXH instances asynchronously, but the session seed is known only after
 * the handshake and block sums must be computed synchronously, so initChecksums() compiles the
 * hash-wasm binaries (loaded by src/patches/hash-wasm.ts) once and we instantiate them ourselves
 * (synchronously, any number, any seed).
 * MD5 and SHA1 whole-file sums use node:crypto (faster on large buffers).
 */
import { createHash, type Hash } from 'node:crypto';
import { nativeBinding } from '../native.js';
/** The hash engines whose WebAssembly binaries initChecksums() takes (src/patches/hash-wasm.ts finds them). */
export type WasmAlgo = 'md4' | 'md5' | 'sha1' | 'xxhash64' | 'xxhash3' | 'xxhash128';
export const WASM_ALGOS: readonly WasmAlgo[] = ['md4', 'md5', 'sha1', 'xxhash64', 'xxhash3', 'xxhash128'];

export type ChecksumName = 'md4' | 'md5' | 'sha1' | 'xxh64' | 'xxh3' | 'xxh128' | 'none';

/** What we announce in the negotiation list, most preferred first. */
export const SUPPORTED_CHECKSUMS: ChecksumName[] = ['xxh128', 'xxh3', 'xxh64', 'md5', 'md4', 'sha1', 'none'];

export interface ChecksumSpec {
  name: ChecksumName;
  protocol: number;
  /** The session's checksum seed (int32). */
  seed: number;
  /** CF_CHKSUM_SEED_FIX: MD5 block sums put the seed before the block. */
  seedFix: boolean;
  /** The name came from negotiation or --checksum-choice (false = implied md4/md5 rules). */
  negotiated: boolean;
}

export interface Hasher {
  update(data: Uint8Array): void;
  digest(): Buffer;
}

const DIGEST_LENGTHS: Record<ChecksumName, number> = {
  md4: 16,
  md5: 16,
  sha1: 20,
  xxh64: 8,
  xxh3: 8,
  xxh128: 16,
  none: 1,
};

export function digestLength(name: ChecksumName): number {
  return DIGEST_LENGTHS[name];
}

export function canonicalChecksumName(name: string): ChecksumName | undefined {
  const n = name.toLowerCase();
  if (n === 'xxhash') return 'xxh64';
  return (SUPPORTED_CHECKSUMS as string[]).includes(n) ? (n as ChecksumName) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Rolling checksum

/**
 * rsync's get_checksum1 over buf[start, end): s1 = Σx, s2 = Σ(len-i)·x with x the bytes as
 * SIGNED chars (CHAR_OFFSET 0); result (s1 & 0xffff) | (s2 << 16) as uint32.
 */
export function rollingChecksum(buf: Uint8Array, start: number, end: number): number {
  let s1 = 0;
  let s2 = 0;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const a = (buf[i] << 24) >> 24;
    const b = (buf[i + 1] << 24) >> 24;
    const c = (buf[i + 2] << 24) >> 24;
    const d = (buf[i + 3] << 24) >> 24;
    s2 = (s2 + 4 * (s1 + a) + 3 * b + 2 * c + d) | 0;
    s1 = (s1 + a + b + c + d) | 0;
  }
  for (; i < end; i++) {
    s1 = (s1 + ((buf[i] << 24) >> 24)) | 0;
    s2 = (s2 + s1) | 0;
  }
  return ((s1 & 0xffff) | (s2 << 16)) >>> 0;
}

/** rollingChecksum of each blength-sized block of buf[start, end) (the last may be shorter). */
export function sum1BlocksJs(buf: Uint8Array, start: number, end: number, blength: number, out: Uint32Array, index: number): number {
  let n = 0;
  for (let p = start; p < end; p += blength) out[index + n++] = rollingChecksum(buf, p, Math.min(p + blength, end));
  return n;
}

const nativeSum1 = nativeBinding?.sum1Blocks?.bind(nativeBinding);

/**
 * Block sums in bulk, the generator's hot loop: the native addon's vectorised version when it
 * is built (4-8x faster), else sum1BlocksJs. Returns the number of sums written.
 */
export const sum1Blocks: typeof sum1BlocksJs = nativeSum1 ?? sum1BlocksJs;

// ---------------------------------------------------------------------------------------------
// WebAssembly hash engines (hash-wasm binaries, driven directly)

/** hash-wasm's input buffer (MAIN_BUFFER_SIZE in its hash-wasm.h). */
const WASM_IO_BUFFER = 16 * 1024;

/** The slice of the WebAssembly API we use (lib ES2022 + @types/node 20 do not declare it). */
type WasmModule = object;
interface WasmApi {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  Instance: new (module: WasmModule, imports: object) => { exports: object };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface WasmHashExports {
  memory: { buffer: ArrayBuffer };
  Hash_GetBuffer(): number;
  Hash_Init(): void;
  Hash_Update(length: number): void;
  Hash_Final(): void;
}

const wasmModules = new Map<WasmAlgo, WasmModule>();
let initPromise: Promise<void> | null = null;

/** One WebAssembly instance: its own state, reusable with init/update/final. */
class WasmHash {
  private readonly exports: WasmHashExports;
  private readonly io: Uint8Array;
  private readonly ioView: DataView;

  constructor(
    module: WasmModule,
    readonly algo: WasmAlgo,
    readonly outLen: number,
  ) {
    const instance = new wasmApi.Instance(module, {});
    this.exports = instance.exports as unknown as WasmHashExports;
    const offset = this.exports.Hash_GetBuffer();
    this.io = new Uint8Array(this.exports.memory.buffer, offset, WASM_IO_BUFFER);
    this.ioView = new DataView(this.exports.memory.buffer, offset, WASM_IO_BUFFER);
  }

  /** The XXH variants read their 64-bit seed from the I/O buffer at init; MD* ignore it. */
  init(seedLow = 0, seedHigh = 0): void {
    this.ioView.setUint32(0, seedLow >>> 0, true);
    this.ioView.setUint32(4, seedHigh >>> 0, true);
    this.exports.Hash_Init();
  }

  update(data: Uint8Array, start = 0, end = data.length): void {
    const io = this.io;
    while (start < end) {
      const n = Math.min(WASM_IO_BUFFER, end - start);
      io.set(n === data.length ? data : data.subarray(start, start + n));
      this.exports.Hash_Update(n);
      start += n;
    }
  }

  /** Little-endian 32-bit word, for the 4 seed bytes. */
  updateU32(v: number): void {
    this.ioView.setUint32(0, v >>> 0, true);
    this.exports.Hash_Update(4);
  }

  /**
   * Finishes and copies the first n digest bytes in rsync's wire order into out[at..]. hash-wasm
   * leaves XXH digests in canonical (big-endian) order; rsync sends them little-endian
   * (SIVAL64 of low64 then high64 for XXH128), which is exactly the canonical bytes reversed.
   */
  finalInto(out: Uint8Array, at: number, n: number): void {
    this.exports.Hash_Final();
    const io = this.io;
    const len = this.outLen;
    if (this.algo === 'xxhash64' || this.algo === 'xxhash3' || this.algo === 'xxhash128') {
      for (let j = 0; j < n; j++) out[at + j] = io[len - 1 - j];
    } else {
      for (let j = 0; j < n; j++) out[at + j] = io[j];
    }
  }
}

const WASM_OUT_LEN: Record<WasmAlgo, number> = {
  md4: 16,
  md5: 16,
  sha1: 20,
  xxhash64: 8,
  xxhash3: 8,
  xxhash128: 16,
};

/** Free instances per algorithm, for whole-file hashers (returned after digest()). */
const wasmPool = new Map<WasmAlgo, WasmHash[]>();
const POOL_LIMIT = 8;

function newWasmHash(algo: WasmAlgo): WasmHash {
  const module = wasmModules.get(algo);
  if (!module) throw new Error('checksums not initialised: call initChecksums() at startup');
  return new WasmHash(module, algo, WASM_OUT_LEN[algo]);
}

function acquireWasmHash(algo: WasmAlgo): WasmHash {
  const free = wasmPool.get(algo);
  return free?.pop() ?? newWasmHash(algo);
}

function releaseWasmHash(h: WasmHash): void {
  let free = wasmPool.get(h.algo);
  if (!free) wasmPool.set(h.algo, (free = []));
  if (free.length < POOL_LIMIT) free.push(h);
}

/**
 * Compiles the WebAssembly hash engines once (the caller reads their binaries: this layer does no
 * I/O); everything else in this module is synchronous.
 */
export function initChecksums(binaries: ReadonlyMap<WasmAlgo, Uint8Array>): Promise<void> {
  if (!initPromise) {
    initPromise = (async () => {
      for (const algo of WASM_ALGOS) wasmModules.set(algo, await wasmApi.compile(binaries.get(algo)!));
    })();
    initPromise.catch(() => {
      initPromise = null;
    });
  }
  return initPromise;
}

// ---------------------------------------------------------------------------------------------
// Block strong sums

/** Computes a block's strong sum and writes its first n bytes to out[at..]: no allocation. */
export type BlockSummer = (data: Uint8Array, start: number, end: number, out: Uint8Array, at: number, n: number) => void;

const WASM_OF: Record<Exclude<ChecksumName, 'none'>, WasmAlgo> = {
  md4: 'md4',
  md5: 'md5',
  sha1: 'sha1',
  xxh64: 'xxhash64',
  xxh3: 'xxhash3',
  xxh128: 'xxhash128',
};

/** One private engine per summer: summers are used synchronously, never interleaved. */
export function createBlockSummer(spec: ChecksumSpec): BlockSummer {
  const name = spec.name;
  if (name === 'none') {
    return (_d, _s, _e, out, at, n) => {
      out.fill(0, at, at + n);
    };
  }
  const h = newWasmHash(WASM_OF[name]);
  const seed = spec.seed | 0;
  switch (name) {
    case 'xxh64':
    case 'xxh3':
    case 'xxh128': {
      // The C code passes the int seed to a 64-bit parameter: sign extension.
      const low = seed >>> 0;
      const high = seed < 0 ? 0xffffffff : 0;
      return (data, start, end, out, at, n) => {
        h.init(low, high);
        h.update(data, start, end);
        h.finalInto(out, at, n);
      };
    }
    case 'md4':
      // Built-in MD4 path (both "md4-old" and negotiated md4 on stock builds): seed after.
      return (data, start, end, out, at, n) => {
        h.init();
        h.update(data, start, end);
        if (seed !== 0) h.updateU32(seed);
        h.finalInto(out, at, n);
      };
    case 'md5': {
      const seedFirst = spec.seedFix;
      return (data, start, end, out, at, n) => {
        h.init();
        if (seed !== 0 && seedFirst) h.updateU32(seed);
        h.update(data, start, end);
        if (seed !== 0 && !seedFirst) h.updateU32(seed);
        h.finalInto(out, at, n);
      };
    }
    case 'sha1':
      // sha1 only exists through OpenSSL's EVP path, which puts the seed first.
      return (data, start, end, out, at, n) => {
        h.init();
        if (seed !== 0) h.updateU32(seed);
        h.update(data, start, end);
        h.finalInto(out, at, n);
      };
  }
}

const summerCache = new Map<string, BlockSummer>();

function cachedSummer(spec: ChecksumSpec): BlockSummer {
  const key = `${spec.name}/${spec.seed | 0}/${spec.seedFix ? 1 : 0}`;
  let s = summerCache.get(key);
  if (!s) {
    if (summerCache.size > 64) summerCache.clear();
    s = createBlockSummer(spec);
    summerCache.set(key, s);
  }
  return s;
}

/** Full-length seeded strong sum of one block (§2.5); the caller truncates to s2length. */
export function blockStrongSum(spec: ChecksumSpec, data: Uint8Array): Buffer {
  const len = digestLength(spec.name);
  const out = Buffer.alloc(len);
  cachedSummer(spec)(data, 0, data.length, out, 0, len);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Whole-file hashers

class WasmHasher implements Hasher {
  private h: WasmHash | null;

  constructor(algo: WasmAlgo, prefixSeed: number | null) {
    this.h = acquireWasmHash(algo);
    this.h.init();
    if (prefixSeed !== null) this.h.updateU32(prefixSeed);
  }

  update(data: Uint8Array): void {
    if (!this.h) throw new Error('hasher already finished');
    this.h.update(data);
  }

  digest(): Buffer {
    const h = this.h;
    if (!h) throw new Error('hasher already finished');
    this.h = null;
    const out = Buffer.alloc(h.outLen);
    h.finalInto(out, 0, h.outLen);
    releaseWasmHash(h);
    return out;
  }
}

class NodeHasher implements Hasher {
  private h: Hash | null;
  constructor(algo: 'md5' | 'sha1') {
    this.h = createHash(algo);
  }
  update(data: Uint8Array): void {
    if (!this.h) throw new Error('hasher already finished');
    this.h.update(data);
  }
  digest(): Buffer {
    if (!this.h) throw new Error('hasher already finished');
    const out = this.h.digest();
    this.h = null;
    return out;
  }
}

/** The "none" checksum: a single 0x00 byte whatever the data. */
class NoneHasher implements Hasher {
  update(): void {}
  digest(): Buffer {
    return Buffer.alloc(1);
  }
}

function plainFileHasher(name: ChecksumName): Hasher {
  switch (name) {
    case 'md5':
    case 'sha1':
      return new NodeHasher(name);
    case 'none':
      return new NoneHasher();
    default:
      return new WasmHasher(WASM_OF[name], null);
  }
}

/** The checksum sent after each file's tokens (§2.5). XXH variants use seed 0 here. */
export function createTransferHasher(spec: ChecksumSpec): Hasher {
  // Protocols 27-29 ("md4-old"): the 4 seed bytes always come first, even when the seed is 0.
  if (spec.name === 'md4' && !spec.negotiated) return new WasmHasher('md4', spec.seed | 0);
  return plainFileHasher(spec.name);
}

/** The --checksum sums in the file list: never seeded. */
export function createFileListHasher(spec: ChecksumSpec): Hasher {
  return plainFileHasher(spec.name);
}
