import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { lockRoot } from '../../src/sandbox/lock.js';
import { describeErrno, rootUnavailableError } from '../../src/policy/root-errors.js';

const dir = mkdtempSync(join(tmpdir(), 'rrsyncd-root-errors-'));

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('did not throw');
}

t.test('a missing root: the client sees no server path, the log has it', async (t) => {
  const missing = join(dir, 'no', 'such', 'root');
  for (const [what, err] of [
    ['Sandbox.open', thrown(() => Sandbox.open(missing))],
    ['lockRoot', thrown(() => lockRoot(missing))],
  ] as const) {
    const logged: object[] = [];
    const e = rootUnavailableError(err, missing, false, { warn: (obj) => logged.push(obj) });
    t.equal(e.message, 'rsync: [Receiver] root not available: No such file or directory (2)', what);
    t.equal(e.code, 3, `${what}: exit code 3, as rsync's failed change_dir`);
    t.notMatch(e.message, dir, `${what}: no server path in the client's message`);
    t.match(logged, [{ root: missing }], `${what}: the absolute path is logged`);
  }
});

t.test('other causes and the sender role', async (t) => {
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  const e = rootUnavailableError(thrown(() => Sandbox.open(file)), file, true);
  t.equal(e.message, 'rsync: [sender] root not available: Not a directory (20)');
  t.equal(describeErrno(Object.assign(new Error('x'), { code: 'EACCES' })), 'Permission denied (13)');
  t.equal(describeErrno(new Error('no code')), 'unavailable');
});
