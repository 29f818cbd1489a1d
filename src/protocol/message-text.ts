/**
 * The text of MSG_ERROR_XFER / MSG_INFO / MSG_ERROR / MSG_WARNING is printed by the client as it
 * comes and often quotes names chosen by a peer. Control bytes in it (escape sequences, carriage
 * returns, newlines that forge a second "rsync: …" line) are sent as `\xNN` instead; a tab and the
 * final newline stay. UTF-8-encoded C1 controls (U+0080–U+009F, which some terminals obey) too.
 */
import { MsgTag } from './mux.js';

const TEXT_TAGS: ReadonlySet<number> = new Set([MsgTag.ERROR_XFER, MsgTag.INFO, MsgTag.ERROR, MsgTag.WARNING]);

export function isTextMessage(tag: number): boolean {
  return TEXT_TAGS.has(tag);
}

function isControlAt(buf: Buffer, i: number, end: number): 0 | 1 | 2 {
  const b = buf[i]!;
  if ((b < 0x20 && b !== 0x09) || b === 0x7f) return 1;
  if (b === 0xc2 && i + 1 < end && buf[i + 1]! >= 0x80 && buf[i + 1]! <= 0x9f) return 2;
  return 0;
}

/** The text with its control bytes escaped; the same buffer when there is nothing to escape. */
export function escapeControlBytes(text: Buffer): Buffer {
  const end = text.length > 0 && text[text.length - 1] === 0x0a ? text.length - 1 : text.length;
  let first = -1;
  for (let i = 0; i < end && first < 0; i++) if (isControlAt(text, i, end)) first = i;
  if (first < 0) return text;
  const parts: string[] = [text.toString('latin1', 0, first)];
  for (let i = first; i < end; ) {
    const n = isControlAt(text, i, end);
    if (n === 0) {
      parts.push(String.fromCharCode(text[i++]!));
      continue;
    }
    for (let k = 0; k < n; k++) parts.push(`\\x${text[i + k]!.toString(16).padStart(2, '0')}`);
    i += n;
  }
  if (end < text.length) parts.push('\n');
  return Buffer.from(parts.join(''), 'latin1');
}
