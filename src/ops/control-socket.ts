/**
 * The control socket: a unix socket in the state dir (mode 0600) that `rrsyncd sessions`, `kick`,
 * `reload`, `usage` and the operator console talk to. One JSON request line, one JSON reply line,
 * then the server closes; `log` instead streams log lines until the client goes away. Every request is
 * logged (`event: "control"`), which is the console's audit trail.
 */
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { KickSelector, SessionView } from './sessions.js';
import type { UsageView } from './usage.js';

const CONTROL_SOCKET_NAME = 'control.sock';
/** A request line longer than this is refused (the socket is local, but still bounded). */
const MAX_REQUEST_BYTES = 64 * 1024;
const FOLLOW_BUFFER_BYTES = 1024 * 1024;

export function controlSocketPath(stateDir: string): string {
  return join(stateDir, CONTROL_SOCKET_NAME);
}

export interface TenantView {
  name: string;
  root: string;
  sessions: number;
  quotaBytes?: number;
  quotaFiles?: number;
}

export type ReloadOutcome = { ok: true; keys: number; closed: number } | { ok: false; problems: string[] };

export interface ControlHandlers {
  sessions(): SessionView[];
  kick(sel: KickSelector, reason: string): string[];
  reload(): ReloadOutcome;
  tenants(): TenantView[];
  /** The usage ledgers of every tenant, or of one (null: no such tenant). */
  usage(tenant?: string): UsageView[] | null;
  /** Subscribes to log lines; returns the unsubscribe function. */
  follow(onLine: (line: string) => void): () => void;
}

export interface ControlRequest {
  op: 'sessions' | 'kick' | 'reload' | 'tenants' | 'usage' | 'log' | 'audit';
  /** Who asks: the admin key of a console, or the local user of a CLI verb. */
  who?: string;
  id?: string;
  fingerprint?: string;
  tenant?: string;
  /** `audit`: a console command that needs no server action. */
  line?: string;
}

export type ControlReply = { ok: true; [k: string]: unknown } | { ok: false; error: string; problems?: string[] };

export class ControlSocket {
  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly clients: Set<Socket>,
  ) {}

  static async start(path: string, handlers: ControlHandlers, log: Logger): Promise<ControlSocket> {
    await removeStaleSocket(path);
    const clients = new Set<Socket>();
    const server = createServer((sock) => {
      clients.add(sock);
      sock.once('close', () => clients.delete(sock));
      serveClient(sock, handlers, log);
    });
    server.listen(path);
    await once(server, 'listening');
    chmodSync(path, 0o600);
    return new ControlSocket(server, path, clients);
  }

  close(): void {
    this.server.close();
    for (const c of this.clients) c.destroy();
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

/** A socket file left by a server that died is removed; a live one means another server owns it. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`control socket ${path} is in use by another running server`);
  unlinkSync(path);
}

function serveClient(sock: Socket, handlers: ControlHandlers, log: Logger): void {
  let buf = '';
  const onData = (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    const nl = buf.indexOf('\n');
    if (nl < 0) {
      if (buf.length > MAX_REQUEST_BYTES) {
        sock.off('data', onData);
        reply(sock, { ok: false, error: 'request too long' });
      }
      return;
    }
    sock.off('data', onData);
    let req: ControlRequest;
    try {
      req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
    } catch {
      reply(sock, { ok: false, error: 'bad request: not JSON' });
      return;
    }
    if (typeof req !== 'object' || req === null || typeof req.op !== 'string') {
      reply(sock, { ok: false, error: 'bad request: no op' });
      return;
    }
    handle(sock, req, handlers, log);
  };
  sock.on('data', onData);
  sock.on('error', () => sock.destroy());
}

function handle(sock: Socket, req: ControlRequest, h: ControlHandlers, log: Logger): void {
  const { op, who, line, ...args } = req;
  log.info({ event: 'control', op, who, line, args }, 'control request');
  switch (op) {
    case 'sessions':
      return reply(sock, { ok: true, sessions: h.sessions() });
    case 'tenants':
      return reply(sock, { ok: true, tenants: h.tenants() });
    case 'kick': {
      const sel = { id: args.id, fingerprint: args.fingerprint, tenant: args.tenant };
      if (sel.id === undefined && sel.fingerprint === undefined && sel.tenant === undefined) {
        return reply(sock, { ok: false, error: 'kick needs an id, --key FP or --tenant NAME' });
      }
      const kicked = h.kick(sel, 'session ended by the server operator');
      log.info({ event: 'kick', who, kicked, ...sel }, 'sessions kicked');
      return reply(sock, { ok: true, kicked });
    }
    case 'reload': {
      const r = h.reload();
      return reply(sock, r.ok ? { ...r } : { ok: false, error: 'reload refused; the old configuration stays', problems: r.problems });
    }
    case 'usage': {
      const usage = h.usage(typeof args.tenant === 'string' ? args.tenant : undefined);
      return reply(sock, usage ? { ok: true, usage } : { ok: false, error: `no tenant "${String(args.tenant)}"` });
    }
    case 'audit':
      return reply(sock, { ok: true });
    case 'log': {
      // a follower that does not read loses lines rather than growing the server's memory
      const stop = h.follow((l) => {
        if (sock.writableLength < FOLLOW_BUFFER_BYTES) sock.write(l);
      });
      sock.on('close', stop);
      return;
    }
    default:
      return reply(sock, { ok: false, error: `unknown op "${String(op)}"` });
  }
}

function reply(sock: Socket, r: ControlReply): void {
  sock.end(`${JSON.stringify(r)}\n`);
}

/** Sends one request and resolves with the reply. */
export function controlRequest(path: string, req: ControlRequest, timeoutMs = 30_000): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('control socket: no reply'));
    }, timeoutMs);
    sock.once('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (c: Buffer) => (buf += c.toString('utf8')));
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? `no server is running (no control socket at ${path})` : err.message));
    });
    sock.once('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf) as ControlReply);
      } catch {
        reject(new Error('control socket: bad reply'));
      }
    });
  });
}

/** Streams the server's log lines to `onLine` until the returned socket is destroyed. */
export function controlFollowLog(path: string, who: string | undefined, onLine: (line: string) => void, onEnd: (err?: Error) => void): Socket {
  const sock = connect(path);
  let buf = '';
  sock.once('connect', () => sock.write(`${JSON.stringify({ op: 'log', who })}\n`));
  sock.on('data', (c: Buffer) => {
    buf += c.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  sock.once('error', (err) => onEnd(err));
  sock.once('close', () => onEnd());
  return sock;
}
