/**
 * The session start over a fake stream, in the order the session runs it: secluded args (with
 * -s), the version exchange, compat flags, checksum/compression name negotiation.
 */
import { ByteWriter } from '../../src/protocol/bytes.js';
import { writeVstring } from '../../src/protocol/varint.js';
import {
  checksumSpecs,
  computeCompatFlags,
  exchangeVersions,
  negotiate,
  readProtectedArgs,
} from '../../src/engine/handshake.js';
import { parseProtectedArgs, parseServerArgs } from '../../src/policy/options.js';
import { knobs, nullWriter, readerOf, type Target } from '../harness.js';

const INFOS = ['.iLsfxCIvu', '.iLsfxC', '.LsfxCIvu', '.iLsfxCIv', '', '.u', '.v', '.iv'];

/** The argv a knob byte selects: -s or not, -z, explicit checksum / compression choices. */
function argvOf(k: number): string[] {
  const info = INFOS[k & 7];
  const letters = `${k & 8 ? 's' : ''}logDtpr${k & 16 ? 'z' : ''}${info ? `e${info}` : ''}`;
  const argv = ['rsync', '--server', `-${letters}`];
  if (k & 8) return argv;
  if (k & 32) argv.push('--checksum-choice=xxh128,md5');
  if (k & 64) argv.push('--compress-choice=lz4');
  argv.push('.', 'd');
  return argv;
}

export const handshake: Target = {
  name: 'handshake',
  maxLen: 512,
  dict: ['xxh128', 'xxh3', 'xxh64', 'md5', 'md4', 'sha1', 'none', 'zstd', 'lz4', 'zlibx', 'zlib', ' ', 'auto'].map((s) => Buffer.from(s)),
  async run(data) {
    const { k, rest } = knobs(data, 1);
    const r = readerOf(rest);
    const w = nullWriter();
    let opts = parseServerArgs(argvOf(k[0]));
    if (opts.protectArgs) opts = parseProtectedArgs(opts, await readProtectedArgs(r));
    const protocol = await exchangeVersions(r, w);
    r.protocol = w.protocol = protocol;
    const compat = protocol >= 30 ? computeCompatFlags(opts, (k[0] & 128) !== 0) : 0;
    const n = await negotiate(r, w, protocol, compat, opts);
    checksumSpecs(n, protocol, 1, compat);
  },
  seeds() {
    const out: Buffer[] = [];
    for (const k of [0x10, 0x90, 0x00, 0x97, 0x30, 0x50, 0x18, 0x15]) {
      for (const proto of [27, 29, 30, 31, 32]) {
        const b = new ByteWriter(256);
        b.u8(k);
        if (k & 8) b.bytes(Buffer.from('rsync\0-logDtprze.iLsfxCIvu\0.\0d\0\0', 'latin1'));
        b.i32(proto);
        writeVstring(b, Buffer.from('xxh128 xxh3 xxh64 md5 md4 none'));
        writeVstring(b, Buffer.from('zstd lz4 zlibx zlib none'));
        out.push(b.toBuffer());
      }
    }
    return out;
  },
};
