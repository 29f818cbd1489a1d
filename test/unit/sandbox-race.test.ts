import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Sandbox, SandboxError } from '../../src/sandbox/sandbox.js';
import { tmpDir } from './sandbox-helpers.js';
import { snapshotTreeSync, treeChangeLines } from '../helpers/tree.js';

// "Sender races" / CVE-2026-29518: a child flips root/d between a real directory and a symlink
// to an outside directory as fast as it can while we operate under d/. Runs as root.

const FLIPPER = `
const fs = require('node:fs');
const [root, ms] = [process.argv[1], Number(process.argv[2])];
const d = root + '/d', real = root + '/d.real', link = root + '/d.link';
const end = Date.now() + ms;
let flips = 0;
const step = (from, to) => { try { fs.renameSync(from, to); } catch {} };
process.stdout.write('ready\\n');
while (Date.now() < end) {
  step(d, real); step(link, d);   // d is now the symlink
  step(d, link); step(real, d);   // d is the real directory again
  flips += 2;
}
process.stdout.write(String(flips) + '\\n');
`;

async function runRace(
  t: Test,
  opts: { cacheSize: number; ms: number; dropCacheEachRound: boolean },
): Promise<void> {
  const base = tmpDir(t, 'sbx-race-');
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(path.join(root, 'd'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'f0'), 'outside');
  fs.writeFileSync(path.join(root, 'd', 'f0'), 'inside');
  fs.symlinkSync('../outside', path.join(root, 'd.link'));
  const before = snapshotTreeSync(outside);

  const sb = Sandbox.open(root, { dirCacheSize: opts.cacheSize });
  t.teardown(() => sb.close());
  const child = spawn(process.execPath, ['-e', FLIPPER, root, String(opts.ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await once(child.stdout, 'data');

  const data = Buffer.alloc(4096, 0x61);
  const counts = { ok: 0, eloop: 0, enoent: 0, other: new Map<string, number>() };
  const perOp = new Map<string, number>();
  const attempt = (name: string, op: () => void): void => {
    try {
      op();
      counts.ok++;
      perOp.set(`${name} ok`, (perOp.get(`${name} ok`) ?? 0) + 1);
    } catch (err) {
      if (!(err instanceof SandboxError)) throw err;
      perOp.set(`${name} ${err.code}`, (perOp.get(`${name} ${err.code}`) ?? 0) + 1);
      if (err.code === 'ELOOP') counts.eloop++;
      else if (err.code === 'ENOENT' || err.code === 'ENOTDIR') counts.enoent++;
      else counts.other.set(err.code, (counts.other.get(err.code) ?? 0) + 1);
    }
  };
  const end = Date.now() + opts.ms;
  for (let i = 0; Date.now() < end; i++) {
    if (opts.dropCacheEachRound) sb.dropDirCache();
    attempt('createTemp+rename', () => {
      const { fd, rel } = sb.createTemp('d', `n${i}`);
      try {
        sb.write(fd, data, 0, data.length, 0);
        sb.fsetAttrs(fd, { mode: 0o644, mtime: { sec: 1_000_000, nsec: 0 } });
      } finally {
        sb.close(fd);
      }
      sb.rename(rel, `d/n${i}`);
    });
    attempt('mkdir', () => sb.mkdir(`d/m${i}`, 0o777));
    attempt('mkdirp', () => sb.mkdirp(`d/p${i}/q`, 0o777));
    attempt('setAttrs d/f0', () => sb.setAttrs('d/f0', { mode: 0o600, uid: 4242, mtime: { sec: 1, nsec: 0 } }));
    attempt('setAttrs d', () => sb.setAttrs('d', { mode: 0o700, mtime: { sec: 2, nsec: 0 } }));
    attempt('symlink', () => sb.symlink('/etc/passwd', `d/s${i}`));
    attempt('openWrite', () => {
      const w = sb.openWrite('d/f0');
      sb.write(w.fd, Buffer.from('PWNED'), 0, 5, 0);
      sb.close(w.fd);
    });
    attempt('unlink', () => sb.unlink(`d/n${i - 1}`));
  }
  await once(child, 'exit');
  const flips = Number(out.trim().split('\n').pop());
  t.comment(
    `cache=${opts.cacheSize}${opts.dropCacheEachRound ? ' (dropped each round)' : ''}: ${flips} flips; ` +
      `ops ok=${counts.ok} ELOOP=${counts.eloop} ENOENT/ENOTDIR=${counts.enoent} other=${JSON.stringify([...counts.other])}`,
  );
  t.comment(`per op: ${JSON.stringify([...perOp].sort())}`
  );
  t.ok(flips > 1000, 'the flipper really flipped thousands of times');
  t.ok(counts.ok > 0, 'some operations landed inside');
  // a walk that meets the symlink reports ELOOP, or ENOTDIR if it flipped back before the
  // error was classified; either way it was refused
  t.ok(counts.eloop + counts.enoent > 0, 'some operations met the symlink (or a gap) and were refused');
  t.same(treeChangeLines(before, snapshotTreeSync(outside)), [], 'outside directory untouched (no files, mode, owner, mtime, content)');
  t.equal(fs.readFileSync(path.join(outside, 'f0'), 'utf8'), 'outside');
}

t.test('race: parent flips between dir and symlink, no directory cache', (t) => runRace(t, { cacheSize: 0, ms: 2000, dropCacheEachRound: false }));
t.test('race: parent flips, cached walks dropped every round', (t) => runRace(t, { cacheSize: 64, ms: 1000, dropCacheEachRound: true }));
