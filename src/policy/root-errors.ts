/**
 * A grant's root that cannot be opened (missing, not a directory, no permission) is the
 * administrator's problem: the client is told that the root is not available, in rsync's words and
 * with rsync's exit code for a failed change_dir (3), but never the server's absolute path; the
 * path and the original error go to the server's log.
 */
import { ExitCode, RsyncError } from '../protocol/errors.js';
import { errnoText } from '../sandbox/errors.js';

interface WarnLog {
  warn(obj: object, msg: string): void;
}

/** "No such file or directory (2)" as rsync prints errno; "unavailable" for an error without a code. */
export function describeErrno(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? errnoText(code) : 'unavailable';
}

/**
 * The client's error for a root that could not be opened or locked; logs the absolute path.
 * `sender` picks rsync's role tag ([sender] for pulls, [Receiver] for pushes).
 */
export function rootUnavailableError(err: unknown, root: string, sender: boolean, log?: WarnLog): RsyncError {
  const reason = describeErrno(err);
  log?.warn({ root, err: err instanceof Error ? err.message : String(err) }, 'root not available');
  return new RsyncError(`rsync: [${sender ? 'sender' : 'Receiver'}] root not available: ${reason}`, ExitCode.FILESELECT);
}
