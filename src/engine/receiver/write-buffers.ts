/**
 * The receiver's I/O buffers: matched blocks served from a read-ahead window of the basis, and
 * file data written in large pieces (one syscall per 256 KiB instead of one per token).
 */
import type { Sandbox } from '../../sandbox/sandbox.js';
import type { Gateway } from '../../gateway/gateway.js';

export const WRITE_BUFFER = 256 * 1024;
export const BASIS_WINDOW = 1024 * 1024;
const WRITEBACK_STEP = 32 * 1024 * 1024;
/** Zero runs at least this long become holes with -S (the reference's SPARSE_WRITE_SIZE). */
const SPARSE_RUN = 1024;

/**
 * Serves matched blocks of the basis file from a 1 MiB read-ahead window: matches mostly come in
 * runs of consecutive blocks, so this replaces one pread per block with one per MiB.
 */
export class BasisWindow {
  private start = 0;
  private end = 0;

  constructor(
    private readonly sandbox: Sandbox,
    private readonly fd: number,
    private readonly buf: Buffer,
  ) {}

  /** Fills dst with `len` basis bytes at `pos` (zeros past the end of the file). */
  read(dst: Buffer, pos: number, len: number): void {
    if (len > this.buf.length) {
      const n = this.sandbox.read(this.fd, dst, 0, len, pos);
      if (n < len) dst.fill(0, n, len);
      return;
    }
    if (pos < this.start || pos + len > this.end) {
      this.start = pos;
      this.end = pos + this.sandbox.read(this.fd, this.buf, 0, this.buf.length, pos);
    }
    const have = Math.max(0, Math.min(len, this.end - pos));
    this.buf.copy(dst, 0, pos - this.start, pos - this.start + have);
    if (have < len) dst.fill(0, have, len);
  }
}

export class CoalescingWriter {
  position: number;
  /**
   * -S: runs of at least SPARSE_RUN zero bytes are skipped (left as holes; below `punchBelow`
   * punched out); the caller ftruncate()s to the final length so a trailing hole is kept.
   */
  sparse = false;
  /**
   * -S in place: the file already holds data below this offset, so a zero run starting there is
   * punched out rather than skipped (fileio.c write_sparse() against preallocated_len).
   */
  punchBelow = 0;
  /** Start writeback every WRITEBACK_STEP bytes (the file will be renamed over an existing one). */
  writeback = false;
  private used = 0;
  private writtenBack = 0;

  /** `buf` is the session's reusable write buffer (one file is written at a time). */
  constructor(
    private readonly fs: Gateway,
    private readonly fd: number,
    start: number,
    private readonly buf: Buffer,
  ) {
    this.position = start;
  }

  write(data: Buffer): void {
    if (data.length >= WRITE_BUFFER) {
      this.flush();
      this.put(data, data.length);
      return;
    }
    if (this.used + data.length > WRITE_BUFFER) this.flush();
    data.copy(this.buf, this.used);
    this.used += data.length;
  }

  flush(): void {
    if (this.used === 0) return;
    this.put(this.buf, this.used);
    this.used = 0;
  }

  get length(): number {
    return this.position + this.used;
  }

  private put(data: Buffer, len: number): void {
    if (this.writeback && this.position + len - this.writtenBack >= WRITEBACK_STEP) {
      this.fs.startWriteback(this.fd, this.writtenBack, this.position - this.writtenBack);
      this.writtenBack = this.position;
    }
    if (!this.sparse) {
      this.fs.write(this.fd, data, 0, len, this.position);
      this.position += len;
      return;
    }
    let start = 0;
    let i = 0;
    while (i < len) {
      if (data[i] !== 0) {
        i++;
        continue;
      }
      let z = i + 1;
      while (z < len && data[z] === 0) z++;
      if (z - i >= SPARSE_RUN || (z === len && i === start)) {
        if (i > start) this.fs.write(this.fd, data, start, i - start, this.position + start);
        if (this.position + i < this.punchBelow) this.fs.punchHole(this.fd, this.position + i, z - i);
        start = z;
      }
      i = z;
    }
    if (len > start) this.fs.write(this.fd, data, start, len - start, this.position + start);
    this.position += len;
  }
}
