import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { tmpDir } from './sandbox-helpers.js';

// Throughput of the receiver's per-file metadata path, reported as a comment (not asserted
// tightly: CI machines vary). 20 000 files in 20 directories. A plain node:fs loop doing the
// same syscalls by absolute path on the same filesystem is measured as the baseline.
// SANDBOX_BENCH_DIR=/dev/shm measures the sandbox's own overhead without disk latency.

function benchDir(t: { teardown(fn: () => void): void }): string {
  const base = process.env.SANDBOX_BENCH_DIR;
  if (base === undefined) return tmpDir(t, 'sbx-perf-');
  const dir = fs.mkdtempSync(path.join(base, 'sbx-perf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function plainBaseline(root: string): number {
  const base = path.join(root, 'plain');
  for (let d = 0; d < DIRS; d++) fs.mkdirSync(path.join(base, `dir${d}`), { recursive: true });
  const data = Buffer.alloc(4096, 0x5a);
  const started = process.hrtime.bigint();
  const n = FILES / 4;
  for (let i = 0; i < n; i++) {
    const dir = path.join(base, `dir${i % DIRS}`);
    const tmp = path.join(dir, `.file-${i}.dat.AbCdEf`);
    const fd = fs.openSync(tmp, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_RDWR, 0o600);
    fs.writeSync(fd, data, 0, data.length, 0);
    fs.fchmodSync(fd, 0o644);
    fs.futimesSync(fd, 1_700_000_000.5, 1_700_000_000.5);
    fs.closeSync(fd);
    fs.renameSync(tmp, path.join(dir, `file-${i}.dat`));
  }
  return Math.round(n / (Number(process.hrtime.bigint() - started) / 1e9));
}

const FILES = 20_000;
const DIRS = 20;

t.test('createTemp + write 4 KiB + fsetAttrs + rename + close, 20 000 files in 20 dirs', async (t) => {
  const root = benchDir(t);
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  for (let d = 0; d < DIRS; d++) sb.mkdirp(`dir${d}/sub`, 0o755);
  const data = Buffer.alloc(4096, 0x5a);
  const started = process.hrtime.bigint();
  for (let i = 0; i < FILES; i++) {
    const dir = `dir${i % DIRS}/sub`;
    const name = `file-${i}.dat`;
    const { fd, rel } = sb.createTemp(dir, name);
    sb.write(fd, data, 0, data.length, 0);
    sb.fsetAttrs(fd, { mode: 0o644, mtime: { sec: 1_700_000_000 + i, nsec: 123_456_000 } });
    sb.close(fd);
    sb.rename(rel, `${dir}/${name}`);
  }
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const rate = Math.round(FILES / secs);
  t.comment(`${FILES} files: ${secs.toFixed(2)} s, ${rate} files/s`);

  const statStart = process.hrtime.bigint();
  for (let i = 0; i < FILES; i++) sb.lstat(`dir${i % DIRS}/sub/file-${i}.dat`);
  const statSecs = Number(process.hrtime.bigint() - statStart) / 1e9;
  t.comment(`lstat: ${Math.round(FILES / statSecs)} /s`);

  const readStart = process.hrtime.bigint();
  const buf = Buffer.alloc(4096);
  for (let i = 0; i < FILES; i++) {
    const { fd } = sb.openRead(`dir${i % DIRS}/sub/file-${i}.dat`);
    sb.read(fd, buf, 0, buf.length, 0);
    sb.close(fd);
  }
  const readSecs = Number(process.hrtime.bigint() - readStart) / 1e9;
  t.comment(`openRead + read 4 KiB + close: ${Math.round(FILES / readSecs)} /s`);

  t.comment(`plain node:fs baseline, same syscalls by absolute path: ${plainBaseline(root)} files/s`);
  t.equal(fs.readdirSync(path.join(root, 'dir0', 'sub')).length, FILES / DIRS);
  const st = sb.lstat('dir7/sub/file-7.dat');
  t.equal(st?.mtimeSec, 1_700_000_007);
  t.equal(st?.mtimeNsec, 123_456_000);
  t.ok(rate > 100, 'sanity: at least 100 files/s (disk-bound; see the comments for numbers)');
});
