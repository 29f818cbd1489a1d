/**
 * exclude.c report_filter_result(): at -vv (DEBUG_GTE(FILTER, 1)) the sender names the rule that
 * decided each name it hides or shows. A rule whose text came from a file's contents is named by
 * where it came from, never by what it says (exclude.c rule_text(); docs/attacks.md §2.4).
 */
import { printable } from '../printable.js';
import type { MatchEntry } from './filter-rules.js';

/** exclude.c rule_text() for text that came from a file: where it came from, never what it says. */
export function ruleFrom(where: string): string {
  return `<rule from ${where}>`;
}
/** A file's rules are matched after it was read, when the reference no longer knows where it was. */
export const READ_EARLIER = 'a file read earlier';

/** The MSG_INFO line for `name` decided by `e` (the trailing '/' of a directory-only rule put back). */
export function filterTraceLine(e: MatchEntry, name: string, isDir: boolean): string {
  const text = e.fromFile ? ruleFrom(READ_EARLIER) : `${e.baseDir !== null ? '/' : ''}${e.pattern}${e.dirOnly ? '/' : ''}`;
  const action = e.include ? 'showing' : 'hiding';
  return `[sender] ${action} ${isDir ? 'directory' : 'file'} ${printable(name)} because of pattern ${printable(text + e.listType)}\n`;
}
