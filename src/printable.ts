/**
 * The one escaping policy for names shown to a client or written to a log. Names are byte strings
 * (char codes = raw bytes) and stay so until they leave: valid UTF-8 passes through unchanged,
 * every control character (C0, DEL, the C1 range U+0080-U+009F) and every byte that is not part
 * of valid UTF-8 becomes `\xNN`, so a peer-chosen name can neither forge a message or log line
 * nor smuggle terminal escapes.
 */

/** Longest part of a name quoted in a message; the rest is cut and shown as "...". */
const MAX_QUOTED_BYTES = 200;

function hex(byte: number): string {
  return `\\x${byte.toString(16).padStart(2, '0')}`;
}

/** Length of the valid UTF-8 sequence at s[i] (a byte string), or 0 when none starts there. */
function utf8SequenceLength(s: string, i: number): number {
  const b0 = s.charCodeAt(i);
  let n: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) [n, min] = [2, 0x80];
  else if (b0 >= 0xe0 && b0 <= 0xef) [n, min] = [3, 0x800];
  else if (b0 >= 0xf0 && b0 <= 0xf4) [n, min] = [4, 0x10000];
  else return 0;
  if (i + n > s.length) return 0;
  let cp = b0 & (0xff >> (n + 1));
  for (let k = 1; k < n; k++) {
    const b = s.charCodeAt(i + k);
    if ((b & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  // C1 controls (U+0080-U+009F) are escaped like the C0 ones
  if (cp <= 0x9f) return 0;
  return n;
}

function escapeBytes(bytes: string, extra: (c: number) => boolean): string {
  let out = '';
  let plainFrom = 0;
  let i = 0;
  while (i < bytes.length) {
    const c = bytes.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f && !extra(c)) {
      i++;
      continue;
    }
    const seq = c >= 0x80 ? utf8SequenceLength(bytes, i) : 0;
    if (seq > 0) {
      i += seq;
      continue;
    }
    out += bytes.slice(plainFrom, i) + (c > 0xff ? `\\u${c.toString(16).padStart(4, '0')}` : hex(c));
    plainFrom = ++i;
  }
  return plainFrom === 0 ? bytes : out + bytes.slice(plainFrom);
}

const none = (): boolean => false;
const quoteOrBackslash = (c: number): boolean => c === 0x22 || c === 0x5c;

/** A name (byte string) made safe for a client message: still a byte string. */
export function printable(bytes: string): string {
  return escapeBytes(bytes, none);
}

/** A name in double quotes for an error message: `"` and `\` escaped too, cut after MAX_QUOTED_BYTES. */
export function quoted(bytes: string): string {
  const shown = bytes.length > MAX_QUOTED_BYTES ? `${bytes.slice(0, MAX_QUOTED_BYTES)}...` : bytes;
  return `"${escapeBytes(shown, quoteOrBackslash)}"`;
}

/** A byte string as text for a log record (pino writes JS strings as UTF-8). */
export function logText(bytes: string): string {
  return Buffer.from(printable(bytes), 'latin1').toString('utf8');
}
