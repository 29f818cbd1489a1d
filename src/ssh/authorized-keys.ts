/**
 * OpenSSH authorized_keys lines → key entries with grants.
 *
 * - `command="rrsync [-ro|-wo] [-munge] [-no-del] [-no-lock] [-no-overwrite] [-append-only] [-absolute] [-snapshot|-publish] DIR"` is read as
 *   the key's grant; a relative DIR is resolved against the default root (`--root` / config `root`, or
 *   the tenant's root for config tenants). Any other command= value makes the key unusable.
 * - A line without command= gets the default root, read-write.
 * - `from=` is matched against the client address as sshd does (wildcards, `!negation`, CIDR);
 *   `expiry-time=` is honoured; `restrict`, `no-pty`, `no-*-forwarding` etc. are accepted (we refuse
 *   all of that anyway). `cert-authority` and unknown options make the line unusable.
 */
import { BlockList, isIP } from 'node:net';
import { resolve } from 'node:path';
import ssh2, { type ParsedKey } from 'ssh2';

const { utils } = ssh2;
import { defaultGrant, type Grant } from '../policy/grant.js';
import { splitShellWords } from '../policy/shellwords.js';
import { fingerprintOf } from './host-keys.js';
import { addressBytes, normalizeAddress } from './address.js';

export interface KeyEntry {
  /** Where the line came from, e.g. `/home/u/.ssh/authorized_keys:3`. */
  source: string;
  fingerprint: string;
  keyType: string;
  key: ParsedKey;
  /** The public key blob (what the client presents). */
  blob: Buffer;
  comment: string;
  /** The grant; undefined when the entry is unusable. */
  grant?: Grant;
  /** Why this key may not log in (bad command=, bad option, …). */
  unusable?: string;
  /** `from=` pattern list. */
  from?: string;
  expiresAt?: Date;
  /** User names this entry is pinned to (config tenants); undefined = any user name. */
  users?: string[];
  tenant?: string;
}

export interface ParseContext {
  /** Used in messages, e.g. a file path. */
  source: string;
  /** Root for keys without command=, and base for relative rrsync DIRs. */
  defaultRoot: string;
  /** Grant that a line without command= gets (defaults to defaultGrant(defaultRoot)). */
  baseGrant?: Grant;
  users?: string[];
  tenant?: string;
}

const KEY_TYPE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)(-cert-v01@openssh\.com)?$/;

const ACCEPTED_FLAGS = new Set([
  'restrict', 'no-pty', 'no-port-forwarding', 'no-agent-forwarding', 'no-x11-forwarding', 'no-user-rc',
  'pty', 'port-forwarding', 'agent-forwarding', 'x11-forwarding', 'user-rc', 'no-touch-required', 'verify-required',
]);
const ACCEPTED_VALUED = new Set(['command', 'from', 'expiry-time', 'environment', 'permitopen', 'permitlisten', 'principals', 'tunnel']);

export interface ParsedOptions {
  options: Array<[name: string, value: string | true]>;
  rest: string;
}

/** Splits the leading `opt,opt="v a l",…` field off a key line (quotes may hide blanks and commas). */
export function parseKeyOptions(line: string): ParsedOptions {
  const options: Array<[string, string | true]> = [];
  let i = 0;
  for (;;) {
    const nameMatch = /^[A-Za-z0-9-]+/.exec(line.slice(i));
    if (!nameMatch) throw new Error(`bad option syntax at "${line.slice(i, i + 20)}"`);
    const name = nameMatch[0].toLowerCase();
    i += nameMatch[0].length;
    let value: string | true = true;
    if (line[i] === '=') {
      if (line[i + 1] !== '"') throw new Error(`option ${name}: value must be double-quoted`);
      i += 2;
      let v = '';
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && line[i + 1] === '"') {
          v += '"';
          i += 2;
        } else v += line[i++];
      }
      if (i >= line.length) throw new Error(`option ${name}: missing closing quote`);
      i++;
      value = v;
    }
    options.push([name, value]);
    if (line[i] === ',') {
      i++;
      continue;
    }
    if (i >= line.length || line[i] === ' ' || line[i] === '\t') break;
    throw new Error(`bad option syntax after ${name}`);
  }
  return { options, rest: line.slice(i).trimStart() };
}

/**
 * Reads `command="rrsync [flags] DIR"` into a Grant. Throws when the command is not an rrsync
 * invocation we understand (the caller marks the key unusable).
 */
export function grantFromRrsyncCommand(command: string, defaultRoot: string, base?: Grant): Grant {
  const words = splitShellWords(command);
  const prog = words[0];
  if (prog === undefined || (prog !== 'rrsync' && !prog.endsWith('/rrsync'))) {
    throw new Error(`command="${command}" is not an rrsync command`);
  }
  const grant: Grant = structuredClone(base ?? defaultGrant(defaultRoot));
  const dirs: string[] = [];
  let explicitNoLock = false;
  for (const word of words.slice(1)) {
    switch (word) {
      case '-ro':
        grant.readOnly = true;
        grant.noDelete = true;
        grant.noLock = true;
        break;
      case '-wo':
        grant.writeOnly = true;
        break;
      case '-munge':
        grant.munge = true;
        break;
      case '-no-del':
        grant.noDelete = true;
        break;
      case '-no-lock':
        grant.noLock = explicitNoLock = true;
        break;
      case '-snapshot':
      case '-publish':
        grant.revisions = { ...grant.revisions, mode: word === '-snapshot' ? 'snapshot' : 'publish' };
        break;
      case '-no-overwrite':
        grant.noOverwrite = true;
        break;
      case '-append-only':
        grant.appendOnly = grant.noDelete = grant.noOverwrite = true;
        break;
      case '-absolute':
        grant.absolute = true;
        break;
      default:
        if (word.startsWith('-')) throw new Error(`rrsync option ${word} is not supported`);
        dirs.push(word);
    }
  }
  if (grant.readOnly && grant.writeOnly) throw new Error('rrsync: -ro and -wo are mutually exclusive');
  if (grant.revisions && (explicitNoLock || (base?.noLock && !base.readOnly))) {
    throw new Error(`rrsync: -no-lock cannot be combined with -${grant.revisions.mode} (one writer per revisions root)`);
  }
  if (dirs.length !== 1) throw new Error(`rrsync needs exactly one DIR (got ${dirs.length})`);
  grant.root = resolve(defaultRoot, dirs[0]!);
  return grant;
}

/** `expiry-time="YYYYMMDD[HHMM[SS]][Z]"`: local time unless it ends in Z, like sshd. */
export function parseExpiryTime(text: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/.exec(text);
  if (!m) throw new Error(`bad expiry-time "${text}"`);
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as number[];
  const date = m[7] === 'Z'
    ? new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!))
    : new Date(y!, mo! - 1, d!, h!, mi!, s!);
  if (Number.isNaN(date.getTime())) throw new Error(`bad expiry-time "${text}"`);
  return date;
}

/** Parses one authorized_keys line; null for blank lines and comments. */
export function parseAuthorizedKeysLine(line: string, ctx: ParseContext): KeyEntry | null {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return null;
  const firstWord = text.split(/\s+/, 1)[0]!;
  const { options, rest } = KEY_TYPE.test(firstWord) ? { options: [], rest: text } : parseKeyOptions(text);
  const [type, b64, ...commentWords] = rest.split(/\s+/);
  if (!type || !b64) throw new Error('missing key');
  const parsed = utils.parseKey(`${type} ${b64}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error(`bad ${type} key: ${key ? key.message : 'unparseable'}`);
  const blob = key.getPublicSSH();
  const entry: KeyEntry = {
    source: ctx.source,
    fingerprint: fingerprintOf(blob),
    keyType: key.type,
    key,
    blob,
    comment: commentWords.join(' '),
    users: ctx.users,
    tenant: ctx.tenant,
  };
  let command: string | undefined;
  for (const [name, value] of options) {
    if (ACCEPTED_FLAGS.has(name)) continue;
    if (name === 'cert-authority') {
      entry.unusable ??= 'cert-authority keys are not supported';
    } else if (!ACCEPTED_VALUED.has(name) || value === true) {
      entry.unusable ??= `unsupported option ${name}`;
    } else if (name === 'command') {
      command = value;
    } else if (name === 'from') {
      const bad = fromListProblem(value);
      if (bad) entry.unusable ??= `from="${value}": ${bad}`;
      else entry.from = value;
    } else if (name === 'expiry-time') {
      try {
        entry.expiresAt = parseExpiryTime(value);
      } catch (err) {
        entry.unusable ??= (err as Error).message;
      }
    }
  }
  if (command === undefined) {
    entry.grant = structuredClone(ctx.baseGrant ?? defaultGrant(ctx.defaultRoot));
    // A plain key is not an rrsync grant: like rsync behind sshd, no single-run lock.
    if (!ctx.baseGrant) entry.grant.noLock = true;
  } else {
    try {
      entry.grant = grantFromRrsyncCommand(command, ctx.baseGrant?.root ?? ctx.defaultRoot, ctx.baseGrant);
    } catch (err) {
      entry.unusable ??= (err as Error).message;
    }
  }
  if (entry.unusable) delete entry.grant;
  return entry;
}

export interface ParsedKeyFile {
  entries: KeyEntry[];
  /** Lines that could not be parsed at all, as `source:line: message`. */
  problems: string[];
}

export function parseAuthorizedKeys(text: string, ctx: ParseContext): ParsedKeyFile {
  const entries: KeyEntry[] = [];
  const problems: string[] = [];
  text.split('\n').forEach((line, index) => {
    const source = `${ctx.source}:${index + 1}`;
    try {
      const entry = parseAuthorizedKeysLine(line, { ...ctx, source });
      if (entry) entries.push(entry);
    } catch (err) {
      problems.push(`${source}: ${(err as Error).message}`);
    }
  });
  return { entries, problems };
}

function wildcardToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/**
 * Why a `from=` list cannot be used, as sshd refuses it: a CIDR item needs an address, a mask
 * length the family allows and no bits set past the mask (`10.0.0.1/8` is refused). Wildcard
 * items are host patterns and always valid.
 */
export function fromListProblem(patternList: string): string | undefined {
  for (const raw of patternList.split(',')) {
    const item = raw.trim().replace(/^!/, '');
    const slash = item.indexOf('/');
    if (slash < 0) continue;
    const net = item.slice(0, slash);
    const bytes = addressBytes(net);
    if (!bytes) return `"${item}": not an address/mask-length`;
    const lenText = item.slice(slash + 1);
    const bits = Number(lenText);
    if (!/^\d{1,3}$/.test(lenText) || bits > bytes.length * 8) return `"${item}": bad mask length (0-${bytes.length * 8})`;
    const hostBitsSet = bytes.some((b, i) => (b & (0xff >> Math.min(8, Math.max(0, bits - i * 8)))) !== 0);
    if (hostBitsSet) return `"${item}": address has bits set beyond the mask`;
  }
  return undefined;
}

function matchesOnePattern(pattern: string, ip: string): boolean {
  const slash = pattern.indexOf('/');
  if (slash >= 0) {
    const net = pattern.slice(0, slash);
    const bits = Number(pattern.slice(slash + 1));
    const family = isIP(net);
    if (!family || !Number.isInteger(bits) || isIP(ip) !== family) return false;
    const list = new BlockList();
    list.addSubnet(net, bits, family === 4 ? 'ipv4' : 'ipv6');
    return list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }
  return wildcardToRegExp(pattern).test(ip);
}

/**
 * sshd's `from=` semantics on the client address (no DNS): a matching negated pattern denies,
 * otherwise any matching positive pattern allows.
 */
export function addressMatchesFrom(patternList: string, remoteIp: string): boolean {
  const ip = normalizeAddress(remoteIp);
  let allowed = false;
  for (const raw of patternList.split(',')) {
    const item = raw.trim();
    if (!item) continue;
    const negated = item.startsWith('!');
    const pattern = negated ? item.slice(1) : item;
    if (matchesOnePattern(pattern, ip)) {
      if (negated) return false;
      allowed = true;
    }
  }
  return allowed;
}

export type AuthDecision =
  | { ok: true; entry: KeyEntry }
  | { ok: false; reason: string; entry?: KeyEntry };

/** All known keys, looked up by the presented public key blob. */
export class KeyRing {
  private readonly byFingerprint = new Map<string, KeyEntry[]>();

  constructor(entries: Iterable<KeyEntry> = []) {
    for (const e of entries) this.add(e);
  }

  add(entry: KeyEntry): void {
    const list = this.byFingerprint.get(entry.fingerprint);
    if (list) list.push(entry);
    else this.byFingerprint.set(entry.fingerprint, [entry]);
  }

  get size(): number {
    let n = 0;
    for (const list of this.byFingerprint.values()) n += list.length;
    return n;
  }

  /** Every entry, in no particular order. */
  all(): KeyEntry[] {
    return [...this.byFingerprint.values()].flat();
  }

  entriesFor(blob: Buffer): KeyEntry[] {
    return this.byFingerprint.get(fingerprintOf(blob)) ?? [];
  }

  /**
   * Picks the first entry for this key whose user pin, from= and expiry match (as sshd takes the
   * first matching line); an unusable first match refuses the key rather than falling through.
   */
  decide(blob: Buffer, user: string, remoteIp: string, now = new Date()): AuthDecision {
    const entries = this.entriesFor(blob);
    if (entries.length === 0) return { ok: false, reason: 'unknown key' };
    let reason = 'no matching entry';
    for (const entry of entries) {
      if (entry.users && !entry.users.includes(user)) {
        reason = `user "${user}" not allowed for this key (${entry.source})`;
        continue;
      }
      if (entry.from !== undefined && !addressMatchesFrom(entry.from, remoteIp)) {
        reason = `address ${remoteIp} does not match from="${entry.from}" (${entry.source})`;
        continue;
      }
      if (entry.expiresAt && entry.expiresAt.getTime() <= now.getTime()) {
        reason = `key expired (${entry.source})`;
        continue;
      }
      if (entry.unusable || !entry.grant) {
        return { ok: false, reason: `key unusable: ${entry.unusable ?? 'no grant'} (${entry.source})`, entry };
      }
      return { ok: true, entry };
    }
    return { ok: false, reason };
  }
}
