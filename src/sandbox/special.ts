/**
 * Operations node:fs lacks (mknod/mkfifo, exact-nanosecond and pre-1970 times), done by a short
 * coreutils child that gets a pinned fd as its fd 3 and addresses `/proc/self/fd/3[/name]`.
 * Names are passed to the child only as ASCII temp names (argv is UTF-8 in Node), then the
 * result is linked/renamed to the real byte-string name by the parent.
 */
import { spawnSync } from 'node:child_process';
import { linkSync, unlinkSync } from 'node:fs';
import { procPath } from './at.js';
import { SandboxError } from './errors.js';
import { quoted } from '../printable.js';

const ERRNO_BY_TEXT: ReadonlyArray<[string, string]> = [
  ['Operation not permitted', 'EPERM'],
  ['Permission denied', 'EACCES'],
  ['File exists', 'EEXIST'],
  ['No such file', 'ENOENT'],
  ['Not a directory', 'ENOTDIR'],
  ['Too many levels of symbolic links', 'ELOOP'],
  ['No space left', 'ENOSPC'],
  ['Read-only file system', 'EROFS'],
  ['Invalid argument', 'EINVAL'],
];

function codeFromStderr(stderr: string): string {
  for (const [text, code] of ERRNO_BY_TEXT) if (stderr.includes(text)) return code;
  return 'EIO';
}

/** Runs a coreutils tool with `fd` as the child's fd 3; throws SandboxError on failure. */
export function runWithFd(tool: string, args: string[], fd: number, rel: string): void {
  const res = spawnSync(tool, args, {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
    timeout: 30_000,
  });
  if (res.error !== undefined) {
    const code = (res.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'ENOTSUP' : 'EIO';
    throw new SandboxError(code, rel, `${tool} for ${quoted(rel)} could not run: ${res.error.message}`);
  }
  if (res.status !== 0) {
    const stderr = res.stderr?.toString('utf8') ?? '';
    const code = codeFromStderr(stderr);
    throw new SandboxError(code, rel, `${tool} for ${quoted(rel)} failed: ${code}`);
  }
}

/** Linux dev_t encoding (glibc gnu_dev_major/minor). */
export function splitRdev(rdev: number): { major: number; minor: number } {
  const lo = rdev % 0x1_0000_0000;
  const hi = Math.floor(rdev / 0x1_0000_0000);
  const major = ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0);
  const minor = (lo & 0xff) | (((lo >>> 12) | ((hi & 0xfff) << 20)) & ~0xff);
  return { major: major >>> 0, minor: minor >>> 0 };
}

export function asciiTempName(): string {
  return `.rrsyncd-tmp.${process.pid}.${Math.random().toString(36).slice(2, 12)}`;
}

/** mkfifo/mknod under an ASCII temp name in the pinned parent, then link(2) to the real name `leaf`. */
export function createSpecialAt(dirFd: number, leaf: string, rel: string, tool: string, opts: string[], tail: string[] = []): void {
  const tmp = asciiTempName();
  runWithFd(tool, [...opts, '--', `/proc/self/fd/3/${tmp}`, ...tail], dirFd, rel);
  try {
    linkSync(procPath(dirFd, tmp), procPath(dirFd, leaf));
  } finally {
    unlinkSync(procPath(dirFd, tmp));
  }
}
