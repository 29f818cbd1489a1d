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

/** Quotes a byte-string path for messages, escaping control and high bytes. */
export function quotePath(rel: string): string {
  let out = '';
  for (let i = 0; i < rel.length; i++) {
    const c = rel.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c >= 0x80 || c === 0x22 || c === 0x5c) {
      out += `\\x${c.toString(16).padStart(2, '0')}`;
    } else {
      out += rel[i];
    }
  }
  return `"${out}"`;
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
  return new SandboxError(code, rel, `${op} ${quotePath(rel)} failed: ${code}`);
}

export function hasCode(err: unknown, ...codes: string[]): boolean {
  const code = err instanceof SandboxError ? err.code : errnoCode(err);
  return code !== undefined && codes.includes(code);
}
