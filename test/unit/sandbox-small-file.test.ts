import t from 'tap';
import fs from 'node:fs';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { readSmallFile } from '../../src/sandbox/small-file.js';
import { abs, tmpDir } from './sandbox-helpers.js';

t.test('readSmallFile: the content, null when there is nothing to read, EFBIG over the limit', async (t) => {
  const root = tmpDir(t);
  fs.writeFileSync(abs(root, 'small'), 'x'.repeat(100));
  fs.writeFileSync(abs(root, 'exact'), 'y'.repeat(128));
  fs.writeFileSync(abs(root, 'big'), 'z'.repeat(129));
  fs.mkdirSync(abs(root, 'dir'));
  fs.symlinkSync('small', abs(root, 'link'));
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  t.equal(readSmallFile(sb, 'small', 128)?.toString(), 'x'.repeat(100));
  t.equal(readSmallFile(sb, 'exact', 128)?.length, 128, 'a file of exactly the limit is read');
  t.throws(() => readSmallFile(sb, 'big', 128), { name: 'SandboxError', code: 'EFBIG', message: /"big" is larger than 128 bytes/ });
  t.equal(readSmallFile(sb, 'missing', 128), null);
  t.equal(readSmallFile(sb, 'missing/below', 128), null);
  t.equal(readSmallFile(sb, 'dir', 128), null, 'a directory is no merge file');
  t.equal(readSmallFile(sb, 'link', 128), null, 'a symlink is not followed');
});
