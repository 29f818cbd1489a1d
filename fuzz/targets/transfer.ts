/**
 * The delta part of a transfer: sum heads and block sums (what a puller's generator sends), and
 * token streams with each compressor (what a pusher's sender sends).
 */
import { readFileSync } from 'node:fs';
import { readBlockSums, readSumHead, validateSumHead, writeBlockSumBatch, writeSumHead } from '../../src/protocol/sumhead.js';
import { createTokenDecoder, type CompressName } from '../../src/protocol/token.js';
import { clientStream, encodeSession, headCandidates, prng, text, type Op } from '../../test/unit/token-helpers.js';
import { collectingWriter } from '../../test/unit/flist-support.js';
import { knobs, protocolOf, readerOf, type Target } from '../harness.js';


export const sumhead: Target = {
  name: 'sumhead',
  maxLen: 1024,
  async run(data) {
    const { k, rest } = knobs(data, 2);
    const r = readerOf(rest, protocolOf(k[0]));
    const head = await readSumHead(r);
    validateSumHead(head, r.protocol, [16, 8, 20, 0][k[1] & 3]);
    await readBlockSums(r, head);
  },
  seeds() {
    const out: Buffer[] = [];
    for (const [count, blength, s2length, remainder] of [[3, 700, 2, 100], [1, 2048, 16, 0], [0, 0, 0, 0], [2, 131072, 8, 131072]]) {
      for (const proto of [0, 3, 5]) {
        const { w, bytes } = collectingWriter(protocolOf(proto));
        const head = { count, blength, s2length, remainder };
        writeSumHead(w, head);
        writeBlockSumBatch(w, Uint32Array.from({ length: count }, (_, i) => i * 0x01010101), prng(count * s2length, count), s2length);
        out.push(Buffer.concat([Buffer.of(proto, 0), bytes()]));
      }
    }
    return out;
  },
};

const BLOCK = 64;
const MAX_FILES = 4;
/**
 * Literal bytes one input may make us produce: a decompression bomb is not a crash, only slow
 * (zstd RLE blocks make MiBs from a few bytes), and pieces are at most 256 KiB anyway.
 */
const MAX_OUTPUT = 1 << 20;
const blockData = (i: number): Buffer => Buffer.alloc(BLOCK, i & 0xff);

const CAPTURES = new URL('../../test/fixtures/token-captures/', import.meta.url);
/** Capture file, protocol, negotiation vstrings, multiplexed; their sum heads echo 2048-byte blocks. */
const CAPTURE_SEEDS: Record<CompressName, Array<[string, number, number, boolean]>> = {
  none: [['plain32', 32, 1, true]],
  zlib: [['zlib32', 32, 1, true], ['zlib29', 29, 0, false]],
  zlibx: [['zlibx32', 32, 1, true]],
  zstd: [['zstd32', 32, 1, true]],
  lz4: [['lz432', 32, 1, true]],
};

/** The start of the first token stream in a capture (just past its sum-head echo), cut to maxLen. */
function captureSeed(file: string, protocol: number, vstrings: number, mux: boolean, maxLen: number): Buffer | undefined {
  const stream = clientStream(readFileSync(new URL(`${file}.c2s`, CAPTURES)), vstrings, mux);
  const at = headCandidates(stream, Math.ceil(120000 / 2048), 2048, 120000 % 2048)[0];
  if (at === undefined) return undefined;
  return Buffer.concat([Buffer.of(protocol - 27, 255), stream.subarray(at, at + maxLen - 2)]);
}

function tokenTarget(codec: CompressName): Target {
  const maxLen = 2048;
  return {
    name: `token-${codec}`,
    maxLen,
    async run(data) {
      const { k, rest } = knobs(data, 2);
      const dec = createTokenDecoder(readerOf(rest, protocolOf(k[0])), codec, protocolOf(k[0]));
      let produced = 0;
      for (let f = 0; f < MAX_FILES; f++) {
        dec.beginFile(k[1]);
        for (;;) {
          const t = await dec.next();
          if (t.kind === 'end') break;
          if (t.kind === 'literal') {
            produced += t.data.length;
            if (produced > MAX_OUTPUT) return;
          } else {
            dec.matched(blockData(t.index));
          }
        }
      }
    },
    seeds() {
      const blocks = Array.from({ length: 16 }, (_, i) => blockData(i));
      const files: Op[][] = [
        [{ lit: text(300, 1) }, { match: 0 }, { match: 1 }, { match: 2 }, { lit: Buffer.from('x') }, { match: 7 }],
        [{ match: 3 }, { match: 2 }, { lit: prng(200, 2) }],
        [],
        [{ lit: text(2000, 3) }],
      ];
      const out: Buffer[] = [];
      for (const proto of [27, 29, 30, 31, 32]) {
        out.push(Buffer.concat([Buffer.of(proto - 27, 16), encodeSession(codec, proto, files, blocks)]));
      }
      for (const [file, proto, vs, mux] of CAPTURE_SEEDS[codec]) {
        const s = captureSeed(file, proto, vs, mux, maxLen);
        if (s) out.push(s);
      }
      return out;
    },
  };
}

export const tokenTargets: Target[] = (['none', 'zlib', 'zlibx', 'zstd', 'lz4'] as const).map(tokenTarget);
