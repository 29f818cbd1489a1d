/**
 * One filter rule compiled for matching (rsync's exclude.c rule_matches): which part of a path the
 * pattern is held against, and the fast paths for literal, prefix and suffix patterns.
 */
import type { FilterRule } from '../protocol/filter.js';
import { C_BACKSLASH, C_LBRACKET, C_QUESTION, C_SLASH, C_STAR, trailingElements, wildmatch, wildmatchAnywhere } from './wildmatch.js';

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

export interface MatchEntry {
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
  /** The rule's text came from a file's contents: a trace says where, never what (exclude.c rule_text()). */
  fromFile: boolean;
  /** The trace suffix of the list holding the rule (exclude.c debug_type): '' or " [per-dir NAME]". */
  listType: string;
}

const WILD_CHARS = /[*?[]/;
const GLOB_SPECIALS = /[*?[\\]/;

export function compileMatch(rule: FilterRule, baseDir: string, fromFile = false, listType = ''): MatchEntry {
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
    fromFile,
    listType,
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
export function entryMatches(e: MatchEntry, path: string, base: string, isDir: boolean): boolean {
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
