/**
 * The operator keys (`admins.keys` lines and `admins.keysFile`): a separate key ring, tried before
 * the rsync keys. They get the console and nothing else.
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config/load.js';
import { KeyRing, parseAuthorizedKeys, type KeyEntry } from '../ssh/authorized-keys.js';

export interface AdminRingResult {
  /** Undefined when no admin keys are configured. */
  ring?: KeyRing;
  errors: string[];
  warnings: string[];
}

export function buildAdminRing(config: Config): AdminRingResult {
  const entries: KeyEntry[] = [];
  const errors: string[] = [];
  const warnings: string[] = [];
  const ctx = { defaultRoot: config.root };
  const add = (text: string, source: string) => {
    const parsed = parseAuthorizedKeys(text, { ...ctx, source });
    entries.push(...parsed.entries);
    warnings.push(...parsed.problems);
  };
  if (config.admins.keys.length) add(config.admins.keys.join('\n'), `${config.file ?? 'config'} admins.keys`);
  if (config.admins.keysFile) {
    try {
      add(readFileSync(config.admins.keysFile, 'utf8'), config.admins.keysFile);
    } catch (err) {
      errors.push(`${config.admins.keysFile}: cannot read admin key file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  for (const e of entries) if (e.unusable) warnings.push(`${e.source}: admin key ${e.fingerprint} unusable: ${e.unusable}`);
  return { ring: entries.length ? new KeyRing(entries) : undefined, errors, warnings };
}
