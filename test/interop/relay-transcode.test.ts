// The relay's token forwarding on its own (no servers): a stream encoded with one codec comes out
// of the relay decodable with the other side's codec, with the same literals and block
// references; raw forwarding copies the bytes and counts the references. Stock 3.5.0 servers
// always agree on a codec through the relay, so the interop tests only reach the raw path.
import t from 'tap';
import { PassThrough } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { ProtocolReader } from '../../src/protocol/input.js';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { createTokenDecoder, createTokenEncoder, initCompression, type CompressName } from '../../src/protocol/token.js';
import { createTokenRelay, type FileTally } from '../../src/relay/tokens.js';

type Step = { literal: Buffer } | { match: number };

const HEAD = { count: 50, blength: 1000, s2length: 16, remainder: 300 };

function pipe(): { r: ProtocolReader; w: ProtocolWriter } {
  const p = new PassThrough();
  return { r: new ProtocolReader(p), w: new ProtocolWriter(p) };
}

function encode(w: ProtocolWriter, codec: CompressName, files: Step[][]): void {
  const enc = createTokenEncoder(w, codec, undefined, 32);
  for (const steps of files) {
    enc.beginFile();
    for (const s of steps) {
      if ('literal' in s) enc.literal(s.literal);
      else enc.match(s.match, Buffer.alloc(HEAD.blength));
    }
    enc.endFile();
  }
  w.flush();
}

async function decode(r: ProtocolReader, codec: CompressName, n: number): Promise<Array<{ literal: Buffer; matches: number[] }>> {
  const dec = createTokenDecoder(r, codec, 32);
  const out = [];
  for (let i = 0; i < n; i++) {
    dec.beginFile(HEAD.count);
    const parts: Buffer[] = [];
    const matches: number[] = [];
    for (;;) {
      const tok = await dec.next();
      if (tok.kind === 'end') break;
      if (tok.kind === 'literal') parts.push(Buffer.from(tok.data));
      else matches.push(tok.index);
    }
    out.push({ literal: Buffer.concat(parts), matches });
  }
  return out;
}

const FILES: Step[][] = [
  [{ literal: randomBytes(70_000) }, { match: 3 }, { match: 4 }, { match: 5 }, { literal: Buffer.from('x'.repeat(5000)) }, { match: 49 }],
  [{ match: 0 }, { literal: randomBytes(10) }, { match: 10 }],
  [{ literal: Buffer.alloc(0) }],
];

function expected(steps: Step[]): { literal: Buffer; matches: number[] } {
  return {
    literal: Buffer.concat(steps.flatMap((s) => ('literal' in s ? [s.literal] : []))),
    matches: steps.flatMap((s) => ('match' in s ? [s.match] : [])),
  };
}

const PAIRS: Array<[CompressName, CompressName, 'raw' | 'transcode']> = [
  ['zstd', 'lz4', 'transcode'],
  ['lz4', 'zlibx', 'transcode'],
  ['zlibx', 'none', 'transcode'],
  ['none', 'zstd', 'transcode'],
  ['zstd', 'zstd', 'raw'],
  ['none', 'none', 'raw'],
];

t.before(() => initCompression());

for (const [from, to, mode] of PAIRS) {
  t.test(`${mode}: ${from} -> ${to}`, async (t) => {
    const a = pipe();
    const b = pipe();
    encode(a.w, from, FILES);
    const relay = createTokenRelay(mode, a.r, b.w, [from, to], [32, 32]);
    const tallies: FileTally[] = [];
    for (let i = 0; i < FILES.length; i++) {
      const tally: FileTally = { literal: 0, matchedBlocks: 0, matchedLast: false };
      await relay.forward(HEAD, tally, () => {});
      tallies.push(tally);
    }
    b.w.flush();
    const got = await decode(b.r, to, FILES.length);
    t.same(got, FILES.map(expected));
    t.same(tallies.map((x) => [x.matchedBlocks, x.matchedLast]), [[4, true], [2, false], [0, false]]);
  });
}
