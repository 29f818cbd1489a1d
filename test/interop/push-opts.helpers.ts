/**
 * Helpers for the push-opts-*.test.ts files (receiver options: partial/temp/backup/alt-dest/
 * append/itemize/timeout), on top of lib/interop.ts.
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import type { Test } from 'tap';
import { type Case, type Runs, type RunOpts, type TreeCompareOpts } from './lib/interop.js';

/** Client output lines that must match the reference (sorted; volatile lines dropped). */
function outputLines(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .filter((l) => !/^(sent |total size |opening connection |total: matches=|Total bytes |File list |Number of |Total file size|Total transferred|Literal data|Matched data|rsync\[\d+\]|Debugger |For help, see)/.test(l))
    .filter((l) => !/^\s+\w+:\s+\d+\s+\(/.test(l)) // heap statistics
    .map((l) => l.replace(/^<([fdLDS])/, '>$1'))
    .sort();
}

/** stdout and stderr lines of both runs match (after outputLines()). */
function sameOutput(t: Test, c: Case, r: Runs, what = 'client output matches the reference'): void {
  const a = outputLines(`${r.remote.stdout}\n${r.remote.stderr}`);
  const b = outputLines(`${r.local.stdout}\n${r.local.stderr}`);
  t.same(a, b, what, c.describe(r));
}

/** Polls until `pred` holds (the in-process server may still be finishing after the client died). */
export async function waitFor(pred: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

export async function sizeOf(p: string): Promise<number> {
  return (await stat(p)).size;
}

export async function modeOf(p: string): Promise<number> {
  return (await lstat(p)).mode & 0o7777;
}

export async function names(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

/**
 * Runs the push against rrsyncd and against the reference, killing each client (SIGKILL) after
 * `ms` so that the transfer of a slow (bandwidth-limited) file is interrupted.
 */
export async function interrupted(c: Case, args: string[], ms: number, o: RunOpts = {}): Promise<void> {
  await c.syncSources();
  await c.runRemote(args, { ...o, keepSources: true, timeoutMs: ms });
  await c.runLocal(args, { ...o, keepSources: true, timeoutMs: ms });
}


/**
 * Like lib/interop.ts runAndCompare(), with this file's output comparison: exit code, itemized
 * lines (hard-link leaders normalised), every other client line (sorted), destination tree.
 */
export async function compareRun(
  t: Test,
  c: Case,
  args: string[],
  o: RunOpts & { expectCode?: number; compare?: TreeCompareOpts; noOutput?: boolean } = {},
): Promise<Runs> {
  const r = await c.run(args, o);
  c.sameExit(t, r, o.expectCode);
  const rel = o.dst === null ? null : (o.dst ?? 'dst/').replace(/\/+$/, '');
  // (no hard-link normalisation: the group member that carries the data is the reference's choice)
  if (args.some((a) => a === '-i' || /^-[a-zA-Z]*i/.test(a) || a.startsWith('--out-format=%i'))) c.sameItemize(t, r);
  if (!o.noOutput) sameOutput(t, c, r);
  if (rel) await c.compare(t, o.compare, rel);
  return r;
}
