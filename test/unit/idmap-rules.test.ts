// parseIdMap: rsync's --usermap/--groupmap syntax (uidlist.c parse_name_map()) and first-match lookup.
import t from 'tap';
import { parseIdMap } from '../../src/policy/idmap-rules.js';
import { wildmatch } from '../../src/engine/wildmatch.js';
import { RsyncError } from '../../src/protocol/errors.js';

const names: Record<string, number> = { daemon: 1, bin: 2 };
const parse = (spec: string, warn: (s: string) => void = () => undefined) => parseIdMap(spec, 'usermap', (n) => names[n], wildmatch, warn);

t.test('rules match in order: ids, ranges, names, wildcards', async (t) => {
  const m = parse('0:9,5-8:daemon,alice:bin,b*:7,*:3');
  t.equal(m.map(0, 'root'), 9);
  t.equal(m.map(6, 'x'), 1);
  t.equal(m.map(100, 'alice'), 2);
  t.equal(m.map(100, 'bob'), 7);
  t.equal(m.map(100, ''), 3, '* also matches an id without a name');
  t.equal(parse('5:1').map(4, 'x'), undefined, 'no rule: undefined');
});

t.test('an unknown TO name is reported and the rule dropped', async (t) => {
  const warnings: string[] = [];
  const m = parse('5:nosuch,*:1', (s) => warnings.push(s));
  t.same(warnings, ['Unknown --usermap name on receiver: nosuch\n']);
  t.equal(m.map(5, ''), 1);
});

t.test('syntax errors exit 1 with rsync\'s words', async (t) => {
  for (const [spec, msg] of [
    ['foo', 'No colon found in --usermap: foo'],
    ['foo:', 'No name found after colon --usermap: foo:'],
    ['1-2-3:1', 'Invalid number in --usermap: 1-2-3'],
    ['1x:1', 'Invalid number in --usermap: 1x'],
    ['1-:1', 'Invalid number in --usermap: 1-'],
  ]) {
    t.throws(() => parse(spec!), new RsyncError(msg!, 1), spec);
  }
});
