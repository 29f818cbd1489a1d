/**
 * The ledger on disk: `<stateDir>/usage/<id>.json` (id: the root directory's device and inode),
 * replaced atomically (written to a temp name, then renamed). These are the server's own state
 * files, not a tenant's tree, so they are written with node:fs rather than through a sandbox.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Drift, UsageLedger } from './ledger.js';

interface StateFile {
  version: 1;
  /** The root's real path: a file for the same inode under another path is a reused inode's. */
  root: string;
  bytes: number;
  entries: number;
  measuredAt: number;
  drift: Drift | null;
}

function usageDir(stateDir: string): string {
  return join(stateDir, 'usage');
}

function fileOf(stateDir: string, id: string): string {
  return join(usageDir(stateDir), `${id}.json`);
}

const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Fills a fresh ledger from its state file; false when there is none, or it is unusable or another root's. */
export function loadLedger(stateDir: string, ledger: UsageLedger, real: string): boolean {
  let s: Partial<StateFile>;
  try {
    s = JSON.parse(readFileSync(fileOf(stateDir, ledger.id), 'utf8')) as Partial<StateFile>;
  } catch {
    return false;
  }
  if (s.version !== 1 || s.root !== real || !count(s.bytes) || !count(s.entries) || !count(s.measuredAt)) return false;
  ledger.bytes = s.bytes;
  ledger.entries = s.entries;
  ledger.measuredAt = s.measuredAt;
  ledger.drift = s.drift && count(s.drift.at) && Number.isSafeInteger(s.drift.bytes) && Number.isSafeInteger(s.drift.entries) ? s.drift : null;
  return true;
}

function contents(ledger: UsageLedger, real: string): string | null {
  if (ledger.measuredAt === null) return null; // nothing worth keeping before the first walk
  const s: StateFile = { version: 1, root: real, bytes: ledger.bytes, entries: ledger.entries, measuredAt: ledger.measuredAt, drift: ledger.drift };
  return `${JSON.stringify(s)}\n`;
}

export async function saveLedger(stateDir: string, ledger: UsageLedger, real: string): Promise<void> {
  const text = contents(ledger, real);
  if (text === null) return;
  const file = fileOf(stateDir, ledger.id);
  mkdirSync(usageDir(stateDir), { recursive: true, mode: 0o700 });
  await writeFile(`${file}.tmp`, text, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** At shutdown: synchronous, so it is done before the process exits. */
export function saveLedgerNow(stateDir: string, ledger: UsageLedger, real: string): void {
  const text = contents(ledger, real);
  if (text === null) return;
  const file = fileOf(stateDir, ledger.id);
  mkdirSync(usageDir(stateDir), { recursive: true, mode: 0o700 });
  // its own temp name: a debounced save may still be writing `.tmp`
  writeFileSync(`${file}.tmp-now`, text, { mode: 0o600 });
  renameSync(`${file}.tmp-now`, file);
}
