/**
 * Filter (exclude/include/merge) rules: the wire list (docs/protocol.md §5) and the rule text
 * grammar of rsync's parse_rule_tok(). Rule text is a byte string (latin1-decoded JS string).
 * Matching lives in src/engine/wildmatch.ts and filter-rules.ts, per-directory merge files in
 * src/engine/filter-match.ts.
 */
import { ExitCode, ProtocolError } from './errors.js';
import type { ProtocolReader } from './input.js';
import type { ProtocolWriter } from './output.js';
import { quoted } from '../printable.js';

interface MergeOptions {
  noInherit: boolean; // 'n'
  wordSplit: boolean; // 'w'
  onlyInclude: boolean; // '+'
  onlyExclude: boolean; // '-'
  excludeSelf: boolean; // 'e'
  cvs: boolean; // 'C'
}

export interface FilterRule {
  action: 'include' | 'exclude' | 'clear' | 'merge' | 'dirMerge';
  /** Byte string, without the leading '/' of an anchored rule and the trailing '/' of a dir-only rule. Merge rules: the file name as given. */
  pattern: string;
  dirOnly: boolean;
  /** Leading '/': match against the path from the transfer root. */
  anchored: boolean;
  negate: boolean;
  senderSide: boolean;
  receiverSide: boolean;
  /** The side came from a modifier or an alias (s, r, H, S, P, R), not the default "both". */
  sideExplicit?: boolean;
  /** The '/' modifier. Matching treats the transfer root as the file system root (like a daemon module), so this changes nothing beyond `anchored`. */
  absPath?: boolean;
  perishable: boolean;
  /** 'C': on include/exclude, a placeholder for the default CVS list; on a merge rule see mergeOptions.cvs. */
  cvs: boolean;
  mergeOptions?: MergeOptions;
  xattr: boolean;
}

/** rsync's default -C list (DEFAULT_CVSIGNORE), in order. */
export const CVS_DEFAULT_PATTERNS: string[] = [
  'RCS', 'SCCS', 'CVS', 'CVS.adm', 'RCSLOG', 'cvslog.*', 'tags', 'TAGS', '.make.state', '.nse_depinfo',
  '*~', '#*', '.#*', ',*', '_$*', '*$', '*.old', '*.bak', '*.BAK', '*.orig', '*.rej', '.del-*', '*.a',
  '*.olb', '*.o', '*.obj', '*.so', '*.exe', '*.Z', '*.elc', '*.ln', 'core', '.svn/', '.git/', '.hg/', '.bzr/',
];

/** rsync's MAXPATHLEN: longer patterns are refused. */
const MAX_PATTERN_LEN = 4095;
/** rsync reads a rule into a BIGPATHBUFLEN (MAXPATHLEN + 1024) buffer; len >= that is an overflow. */
const MAX_WIRE_RULE_LEN = 4096 + 1024 - 1;
const MAX_WIRE_RULES = 100_000;
/** Total rule text accepted from the wire (100k rules of ~4 KiB would otherwise pin ~400 MiB). */
export const MAX_WIRE_RULE_BYTES = 16 << 20;

/** How a rule inherits from the merge rule that read it (rsync's "template"). */
export interface RuleTemplate {
  noPrefixes: 'include' | 'exclude' | null;
  cvs: boolean;
  wordSplit: boolean;
  /** Side flags forced on every rule of the file (a one-sided merge rule). */
  senderOnly: boolean;
  receiverOnly: boolean;
  perishable: boolean;
  dirOnly: boolean;
}

export const NO_TEMPLATE: RuleTemplate = {
  noPrefixes: null,
  cvs: false,
  wordSplit: false,
  senderOnly: false,
  receiverOnly: false,
  perishable: false,
  dirOnly: false,
};

/** A rule-syntax failure; `detail` may quote the rule, so callers parsing file content drop it. */
export class FilterSyntaxError extends ProtocolError {
  constructor(
    readonly reason: string,
    readonly detail: string,
  ) {
    super(`${reason}: ${detail}`, ExitCode.SYNTAX);
  }
}

const LONG_NAMES: ReadonlyArray<[string, string]> = [
  ['clear', '!'],
  ['dir-merge', ':'],
  ['exclude', '-'],
  ['hide', 'H'],
  ['include', '+'],
  ['merge', '.'],
  ['protect', 'P'],
  ['risk', 'R'],
  ['show', 'S'],
];

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}

/** rule_strcmp(): a long rule name followed by whitespace, '_', ',' or the end. Returns the modifier scan start. */
function matchLongName(text: string): { ch: string; next: number } | null {
  for (const [name, ch] of LONG_NAMES) {
    if (!text.startsWith(name)) continue;
    const after = text.charAt(name.length);
    if (after === '' || after === '_' || isSpace(after)) return { ch, next: name.length };
    if (after === ',') return { ch, next: name.length + 1 };
    return null;
  }
  return null;
}

interface Flags {
  action: FilterRule['action'];
  include: boolean;
  negate: boolean;
  absPath: boolean;
  cvs: boolean;
  noInherit: boolean;
  wordSplit: boolean;
  noPrefixes: boolean;
  excludeSelf: boolean;
  perishable: boolean;
  sender: boolean;
  receiver: boolean;
  xattr: boolean;
}

function newFlags(template: RuleTemplate): Flags {
  return {
    action: template.noPrefixes === 'include' ? 'include' : 'exclude',
    include: template.noPrefixes === 'include',
    negate: false,
    absPath: false,
    cvs: false,
    noInherit: false,
    wordSplit: false,
    noPrefixes: false,
    excludeSelf: false,
    perishable: template.perishable,
    sender: false,
    receiver: false,
    xattr: false,
  };
}

/** Parses the prefix character and modifiers (proto >= 29 grammar). Returns the pattern start. */
function parseModernPrefix(text: string, f: Flags, template: RuleTemplate): number {
  let ch: string;
  let i: number; // index of the last prefix char; modifiers start at i + 1
  const long = matchLongName(text);
  if (long) {
    ch = long.ch;
    i = long.next - 1;
  } else {
    ch = text.charAt(0);
    i = text.charAt(1) === ',' ? 1 : 0;
  }
  let sideFromPrefix = false;
  switch (ch) {
    case ':':
      f.action = 'dirMerge';
      break;
    case '.':
      f.action = 'merge';
      break;
    case '+':
      f.action = 'include';
      f.include = true;
      break;
    case '-':
      f.action = 'exclude';
      break;
    case 'S':
    case 'H':
      f.action = ch === 'S' ? 'include' : 'exclude';
      f.include = ch === 'S';
      f.sender = true;
      sideFromPrefix = true;
      break;
    case 'R':
    case 'P':
      f.action = ch === 'R' ? 'include' : 'exclude';
      f.include = ch === 'R';
      f.receiver = true;
      sideFromPrefix = true;
      break;
    case '!':
      f.action = 'clear';
      return i + 1;
    default:
      throw new FilterSyntaxError('Unknown filter rule', text);
  }
  const isMerge = f.action === 'merge' || f.action === 'dirMerge';
  for (i++; i < text.length; i++) {
    const m = text.charAt(i);
    if (m === ' ' || m === '_') break;
    if (template.wordSplit && isSpace(m)) {
      i--;
      break;
    }
    const invalid = (): never => {
      throw new FilterSyntaxError(`invalid modifier '${m}' at position ${i} in filter rule`, text);
    };
    switch (m) {
      case '-':
      case '+':
        if (!isMerge || f.noPrefixes) invalid();
        f.noPrefixes = true;
        f.include = m === '+';
        break;
      case '/':
        f.absPath = true;
        break;
      case '!':
        if (isMerge) invalid();
        f.negate = true;
        break;
      case 'C':
        if (f.noPrefixes || sideFromPrefix) invalid();
        f.noPrefixes = true;
        f.wordSplit = true;
        f.noInherit = true;
        f.cvs = true;
        break;
      case 'e':
        if (!isMerge) invalid();
        f.excludeSelf = true;
        break;
      case 'n':
        if (!isMerge) invalid();
        f.noInherit = true;
        break;
      case 'p':
        f.perishable = true;
        break;
      case 'r':
        if (sideFromPrefix) invalid();
        f.receiver = true;
        break;
      case 's':
        if (sideFromPrefix) invalid();
        f.sender = true;
        break;
      case 'w':
        if (!isMerge) invalid();
        f.wordSplit = true;
        break;
      case 'x':
        f.xattr = true;
        break;
      default:
        invalid();
    }
  }
  return i < text.length ? i + 1 : i;
}

/** Proto < 29 (XFLG_OLD_PREFIXES): only "+ " and "- " are prefixes; "!" alone clears. */
function parseOldPrefix(text: string, f: Flags): number {
  if (text.startsWith('- ')) {
    f.action = 'exclude';
    f.include = false;
    return 2;
  }
  if (text.startsWith('+ ')) {
    f.action = 'include';
    f.include = true;
    return 2;
  }
  if (text.charAt(0) === '!') f.action = 'clear'; // tentative: "!foo" is a pattern
  return 0;
}

/**
 * Parses one rule (rsync's parse_rule_tok + the pattern part of add_rule). `template` describes the
 * merge rule whose file the text came from (NO_TEMPLATE for the wire). Throws FilterSyntaxError.
 */
export function parseRuleWithTemplate(text: string, protocol: number, template: RuleTemplate): FilterRule {
  const nul = text.indexOf('\0');
  if (nul >= 0) text = text.slice(0, nul); // the reference parses C strings
  const f = newFlags(template);
  let start: number;
  if (template.noPrefixes) {
    // Merge file with '+'/'-': every token is a pattern; a lone "!" clears only in CVS mode.
    start = 0;
    if (template.cvs && text === '!') f.action = 'clear';
  } else if (protocol < 29) {
    start = parseOldPrefix(text, f);
  } else {
    start = parseModernPrefix(text, f, template);
  }
  let end = text.length;
  if (template.wordSplit) {
    end = start;
    while (end < text.length && !isSpace(text.charAt(end))) end++;
  }
  let pattern = text.slice(start, end);

  if (f.sender || f.receiver) {
    if (template.senderOnly || template.receiverOnly) {
      throw new FilterSyntaxError('specified-side merge file contains specified-side filter', text);
    }
  }
  const sideExplicit = f.sender || f.receiver || template.senderOnly || template.receiverOnly;
  if (template.senderOnly) f.sender = true;
  if (template.receiverOnly) f.receiver = true;

  if (f.action === 'clear') {
    if (!template.noPrefixes && protocol >= 29 && pattern.length > 0) {
      throw new FilterSyntaxError("'!' rule has trailing characters", text);
    }
    if (pattern.length <= 1) return clearRule();
    // "!foo" under the old grammar or in a no-prefix file is an ordinary pattern.
    f.action = f.include ? 'include' : 'exclude';
  } else if (pattern.length === 0 && !f.cvs) {
    throw new FilterSyntaxError('unexpected end of filter rule', text);
  }
  if (pattern.length > MAX_PATTERN_LEN) {
    throw new ProtocolError(`rrsyncd: over-long filter rule (${pattern.length} bytes)`, ExitCode.SYNTAX);
  }

  const senderSide = f.sender || !f.receiver;
  const receiverSide = f.receiver || !f.sender;
  if (f.action === 'merge' || f.action === 'dirMerge') {
    if (pattern.length === 0) pattern = '.cvsignore';
    return {
      action: f.action,
      pattern,
      dirOnly: template.dirOnly,
      anchored: false,
      negate: false,
      senderSide,
      receiverSide,
      sideExplicit,
      absPath: f.absPath,
      perishable: f.perishable,
      cvs: f.cvs,
      mergeOptions: {
        noInherit: f.noInherit,
        wordSplit: f.wordSplit,
        onlyInclude: f.noPrefixes && f.include,
        onlyExclude: f.noPrefixes && !f.include,
        excludeSelf: f.excludeSelf,
        cvs: f.cvs,
      },
      xattr: f.xattr,
    };
  }
  let dirOnly = template.dirOnly;
  if (pattern.length > 1 && pattern.endsWith('/')) {
    pattern = pattern.slice(0, -1);
    dirOnly = true;
  }
  const anchored = pattern.startsWith('/');
  if (anchored) pattern = pattern.slice(1);
  return {
    action: f.action,
    pattern,
    dirOnly,
    anchored,
    negate: f.negate,
    senderSide,
    receiverSide,
    sideExplicit,
    absPath: f.absPath,
    perishable: f.perishable,
    cvs: f.cvs,
    xattr: f.xattr,
  };
}

function clearRule(): FilterRule {
  return {
    action: 'clear',
    pattern: '',
    dirOnly: false,
    anchored: false,
    negate: false,
    senderSide: true,
    receiverSide: true,
    perishable: false,
    cvs: false,
    xattr: false,
  };
}

/**
 * True when a merge-file name would leave the transfer: a ".." component, or an absolute name.
 * Exception: a dir-merge name "/NAME" (one component) is what `-F` sends (": /.rsync-filter"); the
 * reference reads NAME from every directory between "/" and the transfer dir, then per directory.
 * We treat the transfer root as "/", like a daemon module, so it is simply NAME per directory.
 */
export function mergeNameEscapes(name: string, action: FilterRule['action']): boolean {
  const parts = name.split('/');
  if (parts.some((c) => c === '..')) return true;
  if (!name.startsWith('/')) return false;
  return !(action === 'dirMerge' && parts.length === 2 && parts[1] !== '' && parts[1] !== '.');
}

/** Refuses merge/dir-merge rules whose file lies outside the transfer (merge-file disclosure, docs/attacks.md §2.4). */
function assertMergeNameConfined(rule: FilterRule): void {
  if (rule.action !== 'merge' && rule.action !== 'dirMerge') return;
  if (mergeNameEscapes(rule.pattern, rule.action)) {
    throw new ProtocolError(`rrsyncd: filter merge file ${quoted(rule.pattern)} is outside the transfer`, ExitCode.SYNTAX);
  }
}

/** Parses one rule as received on the wire (or given on a command line). Merge files must stay inside the transfer. */
export function parseFilterRule(text: string, protocol: number): FilterRule {
  const rule = parseRuleWithTemplate(text, protocol, NO_TEMPLATE);
  assertMergeNameConfined(rule);
  return rule;
}

/** Reads the c2s filter list: repeated int32 length + rule text, ended by int32 0 (§5.2). */
export async function readFilterList(r: ProtocolReader, protocol: number): Promise<FilterRule[]> {
  const rules: FilterRule[] = [];
  let bytes = 0;
  for (let count = 0; ; count++) {
    const len = await r.readI32();
    if (len === 0) return rules;
    if (len < 0 || len > MAX_WIRE_RULE_LEN) throw new ProtocolError(`filter rule length ${len} out of range`);
    if (count >= MAX_WIRE_RULES) throw new ProtocolError(`too many filter rules (more than ${MAX_WIRE_RULES})`);
    bytes += len;
    if (bytes > MAX_WIRE_RULE_BYTES) throw new ProtocolError(`filter rules too long (more than ${MAX_WIRE_RULE_BYTES} bytes)`);
    const text = (await r.readBytes(len)).toString('latin1');
    rules.push(parseFilterRule(text, protocol));
  }
}

/** Writes a filter list (rule texts as byte strings), skipping empty rules as the reference does. */
export function writeFilterList(w: ProtocolWriter, rules: string[]): void {
  for (const text of rules) {
    if (text.length === 0) continue;
    const bytes = Buffer.from(text, 'latin1');
    w.i32(bytes.length);
    w.bytes(bytes);
  }
  w.i32(0);
}
