/**
 * Runs rrsyncd's engine inside the test process, reachable through `rsync -e '<rsh>'` where rsh is
 * rsh-client.pl or rsh-client.mjs (see there for the wire format). Same env contract as test/pipe/rsh.sh
 * (RRSYNCD_TEST_ROOT / _GRANT / _LOG), but without booting node+tsx for every rsync run.
 */
import { splitShellWords } from '../../../src/policy/shellwords.js';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { runRsyncSession } from '../../../src/engine/session.js';
import { defaultGrant, type Grant } from '../../../src/policy/grant.js';
import type { ChangePolicy } from '../../../src/gateway/index.js';
import type { RevisionHooks } from '../../../src/revisions/layout.js';

const RSH_CLIENT_NODE = fileURLToPath(new URL('./rsh-client.mjs', import.meta.url));
const RSH_CLIENT_PERL = fileURLToPath(new URL('./rsh-client.pl', import.meta.url));
/** The perl client starts ~10x faster than node; RRSYNCD_IT_RSH_CLIENT=node forces the node one. */
function rshCommand(): string {
  if (process.env.RRSYNCD_IT_RSH_CLIENT !== 'node' && existsSync('/usr/bin/perl')) return `/usr/bin/perl ${RSH_CLIENT_PERL}`;
  return `${process.execPath} ${RSH_CLIENT_NODE}`;
}

/** The word splitting test/pipe/server.ts applies (POSIX-shell-like, as sshd's `sh -c` would). */
function splitLikeShell(cmd: string): string[] {
  return splitShellWords(cmd);
}

export interface EngineHost {
  /** Value for `rsync -e`. */
  rsh: string;
  /** Extra env for the rsync client process. */
  env: Record<string, string>;
  sessions: number;
  close(): Promise<void>;
}

function frame(type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeUInt32BE(data.length, 1);
  return Buffer.concat([h, data]);
}

export interface EngineHostOptions {
  /** Added to every session's destination gateway (a test's recorder of changes). */
  changePolicies?: readonly ChangePolicy[];
  /** Passed to every session (a test's verify hook). */
  revisionHooks?: RevisionHooks;
}

function handle(sock: net.Socket, host: { sessions: number }, opts: EngineHostOptions): void {
  let head = Buffer.alloc(0);
  let input: PassThrough | null = null;
  const onData = (chunk: Buffer) => {
    if (input) {
      if (!input.write(chunk)) {
        sock.pause();
        input.once('drain', () => sock.resume());
      }
      return;
    }
    head = Buffer.concat([head, chunk]);
    const nl = head.indexOf(10);
    if (nl < 0) return;
    const raw = JSON.parse(head.subarray(0, nl).toString('utf8')) as Record<string, string>;
    const dec = (v: string | undefined) => (v ? Buffer.from(v, 'base64').toString('utf8') : undefined);
    const header = { cmd: raw.cmd!, root: dec(raw.root) ?? process.cwd(), grant: dec(raw.grant), log: dec(raw.log) };
    input = new PassThrough({ highWaterMark: 1 << 20 });
    const rest = head.subarray(nl + 1);
    if (rest.length) input.write(rest);
    void start(header, input);
  };
  sock.on('data', onData);
  sock.on('end', () => input?.end());
  sock.on('error', () => input?.destroy());

  const start = async (header: { cmd: string; root: string; grant?: string; log?: string }, inp: PassThrough) => {
    host.sessions++;
    // Like ssh: the command's bytes reach the engine as a latin1 "byte string".
    const words = splitLikeShell(Buffer.from(header.cmd, 'base64').toString('latin1'));
    const grant: Grant = { ...defaultGrant(header.root), ...(header.grant ? (JSON.parse(header.grant) as Partial<Grant>) : {}) };
    const log = header.log
      ? pino({ level: 'debug' }, pino.destination({ dest: header.log, append: true, sync: true }))
      : pino({ level: 'silent' });
    const mk = (type: number) =>
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          if (sock.destroyed) return cb();
          sock.write(frame(type, chunk), () => cb());
        },
      });
    const output = mk(1);
    const stderr = mk(2);
    let code = 255;
    try {
      const result = await runRsyncSession({ input: inp, output, stderr }, { argv: words, grant, log, changePolicies: opts.changePolicies, revisionHooks: opts.revisionHooks });
      code = result.exitCode;
      log.info({ result }, 'session end');
    } catch (err) {
      stderr.write(Buffer.from(`engine-host: session threw: ${(err as Error).stack}\n`));
      log.error({ err }, 'session threw');
    }
    await new Promise<void>((r) => output.end(r));
    await new Promise<void>((r) => stderr.end(r));
    const c = Buffer.alloc(4);
    c.writeInt32BE(code, 0);
    if (!sock.destroyed) sock.end(frame(3, c));
    inp.destroy();
  };
}

export async function startEngineHost(opts: EngineHostOptions = {}): Promise<EngineHost> {
  const dir = await mkdtemp(join(tmpdir(), 'rrsyncd-it-host-'));
  const sockPath = join(dir, 'engine.sock');
  const state = { sessions: 0 };
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    handle(sock, state, opts);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sockPath, resolve);
  });
  return {
    rsh: rshCommand(),
    env: { RRSYNCD_IT_SOCK: sockPath },
    get sessions() {
      return state.sessions;
    },
    close: async () => {
      // a session still running after its test ended gets 2 s, then its connection is cut
      const closed = new Promise<void>((r) => server.close(() => r()));
      const timer = setTimeout(() => {
        for (const sock of open) sock.destroy();
      }, 2000);
      await closed;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
