/** Filter list wire format and rule grammar (src/protocol/filter.ts). */
import t from 'tap';
import * as fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { ProtocolReader } from '../../src/protocol/input.js';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import {
  CVS_DEFAULT_PATTERNS,
  parseFilterRule,
  readFilterList,
  writeFilterList,
  type FilterRule,
} from '../../src/protocol/filter.js';
import { CAPTURES } from '../helpers/captures.js';

function wire(rules: Array<string | Buffer>, end = true): Buffer {
  const parts: Buffer[] = [];
  for (const r of rules) {
    const b = typeof r === 'string' ? Buffer.from(r, 'latin1') : r;
    const len = Buffer.alloc(4);
    len.writeInt32LE(b.length);
    parts.push(len, b);
  }
  if (end) parts.push(Buffer.alloc(4));
  return Buffer.concat(parts);
}

function readerOf(bytes: Buffer, close = true): ProtocolReader {
  const s = new PassThrough();
  const r = new ProtocolReader(s);
  s.write(bytes);
  if (close) s.end();
  return r;
}

/** The rules decoded in captures/filt1.txt ("#   int32 N   b'...'"). */
function filt1Rules(): string[] {
  const text = fs.readFileSync(`${CAPTURES}/filt1.txt`, 'latin1');
  const out: string[] = [];
  for (const m of text.matchAll(/^#\s+int32 (\d+)\s+b'(.*)'$/gm)) {
    t.equal(m[2].length, Number(m[1]), `capture length of ${m[2]}`);
    out.push(m[2]);
  }
  return out;
}

const hasCaptures = fs.existsSync(`${CAPTURES}/filt1.txt`);

t.test('filt1 capture: every rule parses', { skip: hasCaptures ? false : 'no captures' }, async (t) => {
  const texts = filt1Rules();
  t.equal(texts.length, 43);
  const rules = await readFilterList(readerOf(wire(texts)), 32);
  t.equal(rules.length, 43);
  const pick = (i: number): Partial<FilterRule> => {
    const { action, pattern, dirOnly, anchored, negate, senderSide, receiverSide, perishable, cvs } = rules[i];
    return { action, pattern, dirOnly, anchored, negate, senderSide, receiverSide, perishable, cvs };
  };
  const plain = { dirOnly: false, anchored: false, negate: false, senderSide: true, receiverSide: true, perishable: false, cvs: false };
  t.same(pick(0), { ...plain, action: 'exclude', pattern: '*.o' });
  t.same(pick(1), { ...plain, action: 'include', pattern: 'keep', dirOnly: true });
  t.same(pick(2), { ...plain, action: 'exclude', pattern: 'prot*', senderSide: false });
  t.same(pick(3), { ...plain, action: 'exclude', pattern: 'abs', anchored: true });
  t.equal(rules[3].absPath, true);
  t.same(pick(4), { ...plain, action: 'dirMerge', pattern: '.rsync-filter' });
  t.same(rules[4].mergeOptions, { noInherit: false, wordSplit: false, onlyInclude: false, onlyExclude: false, excludeSelf: false, cvs: false });
  t.same(pick(5), { ...plain, action: 'exclude', pattern: 'dironly', dirOnly: true });
  t.same(pick(6), { ...plain, action: 'dirMerge', pattern: '.cvsignore', cvs: true });
  t.same(rules[6].mergeOptions, { noInherit: true, wordSplit: true, onlyInclude: false, onlyExclude: true, excludeSelf: false, cvs: true });
  // The rest is the default CVS list, expanded by the client sender, perishable.
  const defaults = rules.slice(7);
  t.same(
    defaults.map((r) => r.pattern + (r.dirOnly ? '/' : '')),
    CVS_DEFAULT_PATTERNS,
  );
  t.ok(defaults.every((r) => r.action === 'exclude' && r.perishable && r.senderSide && r.receiverSide));
});

t.test('grammar (protocol >= 29)', async (t) => {
  const p = (s: string): FilterRule => parseFilterRule(s, 31);
  t.match(p('+ foo'), { action: 'include', pattern: 'foo' });
  t.match(p('include foo'), { action: 'include', pattern: 'foo' });
  t.match(p('exclude,p foo'), { action: 'exclude', pattern: 'foo', perishable: true });
  t.match(p('-,p foo'), { action: 'exclude', perishable: true });
  t.match(p('+_foo bar'), { action: 'include', pattern: 'foo bar' });
  t.match(p('- foo '), { pattern: 'foo ' }, 'trailing whitespace is part of the pattern');
  t.match(p('H x'), { action: 'exclude', senderSide: true, receiverSide: false, sideExplicit: true });
  t.match(p('S x'), { action: 'include', senderSide: true, receiverSide: false });
  t.match(p('P x'), { action: 'exclude', senderSide: false, receiverSide: true });
  t.match(p('R x'), { action: 'include', senderSide: false, receiverSide: true });
  t.match(p('protect x'), { action: 'exclude', receiverSide: true, senderSide: false });
  t.match(p('-sr x'), { senderSide: true, receiverSide: true, sideExplicit: true });
  t.match(p('- x'), { sideExplicit: false });
  t.match(p('-! */'), { negate: true, dirOnly: true, pattern: '*' });
  t.match(p('- /'), { pattern: '', anchored: true, dirOnly: false }, 'a lone "/" is not dir-only');
  t.match(p('-x user.*'), { xattr: true });
  t.match(p('!'), { action: 'clear' });
  t.match(p('clear'), { action: 'clear' });
  t.match(p('-C'), { action: 'exclude', cvs: true, pattern: '' });
  t.match(p(':C'), { action: 'dirMerge', cvs: true, pattern: '.cvsignore' });
  t.match(p(':n- .f'), { action: 'dirMerge', mergeOptions: { noInherit: true, onlyExclude: true } });
  t.match(p(':w+e .f'), { mergeOptions: { wordSplit: true, onlyInclude: true, excludeSelf: true } });
  t.match(p('dir-merge .f'), { action: 'dirMerge', pattern: '.f' });
  t.match(p(':s .f'), { senderSide: true, receiverSide: false });
  t.match(p('. sub/rules'), { action: 'merge', pattern: 'sub/rules' });
  t.match(p(': /.rsync-filter'), { action: 'dirMerge', pattern: '/.rsync-filter' }, '-F sends this');
  t.match(p('- a\0- b'), { pattern: 'a' }, 'a NUL ends the rule, as in C');
  for (const bad of ['', 'x foo', '-', '- ', '-q foo', '-n foo', '-e foo', '-w foo', ':! f', 'Hs x', 'Pr x', '! x', '!!', ':C- x', 'e foo', 'excludes foo', '-+ x']) {
    t.throws(() => p(bad), ProtocolError, `refused: ${JSON.stringify(bad)}`);
  }
});

t.test('grammar (protocol < 29)', async (t) => {
  const p = (s: string): FilterRule => parseFilterRule(s, 28);
  t.match(p('- foo'), { action: 'exclude', pattern: 'foo' });
  t.match(p('+ foo'), { action: 'include', pattern: 'foo' });
  t.match(p('foo'), { action: 'exclude', pattern: 'foo' });
  t.match(p('-p foo'), { action: 'exclude', pattern: '-p foo', perishable: false });
  t.match(p(': .rsync-filter'), { action: 'exclude', pattern: ': .rsync-filter' });
  t.match(p('!'), { action: 'clear' });
  t.match(p('!foo'), { action: 'exclude', pattern: '!foo' });
  t.throws(() => p('- '), ProtocolError);
});

t.test('merge files outside the transfer are refused', async (t) => {
  const cases = ['. /etc/passwd', ': /etc/passwd', ':- /etc/shadow', '. ../x', ': a/../../x', 'merge ..', ':C /etc/x/.cvsignore', '. /x'];
  for (const c of cases) {
    t.throws(() => parseFilterRule(c, 32), { name: 'ProtocolError', message: /is outside the transfer/ }, c);
  }
  t.throws(() => parseFilterRule('. /etc/passwd', 32), { message: 'rrsyncd: filter merge file "/etc/passwd" is outside the transfer' });
  t.throws(() => parseFilterRule('. /\x1b[31m', 32), { message: /\\x1b\[31m/ }, 'control bytes are escaped');
  t.doesNotThrow(() => parseFilterRule(': sub/.f', 32));
  t.doesNotThrow(() => parseFilterRule('. ..x', 32));
});

t.test('hostile inputs', async (t) => {
  // Trailing backslashes (CVE-2026-70461 class): parse and match without reading past the end.
  for (const s of ['- \\', '- a\\', '- [\\', '+ \\\\\\', '-/ \\', ': \\']) {
    t.doesNotThrow(() => parseFilterRule(s, 32), s);
  }
  // An over-long rule on the wire.
  await t.rejects(readFilterList(readerOf(wire(['- ' + 'a'.repeat(1024 * 1024)])), 32), ProtocolError, '1 MB rule');
  await t.rejects(readFilterList(readerOf(wire(['- ' + 'a'.repeat(4096)])), 32), ProtocolError, 'pattern of 4096');
  t.doesNotThrow(() => parseFilterRule('- ' + 'a'.repeat(4095), 32));
  // A negative length.
  const neg = Buffer.alloc(4);
  neg.writeInt32LE(-5);
  await t.rejects(readFilterList(readerOf(neg), 32), ProtocolError);
  // 10^6 rules: refused once past the bound (100000).
  const one = wire(['- x'], false);
  const many = Buffer.concat([Buffer.concat(Array(1_000_000).fill(one)), Buffer.alloc(4)]);
  await t.rejects(readFilterList(readerOf(many), 32), { message: /too many filter rules/ });
  // Truncated stream.
  await t.rejects(readFilterList(readerOf(wire(['- x'], false).subarray(0, 6)), 32));
});

t.test('bytes pass through unchanged (latin1)', async (t) => {
  const name = Buffer.from([0x2d, 0x20, 0xc3, 0xa9, 0xff, 0x2a]); // "- é\xff*"
  const [r] = await readFilterList(readerOf(wire([name])), 32);
  t.same(Buffer.from(r.pattern, 'latin1'), Buffer.from([0xc3, 0xa9, 0xff, 0x2a]));
});

t.test('writeFilterList round trip', async (t) => {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  const w = new ProtocolWriter(sink);
  writeFilterList(w, ['- *.o', '', ': .rsync-filter', '+ caf\u00c3\u00a9/']);
  w.flush();
  const bytes = Buffer.concat(chunks);
  t.same(bytes, wire(['- *.o', ': .rsync-filter', '+ caf\u00c3\u00a9/']));
  const rules = await readFilterList(readerOf(bytes), 32);
  t.same(rules.map((r) => r.action), ['exclude', 'dirMerge', 'include']);
  t.equal(rules[2].pattern, 'caf\u00c3\u00a9');
});
