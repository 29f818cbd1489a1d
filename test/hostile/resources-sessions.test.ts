/**
 * Sessions own their resources: many sessions of every kind in this one process (honest pushes
 * and pulls with the stock client, pushes and pulls whose client is SIGKILLed at a random point,
 * hostile byte streams, refused grants), then /proc/self/fd, the active handles and timers, and
 * the heap must be back where they started, and no session may have ended with something still
 * open. RRSYNCD_RESOURCE_SESSIONS sets how many sessions (default 400: about two minutes on a loaded 2-core machine).
 */
import t from 'tap';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { arena, dirEntry, fileEntry, HostileClient } from './client.js';
import { PULL, PUSH, PUSH_INC } from './harness.js';
import { startInprocServer, type InprocServer } from '../helpers/inproc-server.js';
import { defaultGrant } from '../../src/policy/grant.js';

const SESSIONS = Number(process.env.RRSYNCD_RESOURCE_SESSIONS ?? 400);
const LANES = 4;
const BIG = 12 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Handle and request types Node reports as active, counted by type. */
function activeResources(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 10));
  gc();
}

function random(n: number): number {
  return Math.floor(Math.random() * n);
}

interface World {
  dir: string;
  rw: InprocServer;
  ro: InprocServer;
  wo: InprocServer;
  hostileRoot: string;
}

type Kind = (w: World, i: number) => Promise<string | null>;

const PROTOCOLS = [29, 30, 31, 32];

/** A problem for the test to report, or null. */
const kinds: Record<string, Kind> = {
  async 'honest push'(w, i) {
    const dest = `push-${i}/`;
    const r = await w.rw.rsync(['-a', `--protocol=${PROTOCOLS[i % 4]}`, join(w.dir, 'small') + '/', `x:${dest}`]);
    if (r.code !== 0) return `push exit ${r.code}: ${r.stderr}`;
    const got = readFileSync(join(w.dir, 'root', dest, 'b'));
    rmSync(join(w.dir, 'root', dest), { recursive: true });
    return got.equals(readFileSync(join(w.dir, 'small', 'b'))) ? null : 'pushed file differs';
  },
  async 'honest pull'(w, i) {
    const dest = join(w.dir, `pull-${i}`);
    const r = await w.ro.rsync(['-a', `--protocol=${PROTOCOLS[i % 4]}`, 'x:small/', dest + '/']);
    if (r.code !== 0) return `pull exit ${r.code}: ${r.stderr}`;
    const same = readFileSync(join(dest, 'b')).equals(readFileSync(join(w.dir, 'small', 'b')));
    rmSync(dest, { recursive: true });
    return same ? null : 'pulled file differs';
  },
  async 'killed push'(w, i) {
    await w.rw.rsync(['-a', `--protocol=${PROTOCOLS[i % 4]}`, join(w.dir, 'big') + '/', `x:kpush-${i}/`], { killAfterMs: random(300) });
    return null;
  },
  async 'killed pull'(w, i) {
    const dest = join(w.dir, `kpull-${i}`);
    await w.ro.rsync(['-a', `--protocol=${PROTOCOLS[i % 4]}`, 'x:big/', dest + '/'], { killAfterMs: random(300) });
    rmSync(dest, { recursive: true, force: true });
    return null;
  },
  async 'hostile stream'(w, i) {
    const args = [PUSH, PUSH_INC, PULL][i % 3]!;
    const c = await HostileClient.start({ root: w.hostileRoot, args, grant: { noLock: true }, mode: 'inproc' });
    try {
      await c.handshake();
      if (i % 2) c.raw(Buffer.from(Array.from({ length: 64 + random(512) }, () => random(256))));
      else {
        c.sendWholeList([dirEntry('.'), fileEntry('f', 1 << 20)]);
        c.w.ndx(123_456);
      }
      c.flush();
    } catch {
      // the server may stop reading early
    }
    const o = await c.finish({ deadlineMs: 15_000, closeAfterMs: 2000 });
    if (o.hung) return 'hostile session hung';
    if (o.crashed) return `hostile session crashed: ${o.stderr.slice(0, 300)}`;
    return o.exitCode === 0 ? 'hostile session exited 0' : null;
  },
  async 'refused grant'(w, i) {
    const r = i % 2 ? await w.ro.rsync(['-a', join(w.dir, 'small') + '/', 'x:refused/']) : await w.wo.rsync(['-a', 'x:small/', join(w.dir, 'refused') + '/']);
    return r.code === 0 ? 'a refused session exited 0' : null;
  },
};

function prepare(): World & { cleanup: () => void } {
  const a = arena('resources-');
  const dir = a.top;
  const root = a.root;
  mkdirSync(join(dir, 'hostile'));
  for (const [name, size] of [['small', 64 * 1024], ['big', BIG]] as const) {
    for (const base of [join(dir, name), join(root, name)]) {
      mkdirSync(base, { recursive: true });
      writeFileSync(join(base, 'a'), 'a\n');
      writeFileSync(join(base, 'b'), Buffer.alloc(size, name));
    }
  }
  return { dir, hostileRoot: join(dir, 'hostile'), cleanup: () => a.cleanup() } as World & { cleanup: () => void };
}

t.test(`${SESSIONS} sessions of every kind leave nothing behind`, async (t) => {
  const w = prepare();
  t.teardown(() => w.cleanup());
  const root = join(w.dir, 'root');
  const grant = { ...defaultGrant(root), noLock: true };
  w.rw = await startInprocServer(w.dir, grant);
  w.ro = await startInprocServer(w.dir, { ...grant, readOnly: true });
  w.wo = await startInprocServer(w.dir, { ...grant, writeOnly: true });
  t.teardown(async () => {
    for (const s of [w.rw, w.ro, w.wo]) await s.close();
  });
  const names = Object.keys(kinds);
  // warm-up: lazily loaded modules and descriptors that stay (native addon, hash modules)
  for (const [i, name] of names.entries()) await kinds[name]!(w, i);
  for (const s of [w.rw, w.ro, w.wo]) await s.idle();
  await settle();
  const fds = openFds();
  const handles = activeResources();
  const heap = process.memoryUsage().heapUsed;
  const problems: string[] = [];
  const counts = new Map<string, number>();
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < SESSIONS; i = next++) {
      const name = names[random(names.length)]!;
      counts.set(name, (counts.get(name) ?? 0) + 1);
      const p = await kinds[name]!(w, i + names.length);
      if (p) problems.push(`${name} #${i}: ${p}`);
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  for (const s of [w.rw, w.ro, w.wo]) await s.idle(30_000);
  await settle();
  t.same(problems, [], 'every honest session succeeded and every other one failed cleanly');
  t.comment(`sessions: ${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const leftovers = [w.rw, w.ro, w.wo].flatMap((s) => s.leftovers);
  t.same(leftovers, [], 'no session ended with resources still open');
  t.ok(openFds() <= fds, `open descriptors: ${fds} before, ${openFds()} after`);
  const after = activeResources();
  for (const [type, n] of after) t.ok(n <= (handles.get(type) ?? 0), `active ${type}: ${handles.get(type) ?? 0} before, ${n} after`);
  const grown = process.memoryUsage().heapUsed - heap;
  t.ok(grown < 16 * 1024 * 1024, `heap after gc: ${(grown / 1048576).toFixed(1)} MiB more than before`);
});
