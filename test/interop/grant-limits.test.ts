/**
 * Per-grant limits with the real rsync client (engine over pipes): byte and file quotas, forced
 * permissions, the upload rate limit and rrsync's single-run lock.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RSH = fileURLToPath(new URL('../pipe/rsh.sh', import.meta.url));

interface Run {
  code: number;
  stderr: string;
  ms: number;
}

function push(root: string, src: string, dest: string, grant: object, extra: string[] = []): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('rsync', ['-a', ...extra, '-e', RSH, `${src}/`, `x:${dest}/`], {
      env: { ...process.env, RRSYNCD_TEST_ROOT: root, RRSYNCD_TEST_GRANT: JSON.stringify(grant), NODE_OPTIONS: '' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stderr, ms: Date.now() - started }));
  });
}

function limits(extra: object): object {
  return { limits: { allowDevices: false, allowChown: true, ...extra } };
}

function fixture(t: Test, files: Record<string, Buffer | string>): { root: string; src: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rrsyncd-limits-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'src');
  const root = join(dir, 'root');
  mkdirSync(src);
  mkdirSync(root);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(src, name), data);
  return { root, src };
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(e.name);
  return out;
}

t.test('a push over the byte quota fails with exit 11 and leaves no file behind', async (t) => {
  const { root, src } = fixture(t, { big: randomBytes(300_000), small: 'x' });
  const r = await push(root, src, 'dst', limits({ quotaBytes: 200_000 }));
  t.equal(r.code, 11, r.stderr);
  t.match(r.stderr, /quota exceeded: more than 200000 bytes/);
  t.same(filesUnder(root), [], 'no partial or temp files');
  const ok = await push(root, src, 'dst2', limits({ quotaBytes: 400_000 }));
  t.equal(ok.code, 0, 'the same push fits a larger quota');
});

t.test('the file-count quota counts new files and directories', async (t) => {
  const { root, src } = fixture(t, { a: '1', b: '2', c: '3', d: '4' });
  const r = await push(root, src, 'dst', limits({ quotaFiles: 3 }));
  t.equal(r.code, 11, r.stderr);
  t.match(r.stderr, /quota exceeded: more than 3 files/);
  t.ok(filesUnder(root).length < 4, 'stopped before the fourth file');
});

t.test('incomingChmod forces permissions on arriving files and directories', async (t) => {
  const { root, src } = fixture(t, { f: 'data' });
  mkdirSync(join(src, 'sub'), { mode: 0o777 });
  writeFileSync(join(src, 'sub', 'g'), 'more', { mode: 0o666 });
  statSync(join(src, 'f'));
  const r = await push(root, src, 'dst', limits({ incomingChmod: 'Fo-rwx,Dg-w,Do-w' }), ['--chmod=a+rw']);
  t.equal(r.code, 0, r.stderr);
  t.equal(statSync(join(root, 'dst', 'f')).mode & 0o777, 0o660);
  t.equal(statSync(join(root, 'dst', 'sub', 'g')).mode & 0o777, 0o660);
  t.equal(statSync(join(root, 'dst', 'sub')).mode & 0o777, 0o755);
});

t.test('uploadBytesPerSecond slows a push down to the limit', async (t) => {
  const { root, src } = fixture(t, { blob: randomBytes(3 * 1024 * 1024) });
  const r = await push(root, src, 'dst', limits({ uploadBytesPerSecond: 1024 * 1024 }));
  t.equal(r.code, 0, r.stderr);
  // 3 MiB at 1 MiB/s: the limiter must hold the client back for about 2 s or more.
  t.ok(r.ms >= 1800, `took ${r.ms} ms`);
  t.equal(statSync(join(root, 'dst', 'blob')).size, 3 * 1024 * 1024);
});

t.test('one session per root unless the grant says -no-lock', async (t) => {
  const { root, src } = fixture(t, { blob: randomBytes(2 * 1024 * 1024) });
  const slow = limits({ uploadBytesPerSecond: 1024 * 1024 });
  const first = push(root, src, 'a', slow);
  await new Promise((r) => setTimeout(r, 700));
  const second = await push(root, src, 'b', { noLock: false, ...limits({}) });
  t.not(second.code, 0, 'refused while the first push holds the root');
  t.match(second.stderr, /Another instance of rrsync is already accessing this directory/);
  t.equal((await first).code, 0);
  const again = push(root, src, 'c', slow);
  await new Promise((r) => setTimeout(r, 700));
  const unlocked = await push(root, src, 'd', { noLock: true, ...limits({}) });
  t.equal(unlocked.code, 0, '-no-lock sessions run side by side');
  t.equal((await again).code, 0);
});
