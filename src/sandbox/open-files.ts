/**
 * The file descriptors a sandbox handed out (opened files, temp and unnamed files), so that
 * closing the sandbox closes whatever a session left open, and a late close of a descriptor
 * that was already closed that way is a no-op (its number may belong to someone else by then).
 */
import { closeSync } from 'node:fs';

export class OpenFiles {
  private readonly fds = new Set<number>();

  add(fd: number): number {
    this.fds.add(fd);
    return fd;
  }

  /** Forgets fd; false when it was not open through this sandbox. */
  forget(fd: number): boolean {
    return this.fds.delete(fd);
  }

  get count(): number {
    return this.fds.size;
  }

  /** Closes every descriptor still open; returns how many there were. */
  closeAll(): number {
    const n = this.fds.size;
    for (const fd of this.fds) {
      try {
        closeSync(fd);
      } catch {
        // already gone: nothing to release
      }
    }
    this.fds.clear();
    return n;
  }
}
