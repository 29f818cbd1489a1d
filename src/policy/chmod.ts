/**
 * rsync's --chmod syntax (also rsyncd's "incoming chmod"): comma-separated items, each optionally
 * prefixed by D (directories only) or F (files only), either an octal mode or [ugoa]*[-+=][rwxXst]*.
 * Used to force permission masks on incoming files for a tenant.
 */
export type ChmodFn = (mode: number, isDir: boolean) => number;

interface Item {
  scope: 'all' | 'dir' | 'file';
  apply(perm: number, isDir: boolean): number;
}

const WHO_BITS: Record<string, number> = { u: 0o4700, g: 0o2070, o: 0o0007, a: 0o7777 };

function permBits(perms: string, who: number, perm: number, isDir: boolean): number {
  let bits = 0;
  for (const p of perms) {
    if (p === 'r') bits |= 0o444;
    else if (p === 'w') bits |= 0o222;
    else if (p === 'x') bits |= 0o111;
    else if (p === 'X') bits |= isDir || perm & 0o111 ? 0o111 : 0;
    else if (p === 's') bits |= 0o6000;
    else if (p === 't') bits |= 0o1000;
  }
  return bits & who;
}

function parseItem(text: string): Item {
  let scope: Item['scope'] = 'all';
  let rest = text;
  if (rest.startsWith('D')) [scope, rest] = ['dir', rest.slice(1)];
  else if (rest.startsWith('F')) [scope, rest] = ['file', rest.slice(1)];
  if (/^[0-7]{1,4}$/.test(rest)) {
    const mode = parseInt(rest, 8);
    return { scope, apply: () => mode };
  }
  const m = /^([ugoa]*)([-+=])([rwxXst]*)$/.exec(rest);
  if (!m) throw new Error(`invalid chmod item "${text}"`);
  const who = m[1] ? [...m[1]].reduce((acc, c) => acc | WHO_BITS[c], 0) : 0o7777;
  const op = m[2];
  return {
    scope,
    apply(perm, isDir) {
      const bits = permBits(m[3], who, perm, isDir);
      if (op === '+') return perm | bits;
      if (op === '-') return perm & ~bits;
      return (perm & ~who) | bits;
    },
  };
}

/** Parses a chmod spec; throws with the offending item on bad syntax. */
export function parseChmod(spec: string): ChmodFn {
  const items = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseItem);
  return (mode, isDir) => {
    let perm = mode & 0o7777;
    for (const it of items) {
      if (it.scope === 'dir' && !isDir) continue;
      if (it.scope === 'file' && isDir) continue;
      perm = it.apply(perm, isDir) & 0o7777;
    }
    return (mode & ~0o7777) | perm;
  };
}
