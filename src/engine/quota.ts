/**
 * Per-grant byte and file-count quotas for the root (issue 5). Usage is measured by walking the
 * root when a receiving session starts, then kept up to date as the session writes and deletes.
 * A write that would exceed the quota fails the session the way a full disk does in rsync
 * (exit 11), after the file being written was discarded, so nothing partial stays behind.
 */
import type { GrantLimits } from '../policy/grant.js';
import { ExitCode, RsyncError } from '../protocol/errors.js';
import type { Sandbox } from '../sandbox/sandbox.js';

export class QuotaExceeded extends RsyncError {
  constructor(what: string) {
    super(`rrsyncd: quota exceeded: ${what}`, ExitCode.FILEIO);
    this.name = 'QuotaExceeded';
  }
}

export class Quota {
  private constructor(
    private readonly maxBytes: number,
    private readonly maxFiles: number,
    public usedBytes: number,
    public usedFiles: number,
  ) {}

  /** A quota tracker for the grant's root, or null when the grant sets no quota. */
  static forRoot(limits: GrantLimits, sandbox: Sandbox): Quota | null {
    if (limits.quotaBytes === undefined && limits.quotaFiles === undefined) return null;
    const usage = measure(sandbox);
    return new Quota(limits.quotaBytes ?? Infinity, limits.quotaFiles ?? Infinity, usage.bytes, usage.files);
  }

  /** Before creating a new entry (file, dir, link, ...). */
  addEntry(): void {
    if (this.usedFiles + 1 > this.maxFiles) throw new QuotaExceeded(`more than ${this.maxFiles} files`);
    this.usedFiles++;
  }

  /** While writing a file that replaces `replacedBytes`: would `newLength` fit? */
  checkWrite(newLength: number, replacedBytes: number): void {
    if (this.usedBytes - replacedBytes + newLength > this.maxBytes) {
      throw new QuotaExceeded(`more than ${this.maxBytes} bytes`);
    }
  }

  /** After a file of `newLength` replaced one of `replacedBytes`. */
  commitWrite(newLength: number, replacedBytes: number): void {
    this.usedBytes += newLength - replacedBytes;
  }

  /** After an entry of `bytes` was deleted. */
  removed(bytes: number): void {
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
    this.usedFiles = Math.max(0, this.usedFiles - 1);
  }
}

function measure(sandbox: Sandbox): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  const pending = [''];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    for (const name of sandbox.readdir(dir)) {
      const rel = dir ? `${dir}/${name}` : name;
      const st = sandbox.lstat(rel);
      if (!st) continue;
      files++;
      if (st.type === 'file') bytes += st.size;
      else if (st.type === 'dir') pending.push(rel);
    }
  }
  return { bytes, files };
}
