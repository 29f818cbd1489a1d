/**
 * Runs rrsyncd's engine in THIS process, one session per connection on a unix socket, for the
 * stock rsync client through `-e test/pipe/unix-rsh.pl` (the connector sends the command line,
 * then relays bytes). No SSH and no child node per session: a test can run thousands of real
 * sessions and look at its own /proc/self/fd, timers and heap afterwards.
 *
 *   const srv = await startInprocServer(dir, grant);
 *   const r = await srv.rsync(['-a', 'x:src/', 'dst/']);
 *   await srv.close();
 *
 * The engine's stderr (refusals before the protocol starts) is kept per session (`results`), not
 * shown to the client, which sees the connection end instead.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runRsyncSession, type SessionResult } from '../../src/engine/session.js';
import type { Grant } from '../../src/policy/grant.js';
import { splitShellWords } from '../../src/policy/shellwords.js';
import { REPO_ROOT, RSYNC, type RunResult } from './server.js';
import { leftoverLogger, runKillable } from './session-mix.js';

export const UNIX_RSH = join(REPO_ROOT, 'test', 'pipe', 'unix-rsh.pl');
const MAX_COMMAND = 64 * 1024;

interface InprocResult extends SessionResult {
  stderr: string;
}

export interface InprocServer {
  sock: string;
  /** Sessions that ended, in order. */
  results: InprocResult[];
  /** The log records of sessions that ended with resources still open. */
  leftovers: object[];
  /** Sessions running now. */
  readonly active: number;
  /** Resolves when no session is running (rejects after timeoutMs). */
  idle(timeoutMs?: number): Promise<void>;
  /** `/usr/bin/rsync -e unix-rsh.pl ...args`; `killAfterMs` SIGKILLs the client's process group. */
  rsync(args: string[], opts?: { cwd?: string; killAfterMs?: number; timeoutMs?: number }): Promise<RunResult & { killed: boolean }>;
  close(): Promise<void>;
}

/** Reads the command line (up to '\n'), then hands the rest of the socket to the engine. */
export function readCommand(sock: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(10);
      if (nl < 0) {
        if (head.length > MAX_COMMAND) fail(new Error('command line too long'));
        return;
      }
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.pause();
      if (nl + 1 < head.length) sock.unshift(head.subarray(nl + 1));
      resolve(head.subarray(0, nl).toString('latin1'));
    };
    const onEnd = (): void => fail(new Error('no command line'));
    const fail = (err: Error): void => {
      sock.off('data', onData);
      sock.off('end', onEnd);
      reject(err);
    };
    sock.on('data', onData);
    sock.on('end', onEnd);
    sock.on('error', () => undefined);
  });
}

export async function startInprocServer(dir: string, grant: Grant): Promise<InprocServer> {
  const sock = join(dir, `s${Math.random().toString(36).slice(2, 8)}.sock`);
  const results: InprocResult[] = [];
  let active = 0;
  let idleWaiters: Array<() => void> = [];
  const { log, leftovers } = leftoverLogger();
  const serve = async (s: Socket): Promise<void> => {
    active++;
    const stderr = new PassThrough();
    const errText: Buffer[] = [];
    stderr.on('data', (b: Buffer) => errText.push(b));
    try {
      const command = await readCommand(s);
      const session = runRsyncSession({ input: s, output: s, stderr }, { argv: splitShellWords(command), grant, log });
      s.resume(); // the engine's reader listens from the call on
      const r = await session;
      results.push({ ...r, stderr: Buffer.concat(errText).toString() });
    } catch (err) {
      results.push({ exitCode: -1, role: 'none', bytesIn: 0, bytesOut: 0, stderr: String(err) });
    } finally {
      s.end();
      s.destroySoon();
      active--;
      if (active === 0) for (const w of idleWaiters.splice(0)) w();
    }
  };
  const server: Server = createServer((s) => void serve(s));
  await new Promise<void>((r) => server.listen(sock, r));
  return {
    sock,
    results,
    leftovers,
    get active() {
      return active;
    },
    idle(timeoutMs = 30_000) {
      if (active === 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${active} sessions still running after ${timeoutMs} ms`)), timeoutMs);
        idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    rsync: (args, opts = {}) => runClient(sock, args, opts),
    close: () => {
      idleWaiters = [];
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function runClient(sock: string, args: string[], opts: { cwd?: string; killAfterMs?: number; timeoutMs?: number }): Promise<RunResult & { killed: boolean }> {
  return runKillable(RSYNC, ['-e', UNIX_RSH, ...args], { ...opts, env: { RRSYNCD_SOCK: sock } });
}
