/**
 * --progress: rsync's per-file progress line ("\r   bytes  pct   rate   eta"), rewritten at most
 * twice a second and ended with a newline when the file is done.
 */
import type { FileEntry } from '../protocol/flist.js';
import { formatCount, type Terminal } from './messages.js';

const REFRESH_MS = 500;

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

function rate(bytesPerSec: number): string {
  if (bytesPerSec >= 1024 * 1024 * 1024) return `${(bytesPerSec / 1024 / 1024 / 1024).toFixed(2)}GB/s`;
  if (bytesPerSec >= 1024 * 1024) return `${(bytesPerSec / 1024 / 1024).toFixed(2)}MB/s`;
  return `${(bytesPerSec / 1024).toFixed(2)}kB/s`;
}

export class Progress {
  private size = 0;
  private started = 0;
  private lastShown = 0;
  private files = 0;

  constructor(private readonly term: Terminal) {}

  start(e: FileEntry): void {
    this.size = e.size;
    this.started = Date.now();
    this.lastShown = 0;
  }

  update(done: number): void {
    const now = Date.now();
    if (now - this.lastShown < REFRESH_MS) return;
    this.lastShown = now;
    this.show(Math.min(done, this.size), now, false);
  }

  finish(size: number): void {
    this.files++;
    this.show(size, Date.now(), true);
  }

  private show(done: number, now: number, final: boolean): void {
    const secs = Math.max(0.001, (now - this.started) / 1000);
    const bps = done / secs;
    const pct = this.size > 0 ? Math.floor((done * 100) / this.size) : 100;
    const eta = final ? secs : bps > 0 ? (this.size - done) / bps : 0;
    const tail = final ? ` (xfr#${this.files})\n` : '';
    this.term.out(`\r${formatCount(done).padStart(15)} ${String(pct).padStart(3)}% ${rate(bps).padStart(11)} ${clock(eta).padStart(9)}${tail}`);
  }
}
