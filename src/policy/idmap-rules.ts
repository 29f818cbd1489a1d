/**
 * --usermap / --groupmap (and --chown, which the client sends as `--usermap=*:U --groupmap=*:G`):
 * rsync's uidlist.c parse_name_map() rules and the first-match lookup of recv_add_id().
 * A rule is `FROM:TO`, comma-separated; FROM is a number, a `LOW-HIGH` range, a name, or a
 * wildcard pattern over names (`*`, `?`, `[`); TO is a local name or number.
 */
import { ExitCode, RsyncError } from '../protocol/errors.js';

type Match = { kind: 'ids'; low: number; high: number } | { kind: 'name'; name: string } | { kind: 'wild'; pattern: string };
interface Rule {
  match: Match;
  to: number;
}

export interface IdMapRules {
  /** The mapped id for (`id`, its sender name; '' when none), or undefined when no rule matches. */
  map(id: number, name: string): number | undefined;
}

const MAX_RULES = 1024;

/**
 * Parses one --usermap/--groupmap value. `localId` turns TO (name or number) into a local id;
 * `wildmatch` matches a pattern rule. An unknown TO is reported through `warn` and the rule is
 * dropped, as rsync does; a malformed rule is a syntax error (exit 1).
 */
export function parseIdMap(
  spec: string,
  which: 'usermap' | 'groupmap',
  localId: (to: string) => number | undefined,
  wildmatch: (pattern: string, text: string) => boolean,
  warn: (text: string) => void,
): IdMapRules {
  const rules: Rule[] = [];
  const parts = spec.split(',');
  if (parts.length > MAX_RULES) throw new RsyncError(`Too many rules in --${which}`, ExitCode.SYNTAX);
  for (const part of parts) {
    const colon = part.indexOf(':');
    if (colon < 0) throw new RsyncError(`No colon found in --${which}: ${part}`, ExitCode.SYNTAX);
    const from = part.slice(0, colon);
    const to = part.slice(colon + 1);
    if (to === '') throw new RsyncError(`No name found after colon --${which}: ${part}`, ExitCode.SYNTAX);
    const match = parseFrom(from, which);
    const id = /^[0-9]+$/.test(to) ? Number(to) : localId(to);
    if (id === undefined || !Number.isSafeInteger(id) || id > 0xffffffff) {
      warn(`Unknown --${which} name on receiver: ${to}\n`);
      continue;
    }
    rules.push({ match, to: id });
  }
  return {
    map(id: number, name: string): number | undefined {
      for (const r of rules) {
        const m = r.match;
        if (m.kind === 'wild' ? wildmatch(m.pattern, name) : m.kind === 'name' ? m.name === name : id >= m.low && id <= m.high) return r.to;
      }
      return undefined;
    },
  };
}

function parseFrom(from: string, which: string): Match {
  if (/^[0-9]/.test(from)) {
    const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(from);
    if (!m) throw new RsyncError(`Invalid number in --${which}: ${from}`, ExitCode.SYNTAX);
    const low = Number(m[1]);
    return { kind: 'ids', low, high: m[2] === undefined ? low : Number(m[2]) };
  }
  if (/[*[?]/.test(from)) return { kind: 'wild', pattern: from };
  return { kind: 'name', name: from };
}
