/**
 * Start-up self-check of every package internal we patch or scrape (the modules of this folder):
 * the installed versions must be the ones package.json pins exactly, and each internal must still
 * have the shape we rely on. A mismatch stops the server with the list of what changed.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { checkHashWasm } from './hash-wasm.js';
import { checkNodeZlib } from './node-zlib.js';
import { checkZstdBinding } from './zstd-napi.js';

const require = createRequire(import.meta.url);

/** The packages whose internals this folder depends on. */
export const PATCHED_PACKAGES = ['ssh2', 'hash-wasm', 'zstd-napi'] as const;

/** Source texts of ssh2 1.17.0 that src/patches/ssh2-*.ts and src/ssh/ssh2-internals.ts depend on, and what each must contain. */
const SSH2_SHAPES: ReadonlyArray<[file: string, needles: string[]]> = [
  ['ssh2/lib/Channel.js', ['_chunkcbErr', '_chunkErr', '_chunkcb', '_waitWindow', 'outgoing.window']],
  ['ssh2/lib/protocol/crypto.js', ['class ChaChaPolyCipherBinding', 'class AESGCMCipherBinding', 'allocPacket(payloadLen)']],
  ['ssh2/lib/protocol/Protocol.js', ['this._cipher', 'this._kex.remoteExtInfoEnabled', 'this._packetRW']],
  // src/ssh/ssh2-internals.ts: the EXT_INFO replacement and the DISCONNECT with a message
  ['ssh2/lib/protocol/kex.js', ['self._kex.remoteExtInfoEnabled = remoteExtInfoEnabled']],
  ['ssh2/lib/protocol/utils.js', ['sendPacket: (proto, packet, bypass)']],
];

/** Problems when an installed version is not the exact pin ([] when all match). */
export function checkVersionPins(pins: Readonly<Record<string, string>>, installed: Readonly<Record<string, string | undefined>>): string[] {
  const problems: string[] = [];
  for (const name of PATCHED_PACKAGES) {
    const pin = pins[name];
    if (pin === undefined || !/^\d+\.\d+\.\d+$/.test(pin)) problems.push(`${name}: package.json must pin an exact version (has ${pin ?? 'none'})`);
    else if (installed[name] !== pin) problems.push(`${name}: installed ${installed[name] ?? 'nothing'}, but the patches are for ${pin}`);
  }
  return problems;
}

/** Problems when a source text lacks what a patch relies on. */
export function checkSourceShapes(read: (file: string) => string | null): string[] {
  const problems: string[] = [];
  for (const [file, needles] of SSH2_SHAPES) {
    const text = read(file);
    if (text === null) {
      problems.push(`${file}: not found`);
      continue;
    }
    for (const n of needles) if (!text.includes(n)) problems.push(`${file}: no longer has "${n}"`);
  }
  return problems;
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

function readInstalledSource(file: string): string | null {
  try {
    return readFileSync(require.resolve(file), 'utf8');
  } catch {
    return null;
  }
}

function installedVersions(): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of PATCHED_PACKAGES) {
    try {
      out[name] = readJson(require.resolve(`${name}/package.json`)).version as string;
    } catch {
      out[name] = undefined;
    }
  }
  return out;
}

function ourPins(): Record<string, string> {
  const pkg = readJson(new URL('../../package.json', import.meta.url).pathname);
  return (pkg.dependencies ?? {}) as Record<string, string>;
}

/** Everything that no longer holds ([] when the installed packages are the ones patched). */
export function checkPatchedInternals(): string[] {
  return [
    ...checkVersionPins(ourPins(), installedVersions()),
    ...checkSourceShapes(readInstalledSource),
    ...checkHashWasm(),
    ...checkNodeZlib(),
    ...checkZstdBinding(),
  ];
}

/** Fails loudly at start-up when a patched internal changed shape. */
export function assertPatchedInternals(): void {
  const problems = checkPatchedInternals();
  if (problems.length > 0) {
    throw new Error(`installed packages differ from the internals it patches:\n  ${problems.join('\n  ')}`);
  }
}
