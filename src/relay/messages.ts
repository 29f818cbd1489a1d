/**
 * What reaches the user's terminal: the sides' messages as a stock client prints them (info on
 * stdout, errors and warnings on stderr, `deleting …`), and the lines the relay prints itself as
 * the client would (names with -v, itemized changes with -i, progress, totals).
 */
import { MsgTag } from '../protocol/mux.js';
import { isDevice, isDir, isSpecial, isSymlink, type FileEntry } from '../protocol/flist/entry.js';
import { ITEM, isSignificant, itemizeText } from '../protocol/itemize.js';
import type { RelayOptions } from './args.js';

export interface Terminal {
  out(text: string): void;
  err(text: string): void;
}

export function processTerminal(): Terminal {
  return {
    out: (text) => void process.stdout.write(Buffer.from(text, 'latin1')),
    err: (text) => void process.stderr.write(Buffer.from(text, 'latin1')),
  };
}

/** Prints a side's text message; returns false for tags that are not text. */
export function printSideMessage(term: Terminal, o: RelayOptions, tag: number, payload: Buffer): boolean {
  const text = payload.toString('latin1');
  switch (tag) {
    case MsgTag.INFO:
      term.out(text);
      return true;
    case MsgTag.ERROR:
    case MsgTag.ERROR_XFER:
    case MsgTag.WARNING:
      term.err(text);
      return true;
    case MsgTag.DELETED: {
      // A directory name arrives with a trailing NUL.
      const dir = text.endsWith('\0');
      const name = dir ? `${text.slice(0, -1)}/` : text;
      if (o.itemize) term.out(`*deleting   ${name}\n`);
      else if (o.verbose) term.out(`deleting ${name}\n`);
      return true;
    }
    default:
      return false;
  }
}

function typeChar(e: FileEntry): string {
  if (isDir(e)) return 'd';
  if (isSymlink(e)) return 'L';
  if (isDevice(e)) return 'D';
  if (isSpecial(e)) return 'S';
  return 'f';
}

function displayName(e: FileEntry): string {
  let name = e.name;
  if (isDir(e) && name !== '.') name += '/';
  else if (isDir(e)) name = './';
  if (isSymlink(e) && e.linkTarget !== undefined) name += ` -> ${e.linkTarget}`;
  return name;
}

/** The destination's itemized record for `e`, printed as a sending client logs it. */
export function logItem(term: Terminal, o: RelayOptions, iflags: number, e: FileEntry): void {
  if (!o.verbose && !o.itemize) return;
  const transfer = (iflags & ITEM.TRANSFER) !== 0;
  if (!transfer && !isSignificant(iflags) && o.itemize < 2) return;
  if (o.itemize) term.out(`${itemizeText(iflags, typeChar(e), '<')} ${displayName(e)}\n`);
  else term.out(`${displayName(e)}\n`);
}

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}
