/**
 * The SSH front door: public-key auth (signature verified) against a KeyRing, and `exec` of
 * `rsync --server …` routed to the engine. Everything else (shell, pty, subsystems, env, x11,
 * agent, TCP/streamlocal forwarding) is refused. One log record per connection and per exec.
 */
import { once } from 'node:events';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import ssh2, { type AuthContext, type Connection, type ServerChannel, type Session } from 'ssh2';
import type { Logger } from 'pino';
import type { SessionIO, SessionRequest, SessionResult } from '../engine/session.js';
import { logText } from '../printable.js';
import type { Config } from '../config/load.js';
import { parseListenAddress } from '../config/schema.js';
import type { KeyEntry, KeyRing } from './authorized-keys.js';
import type { HostKey } from './host-keys.js';
import { batchSocketWrites, fixChannelFlowControl } from '../patches/ssh2-channel.js';
import { poolOutgoingPackets } from '../patches/ssh2-packets.js';
import { nativeBinding } from '../native.js';
import { escapeControlBytes } from '../protocol/message-text.js';
import { advertiseSignatureAlgorithms, disconnectWithMessage, installSsh2Patches, restrictHostKeyOffer } from './ssh2-internals.js';
import { StartupGate } from './front-door.js';
import { parseMaxStartups } from '../config/max-startups.js';
import { checkHostKeyAlgorithms, signatureAlgorithm } from './algorithms.js';
import type { ServerHooks } from '../ops/hooks.js';
import { keyStillGranted } from '../ops/key-changes.js';
import { roleOfArgv } from '../ops/sessions.js';
import { createTenantRoot } from '../sandbox/root-dir.js';
import { flushWritable, writeAll } from './channel-write.js';
import { checkCommand, execSummary } from './exec-command.js';
import { IdleMemoryRelease } from './idle-memory.js';
import { EXIT_SERVER_BUSY, memoryInUse, memoryWatermark, SERVER_BUSY_MESSAGE } from './watermark.js';

export type RunSession = (io: SessionIO, req: SessionRequest) => Promise<SessionResult>;

export interface RrsyncServerOptions {
  config: Config;
  keyRing: KeyRing;
  hostKeys: HostKey[];
  log: Logger;
  /** The engine entry; replaceable in tests. Default: engine/session.ts, loaded on first exec. */
  runSession?: RunSession;
  /** Metrics, the live-session registry and the operator console (src/ops). */
  hooks?: ServerHooks;
}

/** rsync's exit code for "error in rsync protocol data stream", used when the engine throws. */
const EXIT_ENGINE_FAILURE = 12;
/** The exit status of a kicked session (rsync's RERR_SIGNAL: the server side was told to stop). */
const EXIT_KICKED = 20;
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
  /** Authentication requests so far, and how many failed (limits.maxAuthTries). */
  authAttempts: number;
  authFailures: number;
  authResult: 'none' | 'ok' | 'failed';
  authFailure?: string;
  entry?: KeyEntry;
  /** Authenticated with an `admins` key: console only, no rsync. */
  admin?: boolean;
  sessions: number;
  execs: number;
  active: Set<AbortController>;
  handshakeTimer?: NodeJS.Timeout;
  /** Takes the connection out of the unauthenticated count (StartupGate). */
  leaveStartup: () => void;
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
  private readonly startups: StartupGate;
  private nextConnId = 1;
  private draining = false;
  private readonly hooks: ServerHooks;
  private readonly idleMemory = new IdleMemoryRelease(nativeBinding, {
    isIdle: () => [...this.conns].every((c) => c.active.size === 0),
    onReleased: (ms) => this.log.debug({ event: 'idle memory release', pauseMs: Math.round(ms), rss: process.memoryUsage.rss() }, 'idle: memory given back'),
  });

  constructor(opts: RrsyncServerOptions) {
    this.config = opts.config;
    this.keyRing = opts.keyRing;
    this.log = opts.log;
    this.runSession = opts.runSession;
    installSsh2Patches();
    this.hooks = opts.hooks ?? {};
    const a = opts.config.algorithms;
    checkHostKeyAlgorithms(opts.hostKeys, a.serverHostKey);
    this.startups = new StartupGate(parseMaxStartups(opts.config.limits.maxStartups), opts.config.limits.maxStartupsPerSource);
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

  /**
   * New keys and limits; listen addresses, host keys and algorithms need a restart. Connections
   * whose key was removed or changed are closed (with any transfer they run).
   */
  reload(config: Config, keyRing: KeyRing): number {
    this.config = config;
    this.keyRing = keyRing;
    this.startups.update(parseMaxStartups(config.limits.maxStartups), config.limits.maxStartupsPerSource);
    let closed = 0;
    for (const c of this.conns) {
      if (c.authResult !== 'ok' || !c.entry) continue;
      const ring = c.admin ? this.hooks.adminRing?.() : keyRing;
      if (!ring || !keyStillGranted(c.entry, ring, c.user ?? '', c.remoteAddress)) {
        c.log.info({ fingerprint: c.entry.fingerprint }, 'key removed or changed: closing its connection');
        this.endConnection(c, 'key removed or changed');
        closed++;
      }
    }
    return closed;
  }

  /** Whether the server is accepting connections (for /readyz). */
  get accepting(): boolean {
    return !this.draining && this.listeners.length > 0 && this.listeners.every((l) => l.listening);
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
    this.idleMemory.close();
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
    const admission = this.startups.admit(socket.remoteAddress ?? '?');
    if (!admission.ok) {
      this.log.warn({ event: 'connection', remote: socket.remoteAddress, remotePort: socket.remotePort, auth: 'none', reason: admission.reason }, 'connection dropped');
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
      authAttempts: 0,
      authFailures: 0,
      authResult: 'none',
      sessions: 0,
      execs: 0,
      active: new Set(),
      leaveStartup: admission.leave,
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
    conn.leaveStartup();
    for (const ac of conn.active) ac.abort(new Error('connection closed'));
    if (conn.authResult === 'ok' && conn.entry) {
      const n = (this.perKey.get(conn.entry.fingerprint) ?? 1) - 1;
      if (n <= 0) this.perKey.delete(conn.entry.fingerprint);
      else this.perKey.set(conn.entry.fingerprint, n);
    }
    this.conns.delete(conn);
    if (conn.authResult !== 'ok' && conn.authFailure) this.hooks.authFailed?.(conn.authFailure);
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
    // ssh2 sends its KEXINIT right after this listener returns
    restrictHostKeyOffer(client, this.config.algorithms.serverHostKey);
    advertiseSignatureAlgorithms(client, this.config.algorithms.pubkey);
    if (!poolOutgoingPackets(client, conn.socket)) conn.log.debug('ssh2 internals changed: outgoing packets not pooled');
    client.on('error', (err: Error) => conn.log.debug({ err: err.message }, 'ssh connection error'));
    client.on('authentication', (ctx) => this.onAuth(conn, ctx));
    client.on('ready', () => {
      clearTimeout(conn.handshakeTimer);
      conn.leaveStartup();
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
    if (conn.authFailures >= this.config.limits.maxAuthTries) return; // being disconnected
    conn.user = ctx.username;
    conn.authAttempts++;
    if (!conn.authMethods.includes(ctx.method)) conn.authMethods.push(ctx.method);
    if (ctx.method !== 'publickey') {
      // as sshd: a client's opening "none" request (asking for the methods) is not a failure
      if (ctx.method === 'none' && conn.authAttempts === 1) ctx.reject(['publickey']);
      else this.refuseAuth(conn, ctx, ctx.method === 'none' ? undefined : `${ctx.method} authentication is not accepted`);
      return;
    }
    const algorithm = signatureAlgorithm(ctx.key.algo, ctx.hashAlgo);
    if (!this.config.algorithms.pubkey.includes(algorithm)) {
      this.refuseAuth(conn, ctx, `${algorithm} signatures are not accepted`);
      return;
    }
    const adminDecision = this.hooks.adminRing?.()?.decide(ctx.key.data, ctx.username, conn.remoteAddress);
    const decision = adminDecision?.ok ? adminDecision : this.keyRing.decide(ctx.key.data, ctx.username, conn.remoteAddress);
    if (!decision.ok) {
      if (decision.entry) conn.log.warn({ fingerprint: decision.entry.fingerprint, reason: decision.reason }, 'key refused');
      this.refuseAuth(conn, ctx, decision.reason);
      return;
    }
    const entry = decision.entry;
    if (!ctx.signature || !ctx.blob) {
      ctx.accept(); // query phase: the key is acceptable, the client will now sign
      return;
    }
    if (!entry.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) {
      this.refuseAuth(conn, ctx, 'bad signature');
      return;
    }
    const open = this.perKey.get(entry.fingerprint) ?? 0;
    if (open >= this.config.limits.maxConnectionsPerKey) {
      this.refuseAuth(conn, ctx, `too many connections for key (${open})`);
      return;
    }
    this.perKey.set(entry.fingerprint, open + 1);
    conn.authResult = 'ok';
    conn.authFailure = undefined;
    conn.entry = entry;
    conn.admin = adminDecision?.ok === true;
    ctx.accept();
  }

  /** Refuses one attempt; the limits.maxAuthTries-th failure cuts the connection instead, as sshd does. */
  private refuseAuth(conn: ConnState, ctx: AuthContext, reason: string | undefined): void {
    if (reason !== undefined) conn.authFailure = reason;
    if (ctx.method === 'publickey') conn.authResult = 'failed';
    conn.authFailures++;
    const max = this.config.limits.maxAuthTries;
    if (conn.authFailures < max) {
      ctx.reject(['publickey']);
      return;
    }
    conn.log.warn({ remote: conn.remoteAddress, user: conn.user, failures: conn.authFailures, last: conn.authFailure }, 'too many authentication failures');
    conn.authFailure = `too many authentication failures (${conn.authFailures}; last: ${conn.authFailure ?? 'none'})`;
    this.endConnection(conn, 'too many authentication failures', 'Too many authentication failures');
  }

  private onSession(conn: ConnState, session: Session): void {
    if (conn.admin && conn.entry && this.hooks.adminSession) {
      clearTimeout(conn.idleTimer);
      this.hooks.adminSession(session, { conn: conn.id, entry: conn.entry, user: conn.user, address: conn.remoteAddress, log: conn.log });
      return;
    }
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
    // an exec can end after its connection closed (a killed client): a timer then would keep
    // the whole connection (ssh2 state, packet pool) alive for idleTimeoutMs
    if (conn.active.size > 0 || !this.conns.has(conn)) return;
    conn.idleTimer = setTimeout(() => this.endConnection(conn, 'idle timeout'), this.config.limits.idleTimeoutMs);
  }

  /** Ends a connection; `message` is the disconnect description the client prints. */
  private endConnection(conn: ConnState, reason: string, message?: string): void {
    conn.closeReason ??= reason;
    if (conn.client && message) disconnectWithMessage(conn.client, message);
    else if (conn.client) conn.client.end();
    else conn.socket.destroy();
    // a client that never answers the disconnect should not hold the slot
    setTimeout(() => conn.socket.destroy(), 2000).unref();
  }

  private async onExec(conn: ConnState, channel: ServerChannel, command: string): Promise<void> {
    const started = performance.now();
    clearTimeout(conn.idleTimer);
    conn.execs++;
    // one char per byte (ssh2-internals.ts keeps ssh2 from decoding it as UTF-8)
    const commandBytes = command;
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
    this.idleMemory.sessionStarted();
    let channelClosed = false;
    const closers = [channel, conn.socket];
    channel.once('close', () => {
      channelClosed = true;
      ac.abort(new Error('channel closed'));
    });
    const grantKey = entry.tenant ? `tenant:${entry.tenant}` : entry.fingerprint;
    let counted = false;
    const liveId = `${conn.id}.${conn.execs}`;
    let kicked: string | undefined;
    const kick = (reason: string) => {
      if (kicked !== undefined) return;
      kicked = record.kicked = reason;
      void this.kickChannel(channel, reason, ac);
    };
    try {
      const refusal = checkCommand(commandBytes);
      if (refusal === 'true') {
        result = { ...result, exitCode: 0 };
        record.argv = ['true'];
      } else if (typeof refusal === 'string') {
        record.command = logText(commandBytes);
        record.refused = refusal;
        await writeAll(channel.stderr, escapeControlBytes(Buffer.from(`rrsyncd: ${refusal}\n`)), closers);
      } else {
        const argv = refusal.argv;
        record.argv = argv.map(logText);
        const limit = entry.grant?.limits.maxSessions;
        const running = this.activePerGrant.get(grantKey) ?? 0;
        if (this.draining) {
          record.refused = 'server shutting down';
          await writeAll(channel.stderr, 'rrsyncd: server shutting down\n', closers);
        } else if (memoryInUse() > memoryWatermark(this.config.limits.serverMemoryBytes)) {
          record.refused = 'memory watermark';
          this.log.warn({ memoryInUse: memoryInUse(), watermark: memoryWatermark(this.config.limits.serverMemoryBytes) }, 'session refused: memory above the watermark');
          await writeAll(channel.stderr, `${SERVER_BUSY_MESSAGE}\n`, closers);
          result = { ...result, exitCode: EXIT_SERVER_BUSY };
        } else if (limit !== undefined && running >= limit) {
          record.refused = 'too many sessions';
          await writeAll(channel.stderr, `rrsyncd: too many concurrent sessions for this key (limit ${limit})\n`, closers);
        } else {
          this.activePerGrant.set(grantKey, running + 1);
          counted = true;
          this.hooks.sessions?.add({
            id: liveId, tenant: entry.tenant, fingerprint: entry.fingerprint, comment: entry.comment, user: conn.user,
            address: conn.remoteAddress, role: roleOfArgv(argv), argv: record.argv as string[], startedAt: Date.now(),
            bytes: () => ({ in: conn.socket.bytesRead, out: conn.socket.bytesWritten }), kick,
          });
          result = await this.runEngine(conn, channel, argv, entry, ac.signal);
        }
      }
      await flushWritable(channel.stderr, closers);
      await flushWritable(channel, closers);
    } catch (err) {
      conn.log.error({ err }, 'exec failed');
    } finally {
      if (counted) {
        const n = (this.activePerGrant.get(grantKey) ?? 1) - 1;
        if (n <= 0) this.activePerGrant.delete(grantKey);
        else this.activePerGrant.set(grantKey, n);
      }
      conn.active.delete(ac);
      this.hooks.sessions?.remove(liveId);
    }
    // exit-status must precede EOF/CLOSE, which end() sends; a kick already sent both
    if (kicked === undefined) {
      channel.exit(result.exitCode);
      channel.end();
    }
    const exitCode = kicked === undefined ? result.exitCode : EXIT_KICKED;
    const summary = execSummary(record, entry.comment, result, exitCode, performance.now() - started);
    this.log.info(summary, 'exec');
    this.hooks.execEnded?.({ ...summary, refused: record.refused as string | undefined, kicked: kicked !== undefined });
    if (this.draining && conn.active.size === 0) {
      // after the client closed the channel: a disconnect before that makes ssh exit 255
      if (channelClosed) this.endConnection(conn, 'shutdown');
      else channel.once('close', () => this.endConnection(conn, 'shutdown'));
    } else this.armIdleTimer(conn);
    this.idleMemory.sessionEnded(counted);
  }

  /** One line on the client's stderr, the exit status, and the channel closed; the engine then sees its input end. */
  private async kickChannel(channel: ServerChannel, reason: string, ac: AbortController): Promise<void> {
    await writeAll(channel.stderr, `rrsyncd: ${reason}\n`, channel);
    await flushWritable(channel.stderr, channel, 2000);
    channel.exit(EXIT_KICKED);
    // close(), not end(): the engine may still write, and a write after end() would throw
    channel.close();
    ac.abort(new Error(reason));
  }

  private async runEngine(conn: ConnState, channel: ServerChannel, argv: string[], entry: KeyEntry, signal: AbortSignal): Promise<SessionResult> {
    // A tenant root is made on first use; any root still unusable is refused by the session.
    if (entry.tenant !== undefined) {
      const problem = createTenantRoot(entry.grant!.root);
      if (problem) conn.log.error({ root: entry.grant!.root, problem }, 'tenant root could not be created');
    }
    try {
      // loaded lazily so that the front door keeps working (and refusing) even if the engine cannot load
      this.runSession ??= (await import('../engine/session.js')).runRsyncSession;
      return await this.runSession(
        { input: channel, output: channel, stderr: channel.stderr },
        {
          argv,
          grant: entry.grant!,
          log: conn.log.child({ exec: conn.execs }),
          signal,
          tenant: entry.tenant,
          keyFingerprint: entry.fingerprint,
          revisionHooks: this.hooks.revisionHooks,
          transferLog: this.config.log.transfers,
        },
      );
    } catch (err) {
      conn.log.error({ err }, 'engine failed');
      if (channel.stderr.writable) await writeAll(channel.stderr, escapeControlBytes(Buffer.from(`rrsyncd: internal error: ${(err as Error).message}\n`)), [channel, conn.socket]);
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
