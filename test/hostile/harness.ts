/**
 * Runs one hostile case: a fresh arena (root + a sibling "outside" dir), a HostileClient session,
 * the test's script, and the checks every case shares:
 *  (a) a clean rsync-style error reached the client and the exit code is the expected one,
 *  (b) no crash (no rejection, no stack trace, no internal-error log record) and no hang,
 *  (c) nothing outside the root changed,
 *  (d) no temp file left behind and (per case) no file under a final name that must not exist,
 *  (e) child-mode memory cases: peak RSS below a bound.
 */
import { existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { arena, HostileClient, leftoverTemps, type Arena, type HandshakeOptions, type Mode, type Outcome } from './client.js';
import type { Grant } from '../../src/policy/grant.js';

export const PUSH_INC = ['--server', '-logDtpre.iLsfxCIvu', '.', 'dst/'];
export const PUSH = ['--server', '-logDtpre.LsfxCIvu', '.', 'dst/'];
export const PULL = ['--server', '--sender', '-logDtpre.LsfxCIvu', '.', 'src/'];

export interface Expect {
  /** Acceptable exit codes. */
  code: number | number[];
  /** Must appear in the MSG_ERROR or stderr text. */
  error?: RegExp;
  /** Must NOT appear anywhere the client can see (content-leak checks). */
  noLeak?: RegExp;
  /** Root-relative paths that must not exist afterwards. */
  absent?: string[];
  /** Root-relative paths that must exist afterwards (e.g. siblings that must survive). */
  present?: string[];
  /** Peak RSS bound in MiB (child mode only). */
  maxMiB?: number;
  /** Wall-clock bound for the whole session. */
  maxMs?: number;
  /** Extra checks on the arena before it is removed. */
  verify?: (t: Test, a: Arena) => void;
}

export interface CaseSpec {
  args: string[];
  grant?: Partial<Grant>;
  mode?: Mode;
  handshake?: HandshakeOptions | false;
  /** Called with the arena before the session starts (plant files, symlinks...). */
  prepare?: (a: Arena) => void;
  /** Options for finish(). */
  finish?: { deadlineMs?: number; closeNow?: boolean; closeAfterMs?: number };
}

export type Script = (c: HostileClient, a: Arena) => Promise<void> | void;

export async function runCase(t: Test, spec: CaseSpec, script: Script, exp: Expect): Promise<Outcome> {
  const a = arena();
  try {
    spec.prepare?.(a);
    const c = await HostileClient.start({ root: a.root, args: spec.args, grant: spec.grant, mode: spec.mode });
    let scriptError: unknown;
    try {
      if (spec.handshake !== false) await c.handshake(spec.handshake || {});
      await script(c, a);
      c.flush();
    } catch (err) {
      // The server may legitimately stop reading/writing early; keep the reason for diagnostics.
      scriptError = err;
    }
    const o = await c.finish(spec.finish ?? {});
    check(t, o, a, exp, scriptError);
    return o;
  } finally {
    a.cleanup();
  }
}

function check(t: Test, o: Outcome, a: Arena, exp: Expect, scriptError?: unknown): void {
  const codes = Array.isArray(exp.code) ? exp.code : [exp.code];
  if (process.env.HOSTILE_VERBOSE) t.comment(`exit ${o.exitCode} in ${o.ms} ms: ${o.errorText.trim().split('\n').slice(0, 3).join(' | ').slice(0, 300)}`);
  const diag = { exitCode: o.exitCode, errorText: o.errorText.slice(0, 2000), scriptError: scriptError ? String(scriptError) : undefined };
  t.ok(o.exitCode !== null && codes.includes(o.exitCode), `exit code ${o.exitCode} is one of ${codes.join('/')}`, diag);
  if (exp.error) t.match(o.errorText, exp.error, 'the client got a clean error message', diag);
  t.notOk(o.crashed, 'no crash, no stack trace', { stderr: o.stderr.slice(0, 2000) });
  t.notOk(o.hung, 'no hang');
  t.same(o.internalErrors, [], 'no internal (non-protocol) error inside the engine');
  t.same(a.outsideChanges(), [], 'nothing outside the root changed');
  t.same(leftoverTemps(a.root), [], 'no temp file left behind');
  for (const p of exp.absent ?? []) t.notOk(exists(join(a.root, p)), `${p} was not created`);
  for (const p of exp.present ?? []) t.ok(exists(join(a.root, p)), `${p} survived`);
  if (exp.noLeak) {
    const all = [...o.messages.map((m) => m.text), o.stderr].join('\n');
    t.notMatch(all, exp.noLeak, 'nothing secret reached the client');
  }
  if (exp.maxMiB !== undefined && o.peakKb !== undefined) {
    t.ok(o.peakKb > 0 && o.peakKb < exp.maxMiB * 1024, `peak RSS ${Math.round(o.peakKb / 1024)} MiB < ${exp.maxMiB} MiB`);
  }
  if (exp.maxMs !== undefined) t.ok(o.ms < exp.maxMs, `finished in ${o.ms} ms (< ${exp.maxMs})`);
  exp.verify?.(t, a);
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return existsSync(p);
  }
}
