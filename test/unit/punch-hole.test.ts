// punchHoleOnFd (-S in place): the range reads back as zeros, the size is kept, the blocks are freed.
import t from 'tap';
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { punchHoleOnFd } from '../../src/sandbox/punch-hole.js';

t.test('a punched range reads as zeros; the size stays, the blocks go', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rrsyncd-punch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fd = openSync(join(dir, 'f'), 'w+');
  t.teardown(() => closeSync(fd));
  const size = 1 << 20;
  writeSync(fd, Buffer.alloc(size, 0x78), 0, size, 0);
  punchHoleOnFd(fd, 4096, size - 8192, 'f');
  const st = fstatSync(fd);
  t.equal(st.size, size, 'size kept');
  t.ok(st.blocks * 512 <= 16384, `${st.blocks} blocks left`);
  const back = Buffer.alloc(size);
  readSync(fd, back, 0, size, 0);
  t.ok(back.subarray(0, 4096).every((b) => b === 0x78), 'data before the hole kept');
  t.ok(back.subarray(4096, size - 4096).every((b) => b === 0), 'the hole reads as zeros');
  t.ok(back.subarray(size - 4096).every((b) => b === 0x78), 'data after the hole kept');
  t.end();
});
