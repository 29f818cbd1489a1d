import t from 'tap';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { MsgTag } from '../../src/protocol/mux.js';
import { escapeControlBytes } from '../../src/protocol/message-text.js';

const esc = (s: string) => escapeControlBytes(Buffer.from(s, 'latin1')).toString('latin1');

t.test('control bytes become \\xNN; tab and the final newline stay', async (t) => {
  t.equal(esc('rsync: link_stat "a\x1b[2Jb" failed\n'), 'rsync: link_stat "a\\x1b[2Jb" failed\n');
  t.equal(esc('x\ry\nrsync: forged line\n'), 'x\\x0dy\\x0arsync: forged line\n', 'an interior newline cannot forge a line');
  t.equal(esc('a\tb\x7f\x00\n'), 'a\tb\\x7f\\x00\n');
  t.equal(esc('c1 \xc2\x9b31m ok \xc3\xa9\n'), 'c1 \\xc2\\x9b31m ok \xc3\xa9\n', 'UTF-8 C1 controls are escaped, other UTF-8 kept');
  t.equal(esc('lone \xff and \x9b bytes\n'), 'lone \xff and \x9b bytes\n', 'invalid UTF-8 is not a control');
  t.equal(esc('no newline \x07'), 'no newline \\x07');
  const plain = Buffer.from('nothing to do\n');
  t.equal(escapeControlBytes(plain), plain, 'clean text is passed through as is');
});

function capture(): { writer: ProtocolWriter; frames: () => Array<{ tag: number; body: Buffer }> } {
  const chunks: Buffer[] = [];
  const writer = new ProtocolWriter({
    write(chunk: Buffer, done?: (err?: Error | null) => void) {
      chunks.push(Buffer.from(chunk));
      done?.();
      return true;
    },
    once: () => undefined,
  });
  writer.protocol = 31;
  writer.setMultiplexed(true);
  const frames = () => {
    const all = Buffer.concat(chunks);
    const out: Array<{ tag: number; body: Buffer }> = [];
    for (let p = 0; p < all.length; ) {
      const hdr = all.readUInt32LE(p);
      const len = hdr & 0xffffff;
      out.push({ tag: (hdr >>> 24) - 7, body: all.subarray(p + 4, p + 4 + len) });
      p += 4 + len;
    }
    return out;
  };
  return { writer, frames };
}

t.test('every text message the writer sends is escaped; binary messages are not', async (t) => {
  const { writer, frames } = capture();
  const hostile = 'rsync: send_files failed to open "x\x1b]0;pwned\x07": Permission denied (13)\n';
  for (const tag of [MsgTag.ERROR, MsgTag.ERROR_XFER, MsgTag.INFO, MsgTag.WARNING]) writer.message(tag, Buffer.from(hostile, 'latin1'));
  writer.message(MsgTag.ERROR, 'as a string \x1b\n');
  const exit = Buffer.from([0x17, 0x00, 0x00, 0x00]);
  writer.message(MsgTag.ERROR_EXIT, exit);
  writer.message(MsgTag.IO_ERROR, Buffer.from([0x01, 0x0a, 0x1b, 0x00]));
  const f = frames();
  t.equal(f.length, 7);
  for (const fr of f.slice(0, 4)) t.equal(fr.body.toString('latin1'), 'rsync: send_files failed to open "x\\x1b]0;pwned\\x07": Permission denied (13)\n');
  t.equal(f[4]!.body.toString('latin1'), 'as a string \\x1b\n');
  t.same(f[5]!.body, exit, 'MSG_ERROR_EXIT is binary');
  t.same(f[6]!.body, Buffer.from([0x01, 0x0a, 0x1b, 0x00]), 'MSG_IO_ERROR is binary');
});
