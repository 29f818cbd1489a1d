import t from 'tap';
import { randomBytes } from 'node:crypto';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { MsgTag } from '../../src/protocol/mux.js';

/** Undoes the MSG_DATA framing of a byte stream (all frames must be data frames). */
function unframe(stream: Buffer): Buffer {
  const out: Buffer[] = [];
  for (let p = 0; p < stream.length; ) {
    const hdr = stream.readUInt32LE(p);
    const tag = (hdr >>> 24) - 7;
    const len = hdr & 0xffffff;
    if (tag !== MsgTag.DATA) throw new Error(`unexpected tag ${tag}`);
    out.push(stream.subarray(p + 4, p + 4 + len));
    p += 4 + len;
  }
  return Buffer.concat(out);
}

for (const when of ['later', 'at once'] as const) {
  t.test(`reused frame buffers never change data the sink still holds (done ${when})`, async (t) => {
    const held: Buffer[] = [];
    const pendingDone: Array<() => void> = [];
    const writer = new ProtocolWriter({
      write(chunk: Buffer, done?: (err?: Error | null) => void) {
        // The sink uses the chunk until it calls done (as a stream writes it out): what it has
        // then is what went out. A reuse before done would show up as changed bytes.
        const slot = held.push(chunk) - 1;
        const finish = () => {
          held[slot] = Buffer.from(chunk);
          done?.();
        };
        if (when === 'later') pendingDone.push(finish);
        else finish();
        return true;
      },
      once: () => undefined,
    });
    writer.setMultiplexed(true);
    const sent: Buffer[] = [];
    for (let i = 0; i < 60; i++) {
      const piece = randomBytes(i % 3 === 0 ? 300 * 1024 : i % 3 === 1 ? 40 * 1024 : 100);
      sent.push(piece);
      writer.bytes(piece);
      writer.flush();
      // The sink finishes with older chunks now and then, so buffers do come back for reuse.
      if (i % 4 === 3) for (const d of pendingDone.splice(0, 2)) d();
    }
    for (const d of pendingDone.splice(0)) d();
    t.ok(unframe(Buffer.concat(held)).equals(Buffer.concat(sent)), 'the bytes the sink got are the bytes written');
  });
}
