import t from 'tap';
import { parseChmod } from '../../src/policy/chmod.js';

t.test('octal and symbolic items, scoped to dirs or files', async (t) => {
  const f = parseChmod('D755,F644');
  t.equal(f(0o100777, false).toString(8), '100644');
  t.equal(f(0o40700, true).toString(8), '40755');
  const g = parseChmod('go-w,+X');
  t.equal(g(0o100666, false).toString(8), '100644', 'X does not add x to a plain file');
  t.equal(g(0o100764, false).toString(8), '100755', 'X adds x when someone has it');
  t.equal(g(0o40770, true).toString(8), '40751', 'X adds x to directories');
  t.equal(parseChmod('u=rw,go=r')(0o100777, false).toString(8), '100644');
  t.equal(parseChmod('Fo-rwx')(0o100777, false).toString(8), '100770');
  t.equal(parseChmod('Fo-rwx')(0o40777, true).toString(8), '40777', 'F items skip directories');
});

t.test('bad syntax names the item', async (t) => {
  t.throws(() => parseChmod('u+q'), /invalid chmod item "u\+q"/);
  t.throws(() => parseChmod('999'), /invalid chmod item/);
});
