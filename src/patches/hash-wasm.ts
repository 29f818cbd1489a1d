/**
 * hash-wasm's bundle layout (hash-wasm 4.13.0): its public API creates seeded XXH instances only
 * asynchronously, so the checksum engine instantiates hash-wasm's embedded WebAssembly binaries
 * itself. They are scraped from the bundle's `var name = "<algo>"; var data = "<base64>"` pairs.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { WASM_ALGOS, type WasmAlgo } from '../protocol/checksum.js';

/** Finds hash-wasm's embedded base64 WebAssembly binary for one algorithm, or null. */
function extractWasmBinary(bundle: string, algo: WasmAlgo): Uint8Array | null {
  const re = new RegExp(`var name(\\$\\w+)? = "${algo}";\\s*var data\\1? = "([A-Za-z0-9+/=]+)";`);
  const m = re.exec(bundle);
  return m ? new Uint8Array(Buffer.from(m[2], 'base64')) : null;
}

function readBundle(): string {
  const require = createRequire(import.meta.url);
  return readFileSync(require.resolve('hash-wasm'), 'utf8');
}

/** Every algorithm's binary from the installed hash-wasm; throws when the layout changed. */
export function hashWasmBinaries(bundle: string = readBundle()): Map<WasmAlgo, Uint8Array> {
  const out = new Map<WasmAlgo, Uint8Array>();
  for (const algo of WASM_ALGOS) {
    const bin = extractWasmBinary(bundle, algo);
    if (!bin) throw new Error(`hash-wasm layout changed: no embedded binary for ${algo}`);
    out.set(algo, bin);
  }
  return out;
}

/** Self-check: problems with the installed hash-wasm's layout ([] when none). */
export function checkHashWasm(bundle: string = readBundle()): string[] {
  return WASM_ALGOS.filter((algo) => extractWasmBinary(bundle, algo) === null).map(
    (algo) => `hash-wasm: no embedded WebAssembly binary for ${algo} (bundle layout changed)`,
  );
}
