import t from 'tap';
import { defaultGrant } from '../../src/policy/grant.js';
import { incomingMode, incomingModeFn } from '../../src/policy/modes.js';

const FILE = 0o100000;
const DIR = 0o040000;
const oct = (n: number) => n.toString(8);

t.test('allowChown is off by default', async (t) => {
  t.equal(defaultGrant('/srv').limits.allowChown, false);
});

t.test('without allowChown, set-uid and set-gid bits are stripped; sticky and type bits stay', async (t) => {
  const limits = { allowChown: false };
  t.equal(oct(incomingMode(FILE | 0o6755, false, limits)), oct(FILE | 0o755));
  t.equal(oct(incomingMode(FILE | 0o4711, false, limits)), oct(FILE | 0o711));
  t.equal(oct(incomingMode(DIR | 0o3775, true, limits)), oct(DIR | 0o1775), 'set-gid directory loses it, sticky stays');
  t.equal(oct(incomingMode(FILE | 0o644, false, limits)), oct(FILE | 0o644), 'plain modes unchanged');
});

t.test('with allowChown, modes are kept as sent', async (t) => {
  t.equal(oct(incomingMode(FILE | 0o6755, false, { allowChown: true })), oct(FILE | 0o6755));
  t.equal(incomingModeFn({ allowChown: true }), null, 'nothing to apply');
});

t.test("incomingChmod is applied after stripping: the admin's chmod decides", async (t) => {
  const strip = { allowChown: false, incomingChmod: 'Fgo-w' };
  t.equal(oct(incomingMode(FILE | 0o6777, false, strip)), oct(FILE | 0o755));
  const readd = { allowChown: false, incomingChmod: 'Fu+s' };
  t.equal(oct(incomingMode(FILE | 0o4755, false, readd)), oct(FILE | 0o4755), 'an explicit u+s in incomingChmod survives');
  t.equal(oct(incomingMode(DIR | 0o2755, true, readd)), oct(DIR | 0o755), 'F items do not touch directories');
  const chown = { allowChown: true, incomingChmod: 'D755,F644' };
  t.equal(oct(incomingMode(FILE | 0o6777, false, chown)), oct(FILE | 0o644), 'an octal item replaces the set-id bits too');
});

t.test('a bad incomingChmod spec throws with the item', async (t) => {
  t.throws(() => incomingModeFn({ allowChown: false, incomingChmod: 'u+q' }), /invalid chmod item "u\+q"/);
});
