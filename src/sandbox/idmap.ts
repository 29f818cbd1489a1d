/**
 * Local user and group names (for mapping the names a client sends to local ids, as rsync does
 * unless --numeric-ids). Read once from the system account files.
 */
import { readFileSync } from 'node:fs';

export interface LocalIds {
  uidOf(name: string): number | undefined;
  gidOf(name: string): number | undefined;
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
}

function parseAccounts(path: string): Map<string, number> {
  const byName = new Map<string, number>();
  let text = '';
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return byName;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 3) continue;
    const id = Number(fields[2]);
    if (Number.isInteger(id) && !byName.has(fields[0])) byName.set(fields[0], id);
  }
  return byName;
}

function invert(m: Map<string, number>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, id] of m) if (!out.has(id)) out.set(id, name);
  return out;
}

let cached: LocalIds | undefined;

export function localIds(): LocalIds {
  if (cached) return cached;
  const users = parseAccounts('/etc/passwd');
  const groups = parseAccounts('/etc/group');
  const uidNames = invert(users);
  const gidNames = invert(groups);
  cached = {
    uidOf: (n) => users.get(n),
    gidOf: (n) => groups.get(n),
    userName: (id) => uidNames.get(id),
    groupName: (id) => gidNames.get(id),
  };
  return cached;
}
