import { constants as osConstants } from 'node:os';
import { quoted } from '../printable.js';

/** Every failure of a sandbox operation: an errno code ('ENOENT', 'ELOOP', …) or a sandbox code. */
export class SandboxError extends Error {
  /**
   * errno code from the kernel, or one of the sandbox's own:
   * 'EUNSAFE' (path rejected by validation), 'ECHANGED' (file is not the one expected),
   * 'ENOTSUP' (operation unavailable), 'EBADTYPE' (wrong file type for the operation).
   */
  readonly code: string;
  /** The root-relative byte-string path the operation was about. */
  readonly path: string;

  constructor(code: string, path: string, message: string) {
    super(message);
    this.name = 'SandboxError';
    this.code = code;
    this.path = path;
  }
}

function errnoCode(err: unknown): string | undefined {
  if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string') {
    return (err as NodeJS.ErrnoException).code;
  }
  return undefined;
}

/** Turns a node:fs error into a SandboxError naming the root-relative path (never /proc/self/fd/…). */
export function toSandboxError(err: unknown, op: string, rel: string): SandboxError {
  if (err instanceof SandboxError) return err;
  const code = errnoCode(err);
  if (code === undefined) throw err;
  return new SandboxError(code, rel, `${op} ${quoted(rel)} failed: ${code}`);
}

export function hasCode(err: unknown, ...codes: string[]): boolean {
  const code = err instanceof SandboxError ? err.code : errnoCode(err);
  return code !== undefined && codes.includes(code);
}

/** glibc's strerror texts, which rsync prints (for the errno codes a session can meet). */
const STRERROR: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ETXTBSY: 'Text file busy',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  EMLINK: 'Too many links',
  ENAMETOOLONG: 'File name too long',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links',
  EOVERFLOW: 'Value too large for defined data type',
  ENOTSUP: 'Operation not supported',
  EOPNOTSUPP: 'Operation not supported',
  ESTALE: 'Stale file handle',
  EDQUOT: 'Disk quota exceeded',
};

const ERRNO: Readonly<Record<string, number | undefined>> = osConstants.errno;

/**
 * rsync's "<strerror> (<errno>)" text for an errno code: "No such file or directory (2)". The
 * sandbox's own codes (EUNSAFE, ECHANGED, EBADTYPE) are shown as themselves.
 */
export function errnoText(code: string): string {
  const n = ERRNO[code];
  if (n === undefined) return code;
  return `${STRERROR[code] ?? code} (${n})`;
}

/** The text after "failed: " in an rsync-style message about `err`. */
export function errorText(err: unknown): string {
  const code = err instanceof SandboxError ? err.code : errnoCode(err);
  if (code !== undefined) return errnoText(code);
  return err instanceof Error ? err.message : String(err);
}
