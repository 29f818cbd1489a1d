/**
 * Deallocating a range of a file being written, as rsync's do_punch_hole() (syscall.c) does for
 * `--sparse` in place: fallocate(PUNCH_HOLE | KEEP_SIZE) through the native addon, else
 * util-linux fallocate(1) on the fd; where neither can, the range is written with zeros (as
 * rsync does), so the file reads back the same either way.
 */
import { writeSync } from 'node:fs';
import { nativeBinding } from './native.js';
import { runWithFd } from './special.js';

const ZEROS = Buffer.alloc(64 * 1024);
/** fallocate(1) failed once (missing, or the filesystem cannot punch): do not spawn it again. */
let toolFailed = false;

export function punchHoleOnFd(fd: number, offset: number, length: number, label: string): void {
  if (length <= 0) return;
  if (tryPunch(fd, offset, length, label)) return;
  for (let done = 0; done < length; ) {
    const n = writeSync(fd, ZEROS, 0, Math.min(ZEROS.length, length - done), offset + done);
    if (n <= 0) throw new Error(`write to ${label} made no progress`);
    done += n;
  }
}

function tryPunch(fd: number, offset: number, length: number, label: string): boolean {
  if (nativeBinding?.punchHole) {
    try {
      nativeBinding.punchHole(fd, offset, length);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EOPNOTSUPP') throw err;
      return false;
    }
  }
  if (toolFailed) return false;
  try {
    runWithFd('fallocate', ['--punch-hole', '--offset', String(offset), '--length', String(length), '/proc/self/fd/3'], fd, label);
    return true;
  } catch {
    toolFailed = true;
    return false;
  }
}
