/**
 * Sessions own their resources: many sessions of every kind in this one process (honest pushes
 * and pulls with the stock client, pushes and pulls whose client is SIGKILLed at a random point,
 * hostile byte streams, refused grants), then /proc/self/fd, the active handles and timers, and
 * the heap must be back where they started, and no session may have ended with something still
 * open (test/helpers/session-mix.ts). RRSYNCD_RESOURCE_SESSIONS sets how many sessions (default 400:
 * about two minutes on a loaded 2-core machine), RRSYNCD_RESOURCE_SEED the mix. The ssh variant:
 * resources-ssh.test.ts.
 */
import t from 'tap';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dirEntry, fileEntry, HostileClient } from './client.js';
import { PULL, PUSH, PUSH_INC } from './harness.js';
import { startInprocServer, type InprocServer } from '../helpers/inproc-server.js';
import { prepareTrees, runSessionMix, type SessionKind } from '../helpers/session-mix.js';
import { defaultGrant } from '../../src/policy/grant.js';

const SESSIONS = Number(process.env.RRSYNCD_RESOURCE_SESSIONS ?? 400);
const SEED = Number(process.env.RRSYNCD_RESOURCE_SEED ?? 15);
const LANES = 4;
const BIG = 12 * 1024 * 1024;

interface World {
  dir: string;
  rw: InprocServer;
  ro: InprocServer;
  wo: InprocServer;
  hostileRoot: string;
}

const PROTOCOLS = [29, 30, 31, 32];

const kinds: Record<string, SessionKind<World>> = {
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
  async 'killed push'(w, i, random) {
    await w.rw.rsync(['-a', `--protocol=${PROTOCOLS[i % 4]}`, join(w.dir, 'big') + '/', `x:kpush-${i}/`], { killAfterMs: random(300) });
    return null;
  },
  async 'killed pull'(w, i, random) {
    const dest = join(w.dir, `kpull-${i}`);
    await w.ro.rsync(['-a', `--protocol=${PROTOCOLS[i % 4]}`, 'x:big/', dest + '/'], { killAfterMs: random(300) });
    rmSync(dest, { recursive: true, force: true });
    return null;
  },
  async 'hostile stream'(w, i, random) {
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

t.test(`${SESSIONS} sessions of every kind leave nothing behind`, async (t) => {
  const trees = prepareTrees('resources-', BIG);
  t.teardown(() => trees.cleanup());
  const hostileRoot = join(trees.dir, 'hostile');
  mkdirSync(hostileRoot);
  const grant = { ...defaultGrant(trees.root), noLock: true };
  const w: World = {
    dir: trees.dir,
    hostileRoot,
    rw: await startInprocServer(trees.dir, grant),
    ro: await startInprocServer(trees.dir, { ...grant, readOnly: true }),
    wo: await startInprocServer(trees.dir, { ...grant, writeOnly: true }),
  };
  const servers = [w.rw, w.ro, w.wo];
  t.teardown(async () => {
    for (const s of servers) await s.close();
  });
  await runSessionMix(t, {
    world: w,
    kinds,
    sessions: SESSIONS,
    lanes: LANES,
    seed: SEED,
    idle: async () => {
      for (const s of servers) await s.idle(30_000);
    },
    leftovers: () => servers.flatMap((s) => s.leftovers),
    heapBound: { bytes: 16 * 1024 * 1024, why: 'a few MiB of V8 noise after the warm-up; a leak of 40 KiB a session crosses it' },
  });
});
