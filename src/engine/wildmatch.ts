/** rsync's lib/wildmatch.c on byte strings: `*`, `**`, `?`, bracket classes, and the "anywhere" and trailing-component variants exclude.c uses. */

const TRUE = 1;
const FALSE = 0;
const ABORT_ALL = -1;
const ABORT_TO_STARSTAR = -2;

export const C_SLASH = 0x2f;
export const C_STAR = 0x2a;
export const C_QUESTION = 0x3f;
export const C_LBRACKET = 0x5b;
const C_RBRACKET = 0x5d;
export const C_BACKSLASH = 0x5c;
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
export function wildmatchAnywhere(pattern: string, text: string): boolean {
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
export function trailingElements(text: string, n: number): string | null {
  let count = n;
  for (let i = text.length - 1; i >= 0; i--) {
    if (text.charCodeAt(i) === C_SLASH && --count === 0) return text.slice(i + 1);
  }
  return count === 1 ? text : null;
}
