/**
 * The small wire encodings: multiplexed frames and the messages they carry, filter rules, NDX
 * values, varints/varlongs/longints/vstrings, uid/gid name lists.
 */
import { ByteWriter } from '../../src/protocol/bytes.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { readFilterList, writeFilterList } from '../../src/protocol/filter.js';
import { readIdList, writeIdList } from '../../src/protocol/idlist.js';
import { frameHeader, MsgTag } from '../../src/protocol/mux.js';
import { NDX_DONE, NDX_FLIST_EOF, NDX_FLIST_OFFSET, NdxState, writeNdx } from '../../src/protocol/ndx.js';
import { writeLongint, writeVarint, writeVarlong, writeVstring } from '../../src/protocol/varint.js';
import type { SessionContext } from '../../src/engine/context.js';
import { installMessageHandler } from '../../src/engine/messages.js';
import { collectingWriter } from '../../test/unit/flist-support.js';
import { knobs, protocolOf, readerOf, type Target } from '../harness.js';

const quietLog = { info() {}, warn() {}, debug() {}, error() {} };

export const mux: Target = {
  name: 'mux',
  maxLen: 2048,
  async run(data) {
    const { k, rest } = knobs(data, 1);
    const r = readerOf(rest, protocolOf(k[0]), true);
    const ctx = { reader: r, log: quietLog } as unknown as SessionContext;
    // The receiver's own tag: MSG_NO_SEND with a 4-byte index.
    installMessageHandler(ctx, (tag, payload) => {
      if (tag !== MsgTag.NO_SEND) return false;
      if (payload.length !== 4) throw new ProtocolError('invalid MSG_NO_SEND');
      return true;
    });
    for (let i = 0; ; i++) {
      if (k[0] & 0x80 && i === 2) r.setMultiplexed(false);
      await r.readSome(1 + (k[0] & 0x3f) * 64);
    }
  },
  seeds() {
    const frame = (tag: number, payload: Buffer): Buffer => {
      const h = Buffer.alloc(4);
      h.writeUInt32LE(frameHeader(tag, payload.length), 0);
      return Buffer.concat([h, payload]);
    };
    const i32 = (v: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v, 0);
      return b;
    };
    return [
      Buffer.concat([Buffer.of(5), frame(MsgTag.DATA, Buffer.from('hello')), frame(MsgTag.INFO, Buffer.from('note\n')), frame(MsgTag.DATA, Buffer.alloc(300, 1))]),
      Buffer.concat([Buffer.of(4), frame(MsgTag.IO_ERROR, i32(1)), frame(MsgTag.NOOP, Buffer.alloc(0)), frame(MsgTag.NO_SEND, i32(3))]),
      Buffer.concat([Buffer.of(5), frame(MsgTag.WARNING, Buffer.from('w\n')), frame(MsgTag.ERROR_EXIT, i32(23))]),
      Buffer.concat([Buffer.of(0x85), frame(MsgTag.DATA, Buffer.from('ab')), frame(MsgTag.DATA, Buffer.from('cd')), Buffer.from('raw')]),
      Buffer.concat([Buffer.of(2), frame(MsgTag.ERROR_XFER, Buffer.from('x\n')), frame(MsgTag.DELETED, Buffer.from('f'))]),
    ];
  },
};

const RULES = [
  ['- *.o', '+ /foo/', 'P bar', ': .rsync-filter', 'dir-merge,n- .ignore', '-! ', 'H hidden', 'S shown', 'R risk'],
  ['exclude *.tmp', 'include */', 'merge,e /x', '.e- local', 'clear', '!', '-,s sender', '-,r recv', '-,p perish', '+,/ abs', 'protect p'],
  ['- /a/b/**', '- a[0-9]?', '+ ***', 'C', '-C'],
];

export const filter: Target = {
  name: 'filter',
  maxLen: 1024,
  dict: ['+ ', '- ', 'P ', 'R ', 'H ', 'S ', ': ', '. ', '!', 'C', 'dir-merge', 'merge', 'exclude', 'include', 'clear', ',', '/', '**', '[', ']'].map((s) => Buffer.from(s)),
  async run(data) {
    const { k, rest } = knobs(data, 1);
    await readFilterList(readerOf(rest, protocolOf(k[0])), protocolOf(k[0]));
  },
  seeds: () =>
    RULES.flatMap((rules) =>
      [0, 2, 3, 5].map((p) => {
        const { w, bytes } = collectingWriter(protocolOf(p));
        writeFilterList(w, rules);
        return Buffer.concat([Buffer.of(p), bytes()]);
      }),
    ),
};

export const ndx: Target = {
  name: 'ndx',
  maxLen: 512,
  async run(data) {
    const { k, rest } = knobs(data, 1);
    const r = readerOf(rest, protocolOf(k[0]));
    for (;;) await r.readNdx();
  },
  seeds() {
    const out: Buffer[] = [];
    for (const p of [0, 3, 4, 5]) {
      const w = new ByteWriter(256);
      const st = new NdxState();
      for (const n of [0, 1, 2, 300, 299, 70000, 5, NDX_FLIST_OFFSET, NDX_FLIST_OFFSET - 9, NDX_FLIST_EOF, 0x7fffffff, NDX_DONE]) writeNdx(w, st, protocolOf(p), n);
      out.push(Buffer.concat([Buffer.of(p), w.toBuffer()]));
    }
    return out;
  },
};

/** Each op byte picks a reader call; the bytes after it are its input. */
export const varint: Target = {
  name: 'varint',
  maxLen: 512,
  async run(data) {
    const r = readerOf(data.subarray(1), protocolOf(data[0] ?? 0));
    for (;;) {
      const op = await r.readU8();
      switch (op & 7) {
        case 0: await r.readVarint(); break;
        case 1: await r.readVarlong(1 + ((op >> 3) & 7)); break;
        case 2: await r.readLongint(); break;
        case 3: await r.readVstring(op & 8 ? 4095 : 255); break;
        case 4: await r.readVarint30(); break;
        case 5: await r.readVarlong30(3 + ((op >> 3) & 1)); break;
        case 6: await r.readU16(); break;
        default: await r.readU32();
      }
    }
  },
  seeds() {
    const w = new ByteWriter(256);
    for (const v of [0, 1, 127, 128, 255, 0x3fff, 0x4000, 0x1fffff, 0x7fffffff, -1]) {
      w.u8(0);
      writeVarint(w, v);
    }
    for (const [v, min] of [[0, 3], [2 ** 40, 3], [-1, 4], [1_700_000_000, 4], [2 ** 53 - 1, 3]]) {
      w.u8(1 | ((min - 1) << 3));
      writeVarlong(w, v, min);
    }
    for (const v of [5, 2 ** 33, -7]) {
      w.u8(2);
      writeLongint(w, v);
    }
    w.u8(3);
    writeVstring(w, Buffer.from('xxh128 md5'));
    w.u8(11);
    writeVstring(w, Buffer.alloc(300, 0x61));
    return [Buffer.concat([Buffer.of(5), w.toBuffer()]), Buffer.concat([Buffer.of(0), w.toBuffer()])];
  },
};

export const idlist: Target = {
  name: 'idlist',
  maxLen: 1024,
  async run(data) {
    const { k, rest } = knobs(data, 1);
    const r = readerOf(rest, protocolOf(k[0]));
    await readIdList(r, r.protocol, (k[0] & 0x80) !== 0);
    await readIdList(r, r.protocol, (k[0] & 0x80) !== 0);
  },
  seeds() {
    const out: Buffer[] = [];
    for (const k of [0, 3, 5, 0x85]) {
      const { w, bytes } = collectingWriter(protocolOf(k));
      writeIdList(w, protocolOf(k), new Map([[1000, 'alice'], [0, 'root'], [65534, 'nobody']]), (k & 0x80) !== 0);
      writeIdList(w, protocolOf(k), new Map([[100, 'staff']]), (k & 0x80) !== 0);
      out.push(Buffer.concat([Buffer.of(k), bytes()]));
    }
    return out;
  },
};
