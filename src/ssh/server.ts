/**
 * The SSH front door: public-key auth (signature verified) against a KeyRing, and `exec` of
 * `rsync --server …` routed to the engine. Everything else (shell, pty, subsystems, env, x11,
 * agent, TCP/streamlocal forwarding) is refused. One log record per connection and per exec.
 */
import { once } from 'node:events';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import ssh2, { type AuthContext, type Connection, type ServerChannel, type Session } from 'ssh2';
import type { Logger } from 'pino';
import type { SessionIO, SessionRequest, SessionResult } from '../engine/session.js';
import { isRsyncServerArgv, splitShellWords } from '../policy/shellwords.js';
import { logText } from '../printable.js';
import type { Config } from '../config/load.js';
import { parseListenAddress } from '../config/schema.js';
import type { KeyEntry, KeyRing } from './authorized-keys.js';
import type { HostKey } from './host-keys.js';
import { batchSocketWrites, fixChannelFlowControl } from '../patches/ssh2-channel.js';
import { poolOutgoingPackets } from '../patches/ssh2-packets.js';
import { nativeBinding } from '../native.js';

export type RunSession = (io: SessionIO, req: SessionRequest) => Promise<SessionResult>;

export interface RrsyncServerOptions {
  config: Config;
  keyRing: KeyRing;
  hostKeys: HostKey[];
  log: Logger;
  /** The engine entry; replaceable in tests. Default: engine/session.ts, loaded on first exec. */
  runSession?: RunSession;
}

/** rsync's exit code for "error in rsync protocol data stream", used when the engine throws. */
const EXIT_ENGINE_FAILURE = 12;
/** How long aborted sessions get to wind down after the shutdown deadline before sockets are cut. */
const ABORT_SETTLE_MS = 3000;

interface ConnState {
  id: number;
  socket: Socket;
  remoteAddress: string;
  remotePort: number;
  startedAt: number;
  client?: Connection;
  user?: string;
  authMethods: string[];
  authResult: 'none' | 'ok' | 'failed';
  authFailure?: string;
  entry?: KeyEntry;
  sessions: number;
  execs: number;
  active: Set<AbortController>;
  handshakeTimer?: NodeJS.Timeout;
  idleTimer?: NodeJS.Timeout;
  closeReason?: string;
  log: Logger;
}

export class RrsyncServer {
  private config: Config;
  private keyRing: KeyRing;
  private readonly log: Logger;
  private readonly ssh: InstanceType<typeof ssh2.Server>;
  private runSession?: RunSession;
  private readonly listeners: NetServer[] = [];
  private readonly conns = new Set<ConnState>();
  private readonly perKey = new Map<string, number>();
  private readonly activePerGrant = new Map<string, number>();
  private nextConnId = 1;
  private draining = false;

  constructor(opts: RrsyncServerOptions) {
    this.config = opts.config;
    this.keyRing = opts.keyRing;
    this.log = opts.log;
    this.runSession = opts.runSession;
    const a = opts.config.algorithms;
    this.ssh = new ssh2.Server(
      {
        hostKeys: opts.hostKeys.map((h) => h.text),
        ident: 'rrsyncd',
        keepaliveInterval: opts.config.limits.keepaliveIntervalMs,
        keepaliveCountMax: opts.config.limits.keepaliveCountMax,
        algorithms: {
          kex: a.kex as never,
          serverHostKey: a.serverHostKey as never,
          cipher: a.cipher as never,
          hmac: a.hmac as never,
          compress: a.compress as never,
        },
      },
      (client, info) => this.onClient(client, info.ip, info.port),
    );
  }

  /** Starts listening on every configured address; resolves with the bound addresses. */
  async listen(addresses: string[] = this.config.listen): Promise<AddressInfo[]> {
    const bound: AddressInfo[] = [];
    for (const text of addresses) {
      const { host, port } = parseListenAddress(text);
      const srv = createNetServer({ pauseOnConnect: false }, (socket) => this.onSocket(socket));
      srv.listen(port, host);
      await once(srv, 'listening');
      srv.on('error', (err) => this.log.error({ err }, 'listener error'));
      this.listeners.push(srv);
      bound.push(srv.address() as AddressInfo);
    }
    return bound;
  }

  /** New keys and limits; listen addresses, host keys and algorithms need a restart. */
  reload(config: Config, keyRing: KeyRing): void {
    this.config = config;
    this.keyRing = keyRing;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /**
   * Stops accepting, closes idle connections, lets running transfers finish until graceMs,
   * then aborts them, and finally cuts whatever is left.
   */
  async shutdown(graceMs = this.config.limits.shutdownGraceMs): Promise<void> {
    this.draining = true;
    // net.Server#close only calls back once every connection is gone, so don't wait on it here
    for (const l of this.listeners) l.close();
    for (const c of this.conns) if (c.active.size === 0) this.endConnection(c, 'shutdown');
    if (await this.waitForConnections(graceMs)) return;
    for (const c of this.conns) for (const ac of c.active) ac.abort(new Error('server shutting down'));
    if (await this.waitForConnections(ABORT_SETTLE_MS)) return;
    for (const c of this.conns) c.socket.destroy();
    await this.waitForConnections(1000);
  }

  private waitForConnections(ms: number): Promise<boolean> {
    if (this.conns.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        clearInterval(poll);
        resolve(this.conns.size === 0);
      }, ms);
      const poll = setInterval(() => {
        if (this.conns.size === 0) {
          clearTimeout(deadline);
          clearInterval(poll);
          resolve(true);
        }
      }, 25);
    });
  }

  private onSocket(socket: Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    if (this.conns.size >= this.config.limits.maxConnections) {
      this.log.warn({ event: 'connection', remote: socket.remoteAddress, auth: 'none', reason: 'too many connections' }, 'connection refused');
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const id = this.nextConnId++;
    const conn: ConnState = {
      id,
      socket,
      remoteAddress: socket.remoteAddress ?? '?',
      remotePort: socket.remotePort ?? 0,
      startedAt: Date.now(),
      authMethods: [],
      authResult: 'none',
      sessions: 0,
      execs: 0,
      active: new Set(),
      log: this.log.child({ conn: id }),
    };
    this.conns.add(conn);
    conn.handshakeTimer = setTimeout(() => {
      conn.closeReason = 'handshake timeout';
      socket.destroy();
    }, this.config.limits.handshakeTimeoutMs);
    socket.once('close', () => this.onSocketClose(conn));
    socketOwners.set(socket, conn);
    this.ssh.injectSocket(socket);
  }

  private onSocketClose(conn: ConnState): void {
    clearTimeout(conn.handshakeTimer);
    clearTimeout(conn.idleTimer);
    for (const ac of conn.active) ac.abort(new Error('connection closed'));
    if (conn.authResult === 'ok' && conn.entry) {
      const n = (this.perKey.get(conn.entry.fingerprint) ?? 1) - 1;
      if (n <= 0) this.perKey.delete(conn.entry.fingerprint);
      else this.perKey.set(conn.entry.fingerprint, n);
    }
    this.conns.delete(conn);
    this.log.info(
      {
        event: 'connection',
        conn: conn.id,
        remote: conn.remoteAddress,
        remotePort: conn.remotePort,
        user: conn.user,
        fingerprint: conn.entry?.fingerprint,
        keySource: conn.entry?.source,
        tenant: conn.entry?.tenant,
        auth: conn.authResult,
        authMethods: conn.authMethods,
        reason: conn.authFailure ?? conn.closeReason,
        sessions: conn.sessions,
        execs: conn.execs,
        durationMs: Date.now() - conn.startedAt,
      },
      'connection closed',
    );
  }

  private onClient(client: Connection, ip: string, port: number): void {
    const conn = findConn(this.conns, client, ip, port);
    if (!conn) {
      client.end();
      return;
    }
    conn.client = client;
    if (!poolOutgoingPackets(client, conn.socket)) conn.log.debug('ssh2 internals changed: outgoing packets not pooled');
    client.on('error', (err: Error) => conn.log.debug({ err: err.message }, 'ssh connection error'));
    client.on('authentication', (ctx) => this.onAuth(conn, ctx));
    client.on('ready', () => {
      clearTimeout(conn.handshakeTimer);
      conn.log.debug({ user: conn.user, fingerprint: conn.entry?.fingerprint }, 'authenticated');
      this.armIdleTimer(conn);
    });
    client.on('session', (accept, reject) => {
      if (this.draining || conn.sessions >= this.config.limits.maxSessionsPerConnection) {
        conn.log.info({ sessions: conn.sessions }, 'session refused');
        reject();
        return;
      }
      conn.sessions++;
      this.onSession(conn, accept());
    });
    client.on('tcpip', (_accept, reject, info) => {
      conn.log.info({ refused: 'direct-tcpip', dest: `${info.destIP}:${info.destPort}` }, 'forwarding refused');
      reject();
    });
    client.on('openssh.streamlocal', (_accept, reject) => {
      conn.log.info({ refused: 'direct-streamlocal' }, 'forwarding refused');
      reject();
    });
    client.on('request', (_accept: unknown, reject: (() => void) | undefined, name: string) => {
      conn.log.info({ refused: name }, 'global request refused');
      reject?.();
    });
  }

  private onAuth(conn: ConnState, ctx: AuthContext): void {
    conn.user = ctx.username;
    if (!conn.authMethods.includes(ctx.method)) conn.authMethods.push(ctx.method);
    if (ctx.method !== 'publickey') {
      if (ctx.method !== 'none') conn.authFailure = `${ctx.method} authentication is not accepted`;
      ctx.reject(['publickey']);
      return;
    }
    const decision = this.keyRing.decide(ctx.key.data, ctx.username, conn.remoteAddress);
    if (!decision.ok) {
      conn.authResult = 'failed';
      conn.authFailure = decision.reason;
      if (decision.entry) conn.log.warn({ fingerprint: decision.entry.fingerprint, reason: decision.reason }, 'key refused');
      ctx.reject(['publickey']);
      return;
    }
    const entry = decision.entry;
    if (!ctx.signature || !ctx.blob) {
      ctx.accept(); // query phase: the key is acceptable, the client will now sign
      return;
    }
    if (!entry.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) {
      conn.authResult = 'failed';
      conn.authFailure = 'bad signature';
      ctx.reject(['publickey']);
      return;
    }
    const open = this.perKey.get(entry.fingerprint) ?? 0;
    if (open >= this.config.limits.maxConnectionsPerKey) {
      conn.authResult = 'failed';
      conn.authFailure = `too many connections for key (${open})`;
      ctx.reject(['publickey']);
      return;
    }
    this.perKey.set(entry.fingerprint, open + 1);
    conn.authResult = 'ok';
    conn.authFailure = undefined;
    conn.entry = entry;
    ctx.accept();
  }

  private onSession(conn: ConnState, session: Session): void {
    const refuse = (what: string) => (_accept: unknown, reject?: () => void) => {
      conn.log.info({ refused: what }, 'session request refused');
      reject?.();
    };
    session.on('env', (_accept, reject, info) => {
      conn.log.debug({ refused: 'env', name: info.key }, 'session request refused');
      reject?.();
    });
    session.on('pty', refuse('pty'));
    session.on('x11', refuse('x11'));
    session.on('auth-agent', refuse('auth-agent'));
    session.on('shell', refuse('shell'));
    session.on('subsystem', (_accept, reject, info) => {
      conn.log.info({ refused: 'subsystem', name: info.name }, 'session request refused');
      reject?.();
    });
    session.on('sftp', refuse('sftp'));
    session.on('exec', (accept, _reject, info) => {
      const channel = accept();
      if (!channel) return;
      fixChannelFlowControl(channel);
      batchSocketWrites(channel, conn.socket);
      void this.onExec(conn, channel, info.command);
    });
  }

  private armIdleTimer(conn: ConnState): void {
    clearTimeout(conn.idleTimer);
    if (conn.active.size > 0) return;
    conn.idleTimer = setTimeout(() => this.endConnection(conn, 'idle timeout'), this.config.limits.idleTimeoutMs);
  }

  private endConnection(conn: ConnState, reason: string): void {
    conn.closeReason ??= reason;
    if (conn.client) conn.client.end();
    else conn.socket.destroy();
    // a client that never answers the disconnect should not hold the slot
    setTimeout(() => conn.socket.destroy(), 2000).unref();
  }

  private async onExec(conn: ConnState, channel: ServerChannel, command: string): Promise<void> {
    const started = performance.now();
    clearTimeout(conn.idleTimer);
    conn.execs++;
    // ssh2 hands us the command decoded as UTF-8; back to bytes, then one char per byte
    const commandBytes = Buffer.from(command, 'utf8').toString('latin1');
    const entry = conn.entry!;
    const record: Record<string, unknown> = {
      event: 'exec',
      conn: conn.id,
      remote: conn.remoteAddress,
      user: conn.user,
      fingerprint: entry.fingerprint,
      tenant: entry.tenant,
      root: entry.grant?.root,
    };
    let result: SessionResult = { exitCode: 1, role: 'none', bytesIn: 0, bytesOut: 0 };
    const ac = new AbortController();
    conn.active.add(ac);
    channel.once('close', () => ac.abort(new Error('channel closed')));
    const grantKey = entry.tenant ? `tenant:${entry.tenant}` : entry.fingerprint;
    let counted = false;
    try {
      const refusal = this.checkCommand(commandBytes);
      if (refusal === 'true') {
        result = { ...result, exitCode: 0 };
        record.argv = ['true'];
      } else if (typeof refusal === 'string') {
        record.command = logText(commandBytes);
        record.refused = refusal;
        await writeAll(channel.stderr, `rrsyncd: ${refusal}\n`, channel);
      } else {
        const argv = refusal.argv;
        record.argv = argv.map(logText);
        const limit = entry.grant?.limits.maxSessions;
        const running = this.activePerGrant.get(grantKey) ?? 0;
        if (this.draining) {
          record.refused = 'server shutting down';
          await writeAll(channel.stderr, 'rrsyncd: server shutting down\n', channel);
        } else if (limit !== undefined && running >= limit) {
          record.refused = 'too many sessions';
          await writeAll(channel.stderr, `rrsyncd: too many concurrent sessions for this key (limit ${limit})\n`, channel);
        } else {
          this.activePerGrant.set(grantKey, running + 1);
          counted = true;
          result = await this.runEngine(conn, channel, argv, entry, ac.signal);
        }
      }
      await flushWritable(channel.stderr, channel);
      await flushWritable(channel, channel);
    } catch (err) {
      conn.log.error({ err }, 'exec failed');
    } finally {
      if (counted) {
        const n = (this.activePerGrant.get(grantKey) ?? 1) - 1;
        if (n <= 0) this.activePerGrant.delete(grantKey);
        else this.activePerGrant.set(grantKey, n);
      }
      conn.active.delete(ac);
    }
    // exit-status must precede EOF/CLOSE, which end() sends
    channel.exit(result.exitCode);
    channel.end();
    this.log.info(
      {
        ...record,
        role: result.role,
        exitCode: result.exitCode,
        bytesIn: result.bytesIn,
        bytesOut: result.bytesOut,
        files: result.files,
        durationMs: Math.round(performance.now() - started),
      },
      'exec',
    );
    if (this.draining && conn.active.size === 0) this.endConnection(conn, 'shutdown');
    else this.armIdleTimer(conn);
    // Transfers leave freed Buffers in malloc's heap (80 MiB after 16 concurrent pushes); with
    // nothing running, hand that memory back so the idle server's RSS does not keep the peak.
    if ([...this.conns].every((c) => c.active.size === 0)) nativeBinding?.releaseFreedMemory?.();
  }

  /** 'true' for rrsync's `true` probe, an error message to refuse with, or the argv to run. */
  private checkCommand(commandBytes: string): 'true' | string | { argv: string[] } {
    if (commandBytes.trim() === 'true') return 'true';
    let argv: string[];
    try {
      argv = splitShellWords(commandBytes);
    } catch (err) {
      return `command not allowed: ${(err as Error).message}`;
    }
    if (!isRsyncServerArgv(argv)) return `command not allowed: ${logText(commandBytes)}`;
    return { argv };
  }

  private async runEngine(conn: ConnState, channel: ServerChannel, argv: string[], entry: KeyEntry, signal: AbortSignal): Promise<SessionResult> {
    try {
      // loaded lazily so that the front door keeps working (and refusing) even if the engine cannot load
      this.runSession ??= (await import('../engine/session.js')).runRsyncSession;
      return await this.runSession(
        { input: channel, output: channel, stderr: channel.stderr },
        { argv, grant: entry.grant!, log: conn.log.child({ exec: conn.execs }), signal },
      );
    } catch (err) {
      conn.log.error({ err }, 'engine failed');
      if (channel.stderr.writable) await writeAll(channel.stderr, `rrsyncd: internal error: ${(err as Error).message}\n`, channel);
      return { exitCode: EXIT_ENGINE_FAILURE, role: 'none', bytesIn: 0, bytesOut: 0 };
    }
  }
}

/** ssh2 creates its Client inside injectSocket; map the socket back to our connection state. */
const socketOwners = new WeakMap<Socket, ConnState>();

function findConn(conns: Set<ConnState>, client: Connection, ip: string, port: number): ConnState | undefined {
  const sock = (client as unknown as { _sock?: Socket })._sock;
  if (sock && socketOwners.has(sock)) return socketOwners.get(sock);
  for (const c of conns) if (!c.client && c.remoteAddress === ip && c.remotePort === port) return c;
  return undefined;
}

/** Writes text, waiting for 'drain' when write() asks us to. */
export async function writeAll(w: Writable, text: string, closer: NodeJS.EventEmitter = w): Promise<void> {
  if (!w.writable) return;
  if (w.write(text)) return;
  const ac = new AbortController();
  await Promise.race([once(w, 'drain', ac), once(closer, 'close', ac)]).catch(() => undefined);
  ac.abort();
}

/**
 * Resolves once everything written so far has been handed to the SSH layer (a zero-length write
 * is a barrier: its callback runs after the earlier chunks left the stream's buffer).
 */
export function flushWritable(w: Writable, closer: NodeJS.EventEmitter = w, timeoutMs = 30_000): Promise<void> {
  if (!w.writable || w.writableEnded || w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      closer.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    closer.once('close', done);
    w.write(Buffer.alloc(0), done);
  });
}
