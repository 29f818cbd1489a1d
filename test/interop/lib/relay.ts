/**
 * Relay test harness: runs `rrsyncd relay` in this process (src/relay/relay.ts, output captured)
 * between two servers started through a remote shell, and compares the destination with what a
 * plain local `rsync` from the same source produces.
 *
 *   const c = await relayCase(t);                       // c.src, c.dst, c.ref (temp dirs)
 *   const r = await relay(['-a', ...STOCK, `x:${c.src}/`, `y:${c.dst}/`]);
 *   await sameAsLocal(t, c, ['-a']);                   // local rsync src/ -> ref/, compare with dst/
 *
 * STOCK: `-e lib/real-rsh.sh` drops the host and runs the command locally (stock rsync --server).
 * PIPE: `-e test/pipe/rsh.sh` runs rrsyncd's engine (RRSYNCD_TEST_ROOT from the environment).
 */
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, mkdir, open, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../helpers/server.js';
import { compareTrees, localRsync, snapshotTree, type CompareOptions } from '../../helpers/tree.js';
import { runRelay } from '../../../src/relay/relay.js';

export const LOCAL_RSH = join(REPO_ROOT, 'test/interop/lib/real-rsh.sh');
export const PIPE_RSH = join(REPO_ROOT, 'test/pipe/rsh.sh');
export const STOCK = ['-e', LOCAL_RSH];

export interface RelayResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the relay in-process; one run at a time (it reads process.env for the pipe harness). */
export async function relay(args: string[]): Promise<RelayResult> {
  let stdout = '';
  let stderr = '';
  const code = await runRelay(args, { out: (s) => void (stdout += s), err: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

export interface RelayCase {
  dir: string;
  src: string;
  dst: string;
  ref: string;
}

export async function relayCase(t: Test): Promise<RelayCase> {
  const dir = await mkdtemp(join(tmpdir(), 'rrsyncd-relay-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const c = { dir, src: join(dir, 'src'), dst: join(dir, 'dst'), ref: join(dir, 'ref') };
  await mkdir(c.src);
  return c;
}

/**
 * Delta setup: writes `size` random bytes to `from/name`, copies the file to `to/name` (the old
 * copy, dated 2001: rsync's quick check compares whole seconds), then overwrites 1 % of
 * `from/name` in `changes` spots spread over the file.
 */
export async function onePercentChanged(from: string, to: string, name: string, size: number, changes: number): Promise<void> {
  const file = join(from, name);
  for (const d of [from, to]) await mkdir(d, { recursive: true });
  await writeFile(file, randomBytes(size));
  await copyFile(file, join(to, name));
  const change = Math.ceil(size / 100 / changes);
  const fh = await open(file, 'r+');
  try {
    for (let i = 0; i < changes; i++) await fh.write(randomBytes(change), 0, change, Math.floor((i * size) / changes) + 12345);
  } finally {
    await fh.close();
  }
  await utimes(join(to, name), new Date(1e12), new Date(1e12));
}

/** The "Bytes read from the source: N" figure of a --stats run. */
export function bytesReadFromSource(stdout: string): number {
  const m = /Bytes read from the source: ([\d,]+)/.exec(stdout);
  if (!m) throw new Error(`no source byte count in:\n${stdout}`);
  return Number(m[1]!.replace(/,/g, ''));
}

/** Runs local rsync `args src/ ref/` and asserts that dst equals ref. */
export async function sameAsLocal(t: Test, c: RelayCase, args: string[], opts: CompareOptions = {}): Promise<void> {
  const r = await localRsync([...args, `${c.src}/`, `${c.ref}/`]);
  t.equal(r.code, 0, `reference rsync: ${r.stderr}`);
  const diffs = compareTrees(await snapshotTree(c.ref), await snapshotTree(c.dst), { ignoreDirMtimes: true, ...opts });
  t.same(diffs, [], 'destination equals a direct local rsync');
}
