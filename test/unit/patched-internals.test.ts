import t from 'tap';
import {
  PATCHED_PACKAGES,
  assertPatchedInternals,
  checkPatchedInternals,
  checkSourceShapes,
  checkVersionPins,
} from '../../src/patches/self-check.js';
import { checkHashWasm } from '../../src/patches/hash-wasm.js';
import { checkZstdBinding } from '../../src/patches/zstd-napi.js';

t.test('the installed packages have the shapes we patch', async (t) => {
  t.same(checkPatchedInternals(), []);
  t.doesNotThrow(() => assertPatchedInternals());
});

t.test('a version that is not the exact pin is reported', async (t) => {
  const pins = { ssh2: '1.17.0', 'hash-wasm': '4.13.0', 'zstd-napi': '0.0.13' };
  t.same(checkVersionPins(pins, { ...pins }), []);
  t.match(checkVersionPins(pins, { ...pins, ssh2: '1.18.0' }), [/ssh2: installed 1\.18\.0, but the patches are for 1\.17\.0/]);
  t.match(checkVersionPins({ ...pins, 'hash-wasm': '^4.13.0' }, pins), [/hash-wasm: package.json must pin an exact version/]);
  t.match(checkVersionPins(pins, { ...pins, 'zstd-napi': undefined }), [/zstd-napi: installed nothing/]);
  t.equal(PATCHED_PACKAGES.length, 3);
});

t.test('a patched source that lost a field is reported', async (t) => {
  const problems = checkSourceShapes((file) => (file.endsWith('Channel.js') ? 'this._waitWindow = false;' : null));
  t.ok(problems.some((p) => /Channel\.js: no longer has "_chunkcbErr"/.test(p)));
  t.ok(problems.some((p) => /crypto\.js: not found/.test(p)));
});

t.test('a hash-wasm bundle without the embedded binaries is reported', async (t) => {
  t.equal(checkHashWasm('var name = "md4"; var data = "AGFzbQ==";').length, 5, 'every algorithm but md4');
  t.same(checkHashWasm(), []);
});

t.test('a zstd binding without the streaming API is reported', async (t) => {
  t.match(checkZstdBinding({}), [/CCtx is missing/, /DCtx is missing/, /minCLevel/, /maxCLevel/, /compressionLevel/, /windowLogMax/, /EndDirective/]);
});
