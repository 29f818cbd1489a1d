/**
 * Unit checks for the bounds added while hardening against hostile clients (test/hostile/*):
 * id-list name bytes, total filter-rule bytes, the per-session message cap, and rsync's exit
 * code 12 for "unexpected tag" / "multiplexing overflow".
 */
import t from 'tap';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { ProtocolReader } from '../../src/protocol/input.js';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { readIdList, MAX_ID_LIST_NAME_BYTES } from '../../src/protocol/idlist.js';
import { readFilterList, MAX_WIRE_RULE_BYTES } from '../../src/protocol/filter.js';
import { ExitCode, ProtocolError } from '../../src/protocol/errors.js';
import { installMessageHandler, MAX_MESSAGES_PER_KIND, sendInfo, sendTransferError } from '../../src/engine/messages.js';
import type { SessionContext } from '../../src/engine/context.js';

function reader(buf: Buffer, multiplexed = false): ProtocolReader {
  const src = new PassThrough();
  const r = new ProtocolReader(src);
  r.setMultiplexed(multiplexed);
  r.protocol = 32;
  src.end(buf);
  return r;
}

function varint(v: number): Buffer {
  const chunks: Buffer[] = [];
  const w = new ProtocolWriter({ write: (b: Buffer) => (chunks.push(Buffer.from(b)), true), once: () => undefined });
  w.varint(v);
  w.flush();
  return Buffer.concat(chunks);
}

t.test('an id list may not carry more than MAX_ID_LIST_NAME_BYTES of names', async (t) => {
  const parts: Buffer[] = [];
  const name = Buffer.alloc(255, 0x75);
  for (let id = 1; id * 255 <= MAX_ID_LIST_NAME_BYTES + 255; id++) parts.push(varint(id), Buffer.from([255]), name);
  parts.push(varint(0));
  await t.rejects(readIdList(reader(Buffer.concat(parts)), 32, false), /id list too long \(names\)/);
  const ok = await readIdList(reader(Buffer.concat([varint(5), Buffer.from([3]), Buffer.from('bob'), varint(0)])), 32, false);
  t.same([...ok], [[5, 'bob']]);
});

t.test('the wire filter list is bounded in bytes as well as in rules', async (t) => {
  const rule = Buffer.alloc(4 + 4000, 0x61);
  rule.writeInt32LE(4000, 0);
  rule[4] = 0x2d;
  rule[5] = 0x20;
  const n = Math.ceil(MAX_WIRE_RULE_BYTES / 4000) + 1;
  const flood = Buffer.concat([...Array.from({ length: n }, () => rule), Buffer.alloc(4)]);
  await t.rejects(readFilterList(reader(flood), 32), /filter rules too long/);
  const few = Buffer.concat([rule, rule, Buffer.alloc(4)]);
  t.equal((await readFilterList(reader(few), 32)).length, 2);
});

t.test('unexpected tags and oversized messages end with exit code 12', async (t) => {
  const frame = (tag: number, len: number, payload = Buffer.alloc(0)): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE((((7 + tag) << 24) | len) >>> 0, 0);
    return Buffer.concat([b, payload]);
  };
  for (const [label, bytes] of [
    ['unknown tag', frame(50, 1, Buffer.from('x'))],
    ['tag below MSG_DATA', Buffer.from([1, 0, 0, 5])],
    ['multiplexing overflow', frame(2, 0xffffff)],
  ] as const) {
    const r = reader(bytes, true);
    const err = await Promise.resolve()
      .then(() => r.readU8())
      .then(
        () => null,
        (e: unknown) => e,
      );
    t.ok(err instanceof ProtocolError, label);
    t.equal((err as ProtocolError).code, ExitCode.STREAMIO, `${label}: exit 12`);
  }
});

t.test('per-session message cap', (t) => {
  const sent: Buffer[] = [];
  const writer = new ProtocolWriter({ write: (b: Buffer) => (sent.push(b), true), once: () => undefined });
  writer.setMultiplexed(true);
  const ctx = { writer, log: pino({ level: 'silent' }), hadTransferError: false, reader: reader(Buffer.alloc(0)) } as unknown as SessionContext;
  void installMessageHandler;
  for (let i = 0; i < MAX_MESSAGES_PER_KIND + 50; i++) sendTransferError(ctx, `error ${i}`);
  for (let i = 0; i < MAX_MESSAGES_PER_KIND + 50; i++) sendInfo(ctx, `info ${i}\n`);
  t.equal(sent.length, 2 * (MAX_MESSAGES_PER_KIND + 1), 'the cap plus one "not shown" note per kind');
  t.ok(ctx.hadTransferError, 'suppressed errors still count');
  t.match(sent[MAX_MESSAGES_PER_KIND].toString('latin1'), /further ones are not shown/);
  t.end();
});
