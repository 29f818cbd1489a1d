/**
 * Benchmark data sets, generated once per scale under bench/work/data/s<scale>/ and reused:
 *   orig/big.bin     1 GiB of random data                      (workloads new, pull, delta basis)
 *   mod/big.bin      the same with ~1 % changed: 1024 × 10 KiB edits at scattered offsets (delta)
 *   small/           20 000 files of 0–8 KiB random data in nested directories (small, noop)
 *   text/            200 MiB of generated log lines, ~3× compressible (zstd, zlib, conc)
 * Sizes and counts are multiplied by the scale. A manifest.json written last marks a complete set.
 * The 1 000 000-file tree (workload 8) is made per bench run on the destination filesystem
 * instead (makeEmptyTree): it is cheap to create there and costly to keep.
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, openSync, readFileSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { GiB, MiB, freshDir, log, mkdirp } from './util.js';

interface DataSpec {
  version: number;
  scale: number;
  bigBytes: number;
  edits: number;
  editBytes: number;
  smallFiles: number;
  smallMaxBytes: number;
  textBytes: number;
  textFiles: number;
}

export interface DataSet {
  dir: string;
  spec: DataSpec;
  /** Directory holding big.bin (original). */
  orig: string;
  /** Directory holding big.bin with the edits. */
  mod: string;
  small: string;
  text: string;
  /** Totals for the report. */
  smallTotalBytes: number;
}

const VERSION = 1;
/** Fixed mtimes so that both copies of big.bin differ in mtime (forcing a delta transfer). */
const T_ORIG = 1_700_000_000;
const T_MOD = T_ORIG + 3600;

function specFor(scale: number): DataSpec {
  const textBytes = Math.max(64 * 1024, Math.round(200 * MiB * scale));
  return {
    version: VERSION,
    scale,
    bigBytes: Math.max(64 * 1024, Math.round(GiB * scale)),
    edits: Math.max(1, Math.round(1024 * scale)),
    editBytes: 10 * 1024,
    smallFiles: Math.max(10, Math.round(20000 * scale)),
    smallMaxBytes: 8 * 1024,
    textBytes,
    textFiles: Math.max(1, Math.ceil(textBytes / (25 * MiB))),
  };
}

/** Deterministic PRNG (mulberry32), so edits and file sizes are the same on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function writeRandomFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  const buf = Buffer.allocUnsafe(4 * MiB);
  try {
    for (let left = bytes; left > 0; ) {
      const n = Math.min(left, buf.length);
      randomFillSync(buf, 0, n);
      writeSync(fd, buf, 0, n);
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
}

function applyEdits(path: string, spec: DataSpec): void {
  const rnd = prng(42);
  const fd = openSync(path, 'r+');
  const seg = Math.floor(spec.bigBytes / spec.edits);
  const len = Math.min(spec.editBytes, seg);
  const buf = Buffer.allocUnsafe(len);
  try {
    for (let i = 0; i < spec.edits; i++) {
      const off = i * seg + Math.floor(rnd() * Math.max(1, seg - len));
      randomFillSync(buf);
      writeSync(fd, buf, 0, len, off);
    }
  } finally {
    closeSync(fd);
  }
}

function writeSmallFiles(dir: string, spec: DataSpec): number {
  const rnd = prng(7);
  const perLeaf = 50;
  const leaves = Math.ceil(spec.smallFiles / perLeaf);
  const tops = Math.max(1, Math.ceil(Math.sqrt(leaves)));
  const buf = Buffer.allocUnsafe(spec.smallMaxBytes);
  let total = 0;
  for (let i = 0; i < spec.smallFiles; i++) {
    const leaf = Math.floor(i / perLeaf);
    const d = join(dir, `d${String(leaf % tops).padStart(3, '0')}`, `e${String(leaf).padStart(4, '0')}`);
    if (i % perLeaf === 0) mkdirp(d);
    const size = Math.floor(rnd() * (spec.smallMaxBytes + 1));
    randomFillSync(buf, 0, size);
    writeFileSync(join(d, `f${String(i).padStart(5, '0')}.dat`), buf.subarray(0, size));
    total += size;
  }
  return total;
}

const HOSTS = ['web-01', 'web-02', 'web-03', 'api-01', 'api-02', 'db-01', 'cache-01', 'batch-07'];
const PROCS = ['nginx', 'app', 'worker', 'cron', 'sshd', 'postgres', 'redis', 'kernel'];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE', 'HEAD'];
const PATHS = [
  '/api/v1/users', '/api/v1/orders', '/api/v1/items', '/static/js/app.js', '/static/css/site.css',
  '/health', '/login', '/logout', '/search', '/api/v2/reports', '/images/banner.png', '/feed.xml',
];
const STATUS = [200, 200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 403, 404, 500, 502];
const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0',
  'curl/7.88.1', 'python-requests/2.31.0', 'Go-http-client/1.1', 'kube-probe/1.28',
];
const WORDS = [
  'request', 'completed', 'started', 'user', 'session', 'timeout', 'retry', 'connection', 'closed',
  'cache', 'miss', 'hit', 'queue', 'job', 'failed', 'succeeded', 'latency', 'bytes', 'upstream', 'worker',
];

function writeTextFiles(dir: string, spec: DataSpec): void {
  const rnd = prng(1234);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  let t = Date.UTC(2026, 0, 1);
  const per = Math.ceil(spec.textBytes / spec.textFiles);
  let left = spec.textBytes;
  for (let f = 0; f < spec.textFiles; f++) {
    const target = Math.min(per, left);
    left -= target;
    const fd = openSync(join(dir, `log-${String(f).padStart(2, '0')}.txt`), 'w');
    let written = 0;
    try {
      while (written < target) {
        const lines: string[] = [];
        for (let i = 0; i < 4000; i++) {
          t += Math.floor(rnd() * 50);
          const ts = new Date(t).toISOString();
          const host = pick(HOSTS);
          const proc = pick(PROCS);
          const pid = 1000 + Math.floor(rnd() * 3000);
          if (rnd() < 0.6) {
            const ip = `192.0.2.${Math.floor(rnd() * 255)}`;
            const path = `${pick(PATHS)}/${Math.floor(rnd() * 100000)}?page=${Math.floor(rnd() * 20)}`;
            lines.push(
              `${ts} ${host} ${proc}[${pid}]: ${ip} - - "${pick(METHODS)} ${path} HTTP/1.1" ${pick(STATUS)} ` +
                `${Math.floor(rnd() * 60000)} "-" "${pick(AGENTS)}" rt=${(rnd() * 2).toFixed(3)}`,
            );
          } else {
            const n = 3 + Math.floor(rnd() * 8);
            const words: string[] = [];
            for (let w = 0; w < n; w++) words.push(pick(WORDS));
            lines.push(
              `${ts} ${host} ${proc}[${pid}]: ${rnd() < 0.1 ? 'WARN' : 'INFO'} ${words.join(' ')} ` +
                `id=${Math.floor(rnd() * 1e9).toString(16)} took=${Math.floor(rnd() * 5000)}ms`,
            );
          }
        }
        let chunk = Buffer.from(lines.join('\n') + '\n', 'utf8');
        if (written + chunk.length > target) chunk = chunk.subarray(0, target - written);
        writeSync(fd, chunk);
        written += chunk.length;
      }
    } finally {
      closeSync(fd);
    }
  }
}

/** The file count of workload 8's tree at a scale (at least 1000). */
export function manyFilesFor(scale: number): number {
  return Math.max(1000, Math.round(1_000_000 * scale));
}

/**
 * `files` empty files, 1000 per directory (d0000/f000 …), all with one fixed mtime, made once:
 * a `complete` marker is written last. Returns the number of directories.
 */
export function makeEmptyTree(dir: string, files: number): number {
  const perDir = 1000;
  const dirs = Math.ceil(files / perDir);
  const marker = join(dir, '..', `${basename(dir)}.complete`);
  if (existsSync(marker)) return dirs;
  freshDir(dir);
  const t0 = Date.now();
  for (let d = 0; d < dirs; d++) {
    const sub = join(dir, `d${String(d).padStart(4, '0')}`);
    mkdirp(sub);
    for (let f = d * perDir; f < Math.min(files, (d + 1) * perDir); f++) {
      const path = join(sub, `f${String(f % perDir).padStart(3, '0')}`);
      closeSync(openSync(path, 'w'));
      utimesSync(path, T_ORIG, T_ORIG);
    }
    utimesSync(sub, T_ORIG, T_ORIG);
  }
  writeFileSync(marker, '');
  log(`made ${files} empty files in ${dirs} directories under ${dir} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return dirs;
}

export function ensureData(workDir: string, scale: number): DataSet {
  const spec = specFor(scale);
  const dir = join(workDir, 'data', `s${scale}`);
  const ds: DataSet = {
    dir,
    spec,
    orig: join(dir, 'orig'),
    mod: join(dir, 'mod'),
    small: join(dir, 'small'),
    text: join(dir, 'text'),
    smallTotalBytes: 0,
  };
  const manifestPath = join(dir, 'manifest.json');
  if (existsSync(manifestPath)) {
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as { spec: DataSpec; smallTotalBytes: number };
    if (JSON.stringify(m.spec) === JSON.stringify(spec)) {
      ds.smallTotalBytes = m.smallTotalBytes;
      return ds;
    }
  }
  log(`generating data sets for scale ${scale} in ${dir} (once)`);
  freshDir(dir);
  for (const d of [ds.orig, ds.mod, ds.small, ds.text]) mkdirp(d);
  const t0 = Date.now();
  writeRandomFile(join(ds.orig, 'big.bin'), spec.bigBytes);
  utimesSync(join(ds.orig, 'big.bin'), T_ORIG, T_ORIG);
  copyFileSync(join(ds.orig, 'big.bin'), join(ds.mod, 'big.bin'));
  applyEdits(join(ds.mod, 'big.bin'), spec);
  utimesSync(join(ds.mod, 'big.bin'), T_MOD, T_MOD);
  ds.smallTotalBytes = writeSmallFiles(ds.small, spec);
  writeTextFiles(ds.text, spec);
  writeFileSync(manifestPath, JSON.stringify({ spec, smallTotalBytes: ds.smallTotalBytes }, null, 2) + '\n');
  log(`data generated in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return ds;
}
