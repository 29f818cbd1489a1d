/**
 * What an exec asks for, and the one log record it ends with. The command arrives as bytes
 * (one char per byte): rrsync's `true` probe, an `rsync --server …` line, or a refusal.
 */
import type { SessionResult } from '../engine/session.js';
import type { ExecSummary } from '../ops/metrics.js';
import { isRsyncServerArgv, splitShellWords } from '../policy/shellwords.js';
import { logText } from '../printable.js';

/** 'true' for rrsync's `true` probe, an error message to refuse with, or the argv to run. */
export function checkCommand(commandBytes: string): 'true' | string | { argv: string[] } {
  if (commandBytes.trim() === 'true') return 'true';
  let argv: string[];
  try {
    argv = splitShellWords(commandBytes);
  } catch (err) {
    return `command not allowed: ${(err as Error).message}`;
  }
  if (!isRsyncServerArgv(argv)) return `command not allowed: ${logText(commandBytes)}`;
  return { argv };
}

/** The `exec` record: what was asked (`record`), how it ended, and the engine's counters. */
export function execSummary(
  record: Record<string, unknown>,
  keyComment: string | undefined,
  result: SessionResult,
  exitCode: number,
  durationMs: number,
): ExecSummary & Record<string, unknown> {
  return {
    ...record,
    keyComment,
    role: result.role,
    exitCode,
    bytesIn: result.bytesIn,
    bytesOut: result.bytesOut,
    files: result.files,
    deletions: result.deletions,
    literalBytes: result.literalBytes,
    matchedBytes: result.matchedBytes,
    durationMs: Math.round(durationMs),
  };
}
