/**
 * Filter rule evaluation: rsync's wildmatch, rule_matches() and check_filter() semantics, per-directory
 * merge files (dir-merge) with inheritance, and the CVS defaults. Names are byte strings relative to
 * the transfer root. The transfer root plays the role of a daemon module root: nothing outside it is
 * ever read or matched against.
 *
 * Merge files (". FILE" rules) are read once, when the FilterSet is built, via readMergeFile relative
 * to the transfer root (a name without '/' inside a per-directory file, too: that is where the
 * reference opens it, its working directory). Names that are absolute or contain ".." are refused.
 */
import { ExitCode, ProtocolError } from '../protocol/errors.js';
import {
  CVS_DEFAULT_PATTERNS,
  FilterSyntaxError,
  mergeNameEscapes,
  NO_TEMPLATE,
  parseRuleWithTemplate,
  type FilterRule,
  type RuleTemplate,
} from '../protocol/filter.js';
import { quoted } from '../printable.js';
import { dirOf, joinRel } from './relpath.js';
import { errnoText, hasCode } from '../sandbox/errors.js';

/** A merge file's bytes, or null when it cannot be opened; a SandboxError 'EFBIG' when it is over the limit. */
export type MergeFileReader = (dirRel: string, fileName: string) => Buffer | null;

export interface FilterOptions {
  side: 'sender' | 'receiver';
  deleteExcluded?: boolean;
  cvsExclude?: boolean;
  protocol: number;
  readMergeFile?: MergeFileReader;
}

export interface DirFilter {
  /** Sender building the file list: true if this child (path relative to the transfer root) is excluded (hidden). */
  excluded(relPath: string, isDir: boolean): boolean;
  /**
   * Receiver deciding deletions: is this existing destination entry protected (excluded by a
   * receiver-side rule), and is it protected only by perishable rules (i.e. not protected once
   * perishable rules are ignored, the reference's ignore_perishable).
   */
  protectedFromDelete(relPath: string, isDir: boolean): { protected: boolean; perishable: boolean };
}

export const MAX_MERGE_FILE_BYTES = 1024 * 1024;
/** Rules in one merge file (the same bound as the wire list). */
export const MAX_MERGE_FILE_RULES = 100_000;
/** Rules held by cached directory states; older states are dropped (and rebuilt if asked again). */
const MAX_CACHED_RULES = 1_000_000;
/** The reference's MAX_MERGE_DEPTH (a merge file naming itself). */
const MAX_MERGE_DEPTH = 32;
/** Lines longer than the reference's line buffer are discarded, as it does. */
const MAX_MERGE_LINE = 4096 + 1024 - 1;
/** Directory states kept for parent lookups; older ones are rebuilt on demand. */
const DIR_CACHE_MAX = 8192;

// ---------------------------------------------------------------------------------------------
// wildmatch (rsync lib/wildmatch.c semantics, on byte strings)

const TRUE = 1;
const FALSE = 0;
const ABORT_ALL = -1;
const ABORT_TO_STARSTAR = -2;

const C_SLASH = 0x2f;
const C_STAR = 0x2a;
const C_QUESTION = 0x3f;
const C_LBRACKET = 0x5b;
const C_RBRACKET = 0x5d;
const C_BACKSLASH = 0x5c;
const C_BANG = 0x21;
const C_CARET = 0x5e;
const C_DASH = 0x2d;
const C_COLON = 0x3a;

function codeAt(s: string, i: number): number {
  return i < s.length ? s.charCodeAt(i) : 0;
}

function isAsciiClass(name: string, c: number): boolean | null {
  switch (name) {
    case 'alnum':
      return isDigit(c) || isUpper(c) || isLower(c);
    case 'alpha':
      return isUpper(c) || isLower(c);
    case 'blank':
      return c === 0x20 || c === 0x09;
    case 'cntrl':
      return c < 0x20 || c === 0x7f;
    case 'digit':
      return isDigit(c);
    case 'graph':
      return c > 0x20 && c < 0x7f;
    case 'lower':
      return isLower(c);
    case 'print':
      return c >= 0x20 && c < 0x7f;
    case 'punct':
      return c > 0x20 && c < 0x7f && !isDigit(c) && !isUpper(c) && !isLower(c);
    case 'space':
      return c === 0x20 || (c >= 0x09 && c <= 0x0d);
    case 'upper':
      return isUpper(c);
    case 'xdigit':
      return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
    default:
      return null; // malformed [:class:]
  }
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isUpper(c: number): boolean {
  return c >= 0x41 && c <= 0x5a;
}
function isLower(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}

/** Matches a bracket expression starting at p[pi] === '['. Returns the index of the closing ']' or an abort. */
function matchBracket(p: string, pi: number, tch: number): { end: number; matched: boolean } | typeof ABORT_ALL {
  let pch = codeAt(p, ++pi);
  if (pch === C_CARET) pch = C_BANG;
  const negated = pch === C_BANG;
  if (negated) pch = codeAt(p, ++pi);
  let prev = 0;
  let matched = false;
  for (;;) {
    if (!pch) return ABORT_ALL;
    if (pch === C_BACKSLASH) {
      pch = codeAt(p, ++pi);
      if (!pch) return ABORT_ALL;
      if (tch === pch) matched = true;
    } else if (pch === C_DASH && prev && codeAt(p, pi + 1) && codeAt(p, pi + 1) !== C_RBRACKET) {
      pch = codeAt(p, ++pi);
      if (pch === C_BACKSLASH) {
        pch = codeAt(p, ++pi);
        if (!pch) return ABORT_ALL;
      }
      if (tch <= pch && tch >= prev) matched = true;
      pch = 0; // a range end cannot start another range
    } else if (pch === C_LBRACKET && codeAt(p, pi + 1) === C_COLON) {
      const s = (pi += 2);
      while (codeAt(p, pi) && codeAt(p, pi) !== C_RBRACKET) pi++;
      if (!codeAt(p, pi)) return ABORT_ALL;
      const len = pi - s - 1;
      if (len < 0 || codeAt(p, pi - 1) !== C_COLON) {
        // No ":]": the '[' is an ordinary member.
        pi = s - 2;
        pch = C_LBRACKET;
        if (tch === pch) matched = true;
      } else {
        const r = isAsciiClass(p.slice(s, s + len), tch);
        if (r === null) return ABORT_ALL;
        if (r) matched = true;
        pch = 0;
      }
    } else if (tch === pch) {
      matched = true;
    }
    prev = pch;
    pch = codeAt(p, ++pi);
    if (pch === C_RBRACKET) break;
  }
  return { end: pi, matched: matched !== negated && tch !== C_SLASH };
}

function dowild(p: string, pi: number, t: string, ti: number): number {
  const plen = p.length;
  const tlen = t.length;
  for (; pi < plen; pi++, ti++) {
    let pch = p.charCodeAt(pi);
    if (ti >= tlen && pch !== C_STAR) return ABORT_ALL;
    const tch = ti < tlen ? t.charCodeAt(ti) : 0;
    if (pch === C_BACKSLASH) {
      // Literal match with the escaped char (a trailing '\\' compares with NUL and fails).
      pch = codeAt(p, ++pi);
      if (tch !== pch) return FALSE;
      continue;
    }
    switch (pch) {
      case C_QUESTION:
        if (tch === C_SLASH) return FALSE;
        continue;
      case C_STAR: {
        let special = false;
        if (codeAt(p, ++pi) === C_STAR) {
          while (codeAt(p, ++pi) === C_STAR) {
            /* collapse a run of stars */
          }
          special = true;
        }
        if (pi >= plen) {
          // Trailing "**" matches everything; trailing "*" only if no '/' remains.
          if (!special && t.indexOf('/', ti) !== -1) return FALSE;
          return TRUE;
        }
        for (; ti < tlen; ti++) {
          const m = dowild(p, pi, t, ti);
          if (m !== FALSE) {
            if (!special || m !== ABORT_TO_STARSTAR) return m;
          } else if (!special && t.charCodeAt(ti) === C_SLASH) {
            return ABORT_TO_STARSTAR;
          }
        }
        return ABORT_ALL;
      }
      case C_LBRACKET: {
        const b = matchBracket(p, pi, tch);
        if (b === ABORT_ALL) return ABORT_ALL;
        if (!b.matched) return FALSE;
        pi = b.end;
        continue;
      }
      default:
        if (tch !== pch) return FALSE;
        continue;
    }
  }
  return ti >= tlen ? TRUE : FALSE;
}

/** rsync's wildmatch(): true when the whole text matches the pattern. */
export function wildmatch(pattern: string, text: string): boolean {
  return dowild(pattern, 0, text, 0) === TRUE;
}

/** wildmatch_array(where < 0): the pattern may match at the start or after any '/'. */
function wildmatchAnywhere(pattern: string, text: string): boolean {
  let m = dowild(pattern, 0, text, 0);
  if (m === TRUE) return true;
  if (m === ABORT_ALL) return false;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) !== C_SLASH) continue;
    m = dowild(pattern, 0, text, i + 1);
    if (m !== FALSE && m !== ABORT_TO_STARSTAR) break;
  }
  return m === TRUE;
}

/** trailing_N_elements(): the last n '/'-separated elements of text, or null when it has fewer. */
function trailingElements(text: string, n: number): string | null {
  let count = n;
  for (let i = text.length - 1; i >= 0; i--) {
    if (text.charCodeAt(i) === C_SLASH && --count === 0) return text.slice(i + 1);
  }
  return count === 1 ? text : null;
}

// ---------------------------------------------------------------------------------------------
// Compiled rules

const enum Scope {
  /** Pattern without '/' or '**': matched against the last component. */
  Basename,
  /** Anchored, or starts with '**': matched against the whole path. */
  Whole,
  /** Unanchored with '/' and no '**': matched against the last slashCount+1 components. */
  Trailing,
  /** Unanchored with an infix/trailing '**': matched at the start or after any '/'. */
  Anywhere,
}

const enum Fast {
  Equal,
  Suffix, // "*LIT" on a basename
  Prefix, // "LIT*" on a basename
  Any, // "*" on a basename
  Wild,
}

interface MatchEntry {
  kind: 'match';
  include: boolean;
  negate: boolean;
  dirOnly: boolean;
  perishable: boolean;
  /** Anchored rules: the directory they are anchored at ('' = the transfer root); null = unanchored. */
  baseDir: string | null;
  pattern: string;
  scope: Scope;
  trailingCount: number;
  wild2Prefix: boolean;
  wild3Suffix: boolean;
  fast: Fast;
  literal: string; // for Suffix / Prefix
  /** Fast.Wild: a run of literal bytes every match must contain ('' = none worth checking). */
  mustContain: string;
}

interface MergeSlot {
  kind: 'dirMerge';
  fileName: string;
  /** The name came from a merge file's content (never shown in messages). */
  nameFromFile: boolean;
  template: RuleTemplate;
  noInherit: boolean;
  perishable: boolean;
}

type Entry = MatchEntry | MergeSlot;

/** A per-directory list: this directory's rules, then the inherited ones. */
interface MergeList {
  local: Entry[];
  parent: MergeList | null;
}

type DirState = Map<MergeSlot, MergeList>;

const EMPTY_LIST: MergeList = { local: [], parent: null };
const HIDDEN_NAME = 'named in a merge file';

const WILD_CHARS = /[*?[]/;
const GLOB_SPECIALS = /[*?[\\]/;

function compileMatch(rule: FilterRule, baseDir: string): MatchEntry {
  const pattern = rule.pattern;
  const wild = WILD_CHARS.test(pattern);
  const wild2 = wild && pattern.includes('**');
  const anchored = rule.anchored;
  const wild2Prefix = wild2 && !anchored && pattern.startsWith('**');
  const wild3Suffix = wild2 && pattern.endsWith('***');
  let slashCount = 0;
  for (let i = 0; i < pattern.length; i++) if (pattern.charCodeAt(i) === C_SLASH) slashCount++;
  let scope: Scope;
  if (!anchored && slashCount === 0 && !wild2) scope = Scope.Basename;
  else if (!anchored && slashCount > 0 && !wild2) scope = Scope.Trailing;
  else if (!anchored && !wild2Prefix && wild2) scope = Scope.Anywhere;
  else scope = Scope.Whole;

  let fast = wild ? Fast.Wild : Fast.Equal;
  let literal = '';
  if (wild && scope === Scope.Basename) {
    if (pattern === '*') fast = Fast.Any;
    else if (pattern.startsWith('*') && !GLOB_SPECIALS.test(pattern.slice(1))) {
      fast = Fast.Suffix;
      literal = pattern.slice(1);
    } else if (pattern.endsWith('*') && !GLOB_SPECIALS.test(pattern.slice(0, -1))) {
      fast = Fast.Prefix;
      literal = pattern.slice(0, -1);
    }
  }
  return {
    kind: 'match',
    mustContain: fast === Fast.Wild ? longestLiteralRun(pattern) : '',
    include: rule.action === 'include',
    negate: rule.negate,
    dirOnly: rule.dirOnly,
    perishable: rule.perishable,
    baseDir: anchored ? baseDir : null,
    pattern,
    scope,
    trailingCount: slashCount + 1,
    wild2Prefix,
    wild3Suffix,
    fast,
    literal,
  };
}

/** The longest run of bytes the pattern matches literally (wildcards and classes break runs). */
function longestLiteralRun(pattern: string): string {
  let best = '';
  let run = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charCodeAt(i);
    if (c === C_STAR || c === C_QUESTION || c === C_LBRACKET) {
      if (run.length > best.length) best = run;
      run = '';
      if (c === C_LBRACKET) {
        // Skip the class conservatively: stop collecting for the rest of the pattern.
        return best.length >= 2 ? best : '';
      }
      continue;
    }
    if (c === C_BACKSLASH) {
      if (i + 1 >= pattern.length) break;
      run += pattern.charAt(++i);
      continue;
    }
    run += pattern.charAt(i);
  }
  if (run.length > best.length) best = run;
  return best.length >= 2 ? best : '';
}

/** rsync's rule_matches(): does this rule apply to the name (negation included)? */
function entryMatches(e: MatchEntry, path: string, base: string, isDir: boolean): boolean {
  if (path.length === 0) return false;
  if (e.dirOnly && !isDir) return e.negate;
  return rawMatch(e, path, base, isDir) !== e.negate;
}

function rawMatch(e: MatchEntry, path: string, base: string, isDir: boolean): boolean {
  if (e.scope === Scope.Basename) {
    switch (e.fast) {
      case Fast.Equal:
        return base === e.pattern;
      case Fast.Any:
        return true;
      case Fast.Suffix:
        return base.endsWith(e.literal);
      case Fast.Prefix:
        return base.startsWith(e.literal);
      default:
        if (e.mustContain !== '' && !base.includes(e.mustContain)) return false;
        return wildmatch(e.pattern, base);
    }
  }
  let text = path;
  if (e.baseDir !== null && e.baseDir !== '') {
    // Anchored in a per-directory merge file: relative to that directory.
    if (!path.startsWith(e.baseDir) || path.charCodeAt(e.baseDir.length) !== C_SLASH) return false;
    text = path.slice(e.baseDir.length + 1);
  }
  if (e.wild2Prefix) text = '/' + text; // lets a leading "**/" match at the start
  if (isDir && e.wild3Suffix) text += '/'; // lets "dir/***" match dir itself
  if (e.fast === Fast.Equal) {
    if (e.scope === Scope.Trailing) return trailingElements(text, e.trailingCount) === e.pattern;
    return text === e.pattern;
  }
  if (e.mustContain !== '' && !text.includes(e.mustContain)) return false;
  switch (e.scope) {
    case Scope.Trailing: {
      const sub = trailingElements(text, e.trailingCount);
      return sub !== null && wildmatch(e.pattern, sub);
    }
    case Scope.Anywhere:
      return wildmatchAnywhere(e.pattern, text);
    default:
      return wildmatch(e.pattern, text);
  }
}

// ---------------------------------------------------------------------------------------------
// FilterSet

function templateOf(rule: FilterRule): RuleTemplate {
  const mo = rule.mergeOptions;
  return {
    noPrefixes: mo?.onlyInclude ? 'include' : mo?.onlyExclude || mo?.cvs ? 'exclude' : null,
    cvs: mo?.cvs ?? false,
    wordSplit: (mo?.wordSplit ?? false) || (mo?.cvs ?? false),
    senderOnly: rule.senderSide && !rule.receiverSide,
    receiverOnly: rule.receiverSide && !rule.senderSide,
    perishable: rule.perishable,
    dirOnly: rule.dirOnly,
  };
}

function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}

/** Normalises a directory path relative to the transfer root: no leading "./" or '/', no trailing '/'. */
function normalizeDir(dirRel: string): string {
  let d = dirRel;
  while (d.startsWith('./')) d = d.slice(2);
  while (d.startsWith('/')) d = d.slice(1);
  while (d.endsWith('/')) d = d.slice(0, -1);
  if (d === '.') d = '';
  return d;
}

/** Where rules being parsed come from, for error messages that never quote file content. */
interface Source {
  /** Rule text came from a file (do not echo it, nor names it mentions). */
  fromFile: boolean;
  /** Anchored rules anchor here ('' = transfer root). */
  anchorDir: string;
  /** Directory a per-directory file was read from (relative merge names with '/' resolve here). */
  dir: string;
  depth: number;
  /** Basenames of active dir-merge files (a repeated one is ignored, as in the reference). */
  activeNames: Set<string>;
}

export class FilterSet {
  readonly empty: boolean;
  private readonly top: Entry[];
  private readonly side: 'sender' | 'receiver';
  private readonly deleteExcluded: boolean;
  private readonly protocol: number;
  private readonly reader: MergeFileReader | undefined;
  private readonly hasDirMerge: boolean;
  private readonly rootFilter: DirFilterImpl;
  private readonly cache = new Map<string, DirFilterImpl>();
  /** Rules loaded while building the current directory state. */
  private buildRules = 0;
  private cachedRules = 0;

  constructor(rules: FilterRule[], opts: FilterOptions) {
    this.side = opts.side;
    this.deleteExcluded = opts.deleteExcluded ?? false;
    this.protocol = opts.protocol;
    this.reader = opts.readMergeFile;
    const all = [...rules];
    if (opts.cvsExclude) {
      // recv_filter_list(): a server sender adds ":C" and "-C" itself (a client receiver keeps
      // them local); a receiver adds ":C" only below protocol 29, where it cannot be sent.
      if (opts.side === 'sender' || opts.protocol < 29) all.push(parseRuleWithTemplate(':C', 30, NO_TEMPLATE));
      if (opts.side === 'sender') all.push(parseRuleWithTemplate('-C', 30, NO_TEMPLATE));
    }
    const src: Source = { fromFile: false, anchorDir: '', dir: '', depth: 0, activeNames: new Set() };
    this.top = [];
    for (const rule of all) this.addRule(this.top, rule, src);
    this.hasDirMerge = this.top.some((e) => e.kind === 'dirMerge');
    if (this.hasDirMerge && !this.reader) {
      throw new ProtocolError('rrsyncd: per-directory filter merge files cannot be read here', ExitCode.FILEIO);
    }
    this.empty = this.top.length === 0;
    this.rootFilter = new DirFilterImpl(this, new Map(), 0);
  }

  /** Call for each directory while walking, parents before children ('' is the transfer root). */
  enterDir(dirRel: string): DirFilter {
    if (!this.hasDirMerge) return this.rootFilter;
    return this.dirFilterFor(normalizeDir(dirRel));
  }

  private dirFilterFor(dir: string): DirFilterImpl {
    const cached = this.cache.get(dir);
    if (cached) return cached;
    const parentState = dir === '' ? null : this.dirFilterFor(dirOf(dir)).state;
    this.buildRules = 0;
    const state: DirState = new Map();
    const activeNames = new Set<string>();
    for (const e of this.top) if (e.kind === 'dirMerge') activeNames.add(e.fileName);
    if (parentState) for (const slot of parentState.keys()) activeNames.add(slot.fileName);
    const visit = (entries: Iterable<Entry>): void => {
      for (const e of entries) if (e.kind === 'dirMerge') this.loadSlot(e, dir, parentState, state, activeNames, visit);
    };
    visit(this.top);
    const filter = new DirFilterImpl(this, state, this.buildRules);
    while (this.cache.size > 0 && (this.cache.size >= DIR_CACHE_MAX || this.cachedRules + filter.ruleCount > MAX_CACHED_RULES)) {
      const [oldestDir, oldest] = this.cache.entries().next().value as [string, DirFilterImpl];
      this.cache.delete(oldestDir);
      this.cachedRules -= oldest.ruleCount;
    }
    this.cache.set(dir, filter);
    this.cachedRules += filter.ruleCount;
    return filter;
  }

  private loadSlot(
    slot: MergeSlot,
    dir: string,
    parentState: DirState | null,
    state: DirState,
    activeNames: Set<string>,
    visit: (entries: Iterable<Entry>) => void,
  ): void {
    if (state.has(slot)) return;
    const inherited = slot.noInherit ? null : (parentState?.get(slot) ?? null);
    state.set(slot, { local: [], parent: inherited }); // placeholder against cycles
    // Anchored rules of a per-directory file anchor at its directory.
    const content: Source = { fromFile: true, anchorDir: dir, dir, depth: 1, activeNames };
    const shown = slot.nameFromFile ? HIDDEN_NAME : quoted(joinRel(dir, slot.fileName));
    const { entries, cleared } = this.readRules(dir, slot.fileName, slot.template, shown, content, false);
    const list: MergeList =
      entries.length === 0 && !cleared ? (inherited ?? EMPTY_LIST) : { local: entries, parent: cleared ? null : inherited };
    state.set(slot, list);
    for (let l: MergeList | null = list; l; l = l.parent) visit(l.local);
  }

  /**
   * Reads and parses one merge file. `shown` names it in messages (never file content);
   * `content` describes the rules read; `required`: a missing file is an error (". FILE" rules).
   */
  private readRules(
    dir: string,
    fileName: string,
    template: RuleTemplate,
    shown: string,
    content: Source,
    required: boolean,
  ): { entries: Entry[]; cleared: boolean } {
    const buf = this.readMergeFile(dir, fileName, template, shown);
    if (buf === null) {
      if (required) throw new ProtocolError(`rrsyncd: failed to open filter merge file ${shown}`, ExitCode.FILEIO);
      return { entries: [], cleared: false };
    }
    const entries: Entry[] = [];
    let cleared = false;
    const tokens = splitMergeFile(buf.toString('latin1'), template.wordSplit);
    if (tokens.length > MAX_MERGE_FILE_RULES) {
      throw new ProtocolError(`rrsyncd: too many rules in filter merge file ${shown} (more than ${MAX_MERGE_FILE_RULES})`, ExitCode.SYNTAX);
    }
    this.buildRules += tokens.length;
    let where = 0;
    for (const token of tokens) {
      where++;
      let rule: FilterRule;
      try {
        rule = parseRuleWithTemplate(token, 32, template);
      } catch (err) {
        if (err instanceof ProtocolError) {
          // Never quote merge-file content: the peer picks the file (peers-and-attacks §2.4).
          const what = err instanceof FilterSyntaxError ? 'invalid filter rule' : 'unusable filter rule';
          throw new ProtocolError(`rrsyncd: ${what} in filter merge file ${shown} (${template.wordSplit ? 'word' : 'line'} ${where})`, ExitCode.SYNTAX);
        }
        throw err;
      }
      if (rule.action === 'clear') {
        entries.length = 0;
        cleared = true;
        continue;
      }
      this.addRule(entries, rule, content);
    }
    return { entries, cleared };
  }

  /**
   * One merge file's bytes, or null when it cannot be opened. A file over MAX_MERGE_FILE_BYTES is
   * fatal, as a merge file that cannot be read is for rsync (exclude.c parse_filter_file, exit 11):
   * skipping it would silently drop the protect rules it holds.
   */
  private readMergeFile(dir: string, fileName: string, template: RuleTemplate, shown: string): Buffer | null {
    const reader = this.reader;
    if (!reader) throw new ProtocolError(`rrsyncd: filter merge file ${shown} cannot be read here`, ExitCode.FILEIO);
    try {
      return reader(dir, fileName);
    } catch (err) {
      if (!hasCode(err, 'EFBIG')) throw err;
      const who = this.side === 'sender' ? 'sender' : 'generator';
      const kind = template.noPrefixes === 'include' ? 'include' : 'exclude';
      throw new ProtocolError(
        `rsync: [${who}] failed to open ${kind} file ${shown}: ${errnoText('EFBIG')} (limit ${MAX_MERGE_FILE_BYTES} bytes)`,
        ExitCode.FILEIO,
      );
    }
  }

  /** add_rule() for one parsed rule: side filtering, CVS expansion, merge expansion, compilation. */
  private addRule(list: Entry[], rule: FilterRule, src: Source): void {
    switch (rule.action) {
      case 'clear':
        list.length = 0;
        return;
      case 'merge':
      case 'dirMerge':
        this.addMergeRule(list, rule, src);
        return;
      default:
        break;
    }
    if (rule.xattr || !this.appliesHere(rule)) return;
    if (rule.cvs) {
      this.addCvsDefaults(list, rule);
      return;
    }
    list.push(compileMatch(rule, src.anchorDir));
  }

  private appliesHere(rule: FilterRule): boolean {
    let receiver = rule.receiverSide;
    const plain = rule.senderSide && rule.receiverSide && !rule.sideExplicit;
    // --delete-excluded turns a plain rule into a sender-side one (parse_rule_tok).
    if (plain && this.deleteExcluded && rule.action !== 'merge' && rule.action !== 'dirMerge') receiver = false;
    return this.side === 'sender' ? rule.senderSide : receiver;
  }

  /** "-C": the default CVS list at this position; perishable from protocol 30. */
  private addCvsDefaults(list: Entry[], rule: FilterRule): void {
    const template: RuleTemplate = {
      noPrefixes: rule.action === 'include' ? 'include' : 'exclude',
      cvs: true,
      wordSplit: true,
      senderOnly: rule.senderSide && !rule.receiverSide,
      receiverOnly: rule.receiverSide && !rule.senderSide,
      perishable: rule.perishable || this.protocol >= 30,
      dirOnly: rule.dirOnly,
    };
    for (const pat of CVS_DEFAULT_PATTERNS) {
      const r = parseRuleWithTemplate(pat, 32, template);
      if (this.appliesHere(r)) list.push(compileMatch(r, ''));
    }
  }

  private addMergeRule(list: Entry[], rule: FilterRule, src: Source): void {
    if (mergeNameEscapes(rule.pattern, rule.action)) {
      const shown = src.fromFile ? HIDDEN_NAME : quoted(rule.pattern);
      throw new ProtocolError(`rrsyncd: filter merge file ${shown} is outside the transfer`, ExitCode.SYNTAX);
    }
    if (src.depth >= MAX_MERGE_DEPTH) {
      throw new ProtocolError(`rrsyncd: filter merge-file nesting deeper than ${MAX_MERGE_DEPTH}`, ExitCode.SYNTAX);
    }
    const name = baseName(rule.pattern);
    // A merge rule whose rules all belong to the other side contributes nothing here.
    const oneSided = rule.senderSide !== rule.receiverSide;
    const usable = !oneSided || (this.side === 'sender' ? rule.senderSide : rule.receiverSide);
    if (rule.mergeOptions?.excludeSelf) {
      // 'e': exclude the merge file itself (a plain rule, both sides), just before the merge rule.
      list.push(compileMatch(excludeSelfRule(name), src.anchorDir));
    }
    if (!usable) return;
    const template = templateOf(rule);
    if (rule.action === 'dirMerge') {
      if (src.activeNames.has(name)) return; // the reference ignores a repeated dir-merge file
      src.activeNames.add(name);
      list.push({
        kind: 'dirMerge',
        fileName: name,
        nameFromFile: src.fromFile,
        template,
        noInherit: rule.mergeOptions?.noInherit ?? false,
        perishable: rule.perishable,
      });
      return;
    }
    // ". FILE": read now. A name with '/' is relative to the current directory, a bare name to the
    // transfer root (the reference opens a bare name relative to its working directory).
    const path = rule.pattern.includes('/') ? joinRel(src.dir, rule.pattern) : rule.pattern;
    const clean = path.split('/').filter((c) => c !== '' && c !== '.');
    const fileName = clean.pop();
    if (fileName === undefined) throw new ProtocolError('rrsyncd: empty filter merge file name', ExitCode.SYNTAX);
    // Anchored rules of a ". FILE" anchor at the transfer root (no XFLG_ANCHORED2ABS in the reference).
    const content: Source = { ...src, fromFile: true, anchorDir: '', depth: src.depth + 1 };
    const shown = src.fromFile ? HIDDEN_NAME : quoted(rule.pattern);
    const { entries, cleared } = this.readRules(clean.join('/'), fileName, template, shown, content, true);
    if (cleared) list.length = 0;
    for (const e of entries) list.push(e);
  }

  /** First rule that decides `path` in a directory state, or null. */
  firstMatch(state: DirState, path: string, isDir: boolean, skipPerishable: boolean): MatchEntry | null {
    if (path.charCodeAt(0) === C_SLASH) path = path.slice(1);
    const base = baseName(path);
    return this.scan(this.top, state, path, base, isDir, skipPerishable);
  }

  private scan(entries: Entry[], state: DirState, path: string, base: string, isDir: boolean, skipPerishable: boolean): MatchEntry | null {
    for (const e of entries) {
      if (skipPerishable && e.perishable) continue;
      if (e.kind === 'dirMerge') {
        for (let l = state.get(e) ?? null; l; l = l.parent) {
          const hit = this.scan(l.local, state, path, base, isDir, skipPerishable);
          if (hit) return hit;
        }
        continue;
      }
      if (entryMatches(e, path, base, isDir)) return e;
    }
    return null;
  }
}

function excludeSelfRule(name: string): FilterRule {
  return {
    action: 'exclude',
    pattern: name,
    dirOnly: false,
    anchored: false,
    negate: false,
    senderSide: true,
    receiverSide: true,
    sideExplicit: true, // built directly by the reference, so --delete-excluded leaves it two-sided
    perishable: false,
    cvs: false,
    xattr: false,
  };
}

/** Splits merge-file text into rule strings: words, or lines without comments (parse_filter_file). */
export function splitMergeFile(text: string, wordSplit: boolean): string[] {
  const out: string[] = [];
  if (wordSplit) {
    for (const w of text.split(/[ \t\n\v\f\r]+/)) if (w.length > 0 && w.length <= MAX_MERGE_LINE) out.push(w);
    return out;
  }
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line.length === 0 || line.length > MAX_MERGE_LINE) continue;
    if (line.startsWith(';') || line.startsWith('#')) continue;
    out.push(line);
  }
  return out;
}

class DirFilterImpl implements DirFilter {
  constructor(
    private readonly set: FilterSet,
    readonly state: DirState,
    readonly ruleCount: number,
  ) {}

  excluded(relPath: string, isDir: boolean): boolean {
    const hit = this.set.firstMatch(this.state, relPath, isDir, false);
    return hit !== null && !hit.include;
  }

  protectedFromDelete(relPath: string, isDir: boolean): { protected: boolean; perishable: boolean } {
    const hit = this.set.firstMatch(this.state, relPath, isDir, false);
    if (hit === null || hit.include) return { protected: false, perishable: false };
    if (!hit.perishable) return { protected: true, perishable: false };
    const solid = this.set.firstMatch(this.state, relPath, isDir, true);
    return { protected: true, perishable: solid === null || solid.include };
  }
}
