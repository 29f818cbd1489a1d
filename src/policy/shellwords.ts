/**
 * POSIX shell word splitting for SSH exec command strings, without any expansion: quotes and
 * backslashes are removed as sh removes them, `$`, `*`, `~` and friends stay literal. Unquoted
 * control operators (`;`, `&`, `|`, `<`, `>`, `(`, `)`, backquote) are refused rather than
 * ignored, because sh would give them a meaning we never honour.
 */
import { ExitCode, RsyncError } from '../protocol/errors.js';

/** A command string sh would not split the way we can honour (unterminated quote, operator). */
export class ShellSyntaxError extends RsyncError {
  constructor(message: string) {
    super(message, ExitCode.SYNTAX);
    this.name = 'ShellSyntaxError';
  }
}

const BLANKS = new Set([' ', '\t', '\n']);
const OPERATORS = new Set([';', '&', '|', '<', '>', '(', ')', '`']);
/** Inside double quotes a backslash only escapes these (and a newline). */
const DQUOTE_ESCAPABLE = new Set(['$', '`', '"', '\\', '\n']);

export function splitShellWords(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const n = command.length;

  while (i < n) {
    const c = command[i]!;
    if (BLANKS.has(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (c === '#' && !inWord) {
      break; // a comment runs to the end of the line; exec commands are one line
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0) throw new ShellSyntaxError('unterminated single quote in command');
      word += command.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      const [text, next] = readDoubleQuoted(command, i + 1);
      word += text;
      inWord = true;
      i = next;
    } else if (c === '\\') {
      if (i + 1 >= n) {
        word += '\\';
        inWord = true;
        i++;
      } else if (command[i + 1] === '\n') {
        i += 2; // line continuation
      } else {
        word += command[i + 1];
        inWord = true;
        i += 2;
      }
    } else if (OPERATORS.has(c)) {
      throw new ShellSyntaxError(`unquoted shell operator '${c}' in command`);
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** Reads from just after an opening `"`; returns the unquoted text and the index after the closing `"`. */
function readDoubleQuoted(command: string, start: number): [string, number] {
  let text = '';
  let i = start;
  while (i < command.length) {
    const c = command[i]!;
    if (c === '"') return [text, i + 1];
    if (c === '\\' && i + 1 < command.length && DQUOTE_ESCAPABLE.has(command[i + 1]!)) {
      if (command[i + 1] !== '\n') text += command[i + 1];
      i += 2;
    } else {
      text += c;
      i++;
    }
  }
  throw new ShellSyntaxError('unterminated double quote in command');
}

/** True when argv is an rsync server invocation: `rsync` or a path ending in `/rsync`, then `--server`. */
export function isRsyncServerArgv(argv: readonly string[]): boolean {
  const prog = argv[0];
  if (prog === undefined || argv[1] !== '--server') return false;
  return prog === 'rsync' || prog.endsWith('/rsync');
}
