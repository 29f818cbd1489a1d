/**
 * Sessions own their resources, over real SSH: the same check as resources-sessions.test.ts, but
 * this process runs the SSH front door itself (src/ssh/server.ts with the real engine) on a
 * loopback port and the clients are OpenSSH's ssh and the stock rsync through it. The mix: honest
 * pushes and pulls, rsync and bare ssh clients SIGKILLed at a random point (during the key
 * exchange, authentication, the exec or the transfer), hostile byte streams through
 * `ssh … rsync --server`, logins with a key that is not authorized, grants that refuse the
 * direction, and TCP connections dropped before or during the SSH handshake. Afterwards
 * /proc/self/fd, the active handles and the heap after gc are back at their baseline, no session
 * ended with something still open and nothing was logged at error level.
 * RRSYNCD_RESOURCE_SSH_SESSIONS sets how many sessions (default 150: well under two minutes on a
 * loaded 2-core machine), RRSYNCD_RESOURCE_SEED the mix.
 */
import t from 'tap';
import { readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { makeKey, RSYNC, sshOptionArgs } from '../helpers/server.js';
import { leftoverLogger, prepareTrees, runKillable, runSessionMix, type SessionKind } from '../helpers/session-mix.js';
import { loadConfig } from '../../src/config/load.js';
import { runRsyncSession } from '../../src/engine/session.js';
import { KeyRing, parseAuthorizedKeys } from '../../src/ssh/authorized-keys.js';
import { generateHostKey } from '../../src/ssh/host-keys.js';
import { RrsyncServer, type RunSession } from '../../src/ssh/server.js';

const SESSIONS = Number(process.env.RRSYNCD_RESOURCE_SSH_SESSIONS ?? 150);
const SEED = Number(process.env.RRSYNCD_RESOURCE_SEED ?? 15);
const LANES = 4;
const BIG = 12 * 1024 * 1024;
const SSH = '/usr/bin/ssh';
const PROTOCOLS = [29, 30, 31, 32];

type Key = 'rw' | 'ro' | 'wo' | 'stranger';

interface World {
  dir: string;
  root: string;
  port: number;
  keys: Record<Key, string>;
}

const HOST = 'test@127.0.0.1';

function sshArgs(w: World, key: Key): string[] {
  return [...sshOptionArgs(w.port, w.keys[key]), '-o', 'ConnectTimeout=20'];
}

function rsync(w: World, key: Key, args: string[], killAfterMs?: number) {
  return runKillable(RSYNC, ['-e', [SSH, ...sshArgs(w, key)].join(' '), ...args], { killAfterMs, timeoutMs: 60_000 });
}

/** A TCP connection to the SSH port that is dropped early; resolves when it is closed. */
function droppedConnection(port: number, how: number): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const limit = setTimeout(() => s.destroy(), 10_000);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(limit);
      resolve();
    });
    s.on('connect', () => {
      if (how === 0) s.destroy();
      else if (how === 1) s.end('SSH-2.0-OpenSSH_9.6\r\n'); // our banner, then gone
      else if (how === 2) s.write('GET / HTTP/1.0\r\n\r\n'); // not SSH: the server drops it
    });
    // 3: wait for the server's banner, then go away in the middle of the key exchange
    s.once('data', () => {
      if (how === 3) s.destroy();
    });
  });
}

const kinds: Record<string, SessionKind<World>> = {
  async 'honest push'(w, i) {
    const dest = `push-${i}/`;
    const r = await rsync(w, 'rw', ['-a', `--protocol=${PROTOCOLS[i % 4]}`, join(w.dir, 'small') + '/', `${HOST}:${dest}`]);
    if (r.code !== 0) return `push exit ${r.code}: ${r.stderr}`;
    const got = readFileSync(join(w.root, dest, 'b'));
    rmSync(join(w.root, dest), { recursive: true });
    return got.equals(readFileSync(join(w.dir, 'small', 'b'))) ? null : 'pushed file differs';
  },
  async 'honest pull'(w, i) {
    const dest = join(w.dir, `pull-${i}`);
    const r = await rsync(w, 'ro', ['-a', `--protocol=${PROTOCOLS[i % 4]}`, `${HOST}:small/`, dest + '/']);
    if (r.code !== 0) return `pull exit ${r.code}: ${r.stderr}`;
    const same = readFileSync(join(dest, 'b')).equals(readFileSync(join(w.dir, 'small', 'b')));
    rmSync(dest, { recursive: true });
    return same ? null : 'pulled file differs';
  },
  async 'killed push'(w, i, random) {
    await rsync(w, 'rw', ['-a', `--protocol=${PROTOCOLS[i % 4]}`, join(w.dir, 'big') + '/', `${HOST}:kpush-${i}/`], random(1500));
    return null;
  },
  async 'killed pull'(w, i, random) {
    const dest = join(w.dir, `kpull-${i}`);
    await rsync(w, 'ro', ['-a', `--protocol=${PROTOCOLS[i % 4]}`, `${HOST}:big/`, dest + '/'], random(1500));
    rmSync(dest, { recursive: true, force: true });
    return null;
  },
  async 'ssh killed in the handshake'(w, _i, random) {
    // mostly during the key exchange and authentication, sometimes just after the exec
    await runKillable(SSH, [...sshArgs(w, 'ro'), HOST, 'rsync --server --sender -logDtpre.LsfxCIvu . small/'], { killAfterMs: random(400), timeoutMs: 30_000 });
    return null;
  },
  async 'hostile stream'(w, i, random) {
    const command = [
      'rsync --server -logDtpre.LsfxCIvu . hostile/',
      'rsync --server -logDtpre.iLsfxCIvu . hostile/',
      'rsync --server --sender -logDtpre.LsfxCIvu . small/',
    ][i % 3]!;
    const noise = Buffer.from(Array.from({ length: 64 + random(512) }, () => random(256)));
    // half of them after a plausible protocol version, so the garbage meets the later parsers
    const input = i % 2 ? noise : Buffer.concat([Buffer.from([29 + random(4), 0, 0, 0]), noise]);
    const r = await runKillable(SSH, [...sshArgs(w, 'rw'), HOST, command], { input, timeoutMs: 30_000 });
    if (r.killed) return 'hostile session hung';
    return r.code === 0 ? 'hostile session exited 0' : null;
  },
  async 'key not authorized'(w) {
    const r = await rsync(w, 'stranger', ['-a', join(w.dir, 'small') + '/', `${HOST}:refused/`]);
    return r.code === 0 ? 'a stranger logged in' : null;
  },
  async 'refused grant'(w, i) {
    const r = i % 2 ? await rsync(w, 'ro', ['-a', join(w.dir, 'small') + '/', `${HOST}:refused/`]) : await rsync(w, 'wo', ['-a', `${HOST}:small/`, join(w.dir, 'refused') + '/']);
    return r.code === 0 ? 'a refused session exited 0' : null;
  },
  async 'dropped before the handshake'(w, _i, random) {
    await droppedConnection(w.port, random(4));
    return null;
  },
};

t.test(`${SESSIONS} SSH sessions of every kind leave nothing behind`, async (t) => {
  const trees = prepareTrees('resources-ssh-', BIG);
  t.teardown(() => trees.cleanup());
  const { dir, root } = trees;
  const keys = {} as Record<Key, string>;
  for (const k of ['rw', 'ro', 'wo', 'stranger'] as const) keys[k] = await makeKey(join(dir, `key-${k}`));
  const pub = (k: Key): string => readFileSync(`${keys[k]}.pub`, 'utf8').trim();
  const authorized = [
    `command="rrsync -no-lock ${root}" ${pub('rw')}`,
    `command="rrsync -ro -no-lock ${root}" ${pub('ro')}`,
    `command="rrsync -wo -no-lock ${root}" ${pub('wo')}`,
  ].join('\n');
  const ring = new KeyRing(parseAuthorizedKeys(authorized, { source: 'test', defaultRoot: root }).entries);
  const config = loadConfig({ env: { HOME: dir, RRSYNCD_STATE_DIR: join(dir, 'state') }, overrides: { listen: ['127.0.0.1:0'], root } });
  const { log, leftovers, errors } = leftoverLogger();
  // The engine's sessions can outlive their connection by a moment (they wind down after the
  // abort): counted, so that the test waits for them too.
  let running = 0;
  const runSession: RunSession = async (io, req) => {
    running++;
    try {
      return await runRsyncSession(io, req);
    } finally {
      running--;
    }
  };
  const server = new RrsyncServer({ config, keyRing: ring, hostKeys: [generateHostKey(join(dir, 'host-key'))], log, runSession });
  const [addr] = await server.listen();
  t.teardown(() => server.shutdown(1000));
  const world: World = { dir, root, port: addr!.port, keys };
  await runSessionMix(t, {
    world,
    kinds,
    sessions: SESSIONS,
    lanes: LANES,
    seed: SEED,
    idle: async () => {
      for (const end = Date.now() + 30_000; server.connectionCount > 0 || running > 0; ) {
        if (Date.now() > end) throw new Error(`${server.connectionCount} connections and ${running} sessions still open after 30 s`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    leftovers: () => leftovers,
    heapBound: { bytes: 16 * 1024 * 1024, why: 'a few MiB of V8 noise after the warm-up; a leak of 100 KiB a connection crosses it' },
  });
  t.same(errors, [], 'nothing logged at error level (no engine failure)');
});
