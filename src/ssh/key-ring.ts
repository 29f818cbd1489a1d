/**
 * Builds the KeyRing from a Config: --authorized-keys files, config tenants, or in demo mode the
 * invoking user's ~/.ssh/authorized_keys and ~/.ssh/id_*.pub.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultGrant, type Grant } from '../policy/grant.js';
import { KeyRing, parseAuthorizedKeys, type KeyEntry } from './authorized-keys.js';
import type { Config } from '../config/load.js';
import type { TenantConfig } from '../config/schema.js';

export interface KeyRingResult {
  ring: KeyRing;
  /** Fatal: a configured key file is missing or unreadable. */
  errors: string[];
  /** Lines that were skipped (bad syntax) or keys that are unusable, with file:line. */
  warnings: string[];
  /** Files the keys came from. */
  sources: string[];
}

/** A tenant's base grant: root defaults to <root>/<tenant name>; relative roots sit below the default root. */
export function tenantGrant(t: TenantConfig, defaultRoot: string): Grant {
  const g = defaultGrant(resolve(defaultRoot, t.root ?? t.name));
  g.readOnly = t.mode === 'ro';
  g.writeOnly = t.mode === 'wo';
  g.noDelete = t.noDelete ?? g.readOnly;
  g.noLock = t.noLock ?? g.readOnly;
  g.noOverwrite = t.noOverwrite ?? false;
  if (t.appendOnly) g.appendOnly = g.noDelete = g.noOverwrite = true;
  g.munge = t.munge ?? false;
  g.absolute = t.absolute ?? false;
  if (t.allowOptions) g.extraAllowedOptions = [...t.allowOptions];
  if (t.denyOptions) g.deniedOptions = [...t.denyOptions];
  g.limits = { ...g.limits, ...t.limits };
  if (t.revisions) g.revisions = { ...t.revisions };
  return g;
}

function readText(path: string, errors: string[]): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    errors.push(`${path}: cannot read key file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return undefined;
  }
}

/** The invoking user's public keys: ~/.ssh/authorized_keys plus ~/.ssh/id_*.pub (whichever exist). */
function demoKeyFiles(home: string): string[] {
  const dir = join(home, '.ssh');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const files = names.filter((n) => n === 'authorized_keys' || /^id_[A-Za-z0-9_]+\.pub$/.test(n)).sort();
  return files.map((n) => join(dir, n));
}

export function buildKeyRing(config: Config, opts: { homeDir?: string } = {}): KeyRingResult {
  const entries: KeyEntry[] = [];
  const errors: string[] = [];
  const warnings: string[] = [];
  const sources: string[] = [];

  const addFile = (path: string, ctx: { baseGrant?: Grant; users?: string[]; tenant?: string }, required: boolean) => {
    const sink = required ? errors : warnings;
    const text = readText(path, sink);
    if (text === undefined) return;
    sources.push(path);
    const parsed = parseAuthorizedKeys(text, { source: path, defaultRoot: config.root, ...ctx });
    entries.push(...parsed.entries);
    warnings.push(...parsed.problems);
  };

  const keyFiles = config.demo.keys ? demoKeyFiles(opts.homeDir || process.env.HOME || homedir()) : config.authorizedKeys;
  for (const file of keyFiles) addFile(file, {}, !config.demo.keys);

  config.tenants.forEach((t, i) => {
    const ctx = { baseGrant: tenantGrant(t, config.root), users: t.users, tenant: t.name };
    if (t.keys?.length) {
      const where = `${config.file ?? 'config'} tenants[${i}].keys`;
      const parsed = parseAuthorizedKeys(t.keys.join('\n'), { source: where, defaultRoot: config.root, ...ctx });
      entries.push(...parsed.entries);
      warnings.push(...parsed.problems);
    }
    if (t.keysFile) addFile(t.keysFile, ctx, true);
  });

  for (const e of entries) {
    if (e.unusable) warnings.push(`${e.source}: key ${e.fingerprint} unusable: ${e.unusable}`);
  }
  return { ring: new KeyRing(entries), errors, warnings, sources };
}
