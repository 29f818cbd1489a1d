/**
 * Operating a running server: the live-session registry, metrics and health endpoints, the control
 * socket, the admin keys and the console, and reload (SIGHUP or `rrsyncd reload`). `serve` builds
 * one of these and hands its hooks to the ssh server.
 */
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, loadConfig, type Config, type LoadOptions } from '../config/load.js';
import { buildKeyRing, tenantGrant } from '../ssh/key-ring.js';
import type { LogSink, Logger } from '../log.js';
import type { KeyRing } from '../ssh/authorized-keys.js';
import type { RrsyncServer } from '../ssh/server.js';
import { startAdminSession } from '../ssh/admin-shell.js';
import { buildAdminRing } from './admins.js';
import { ControlSocket, controlSocketPath, type ReloadOutcome, type TenantView } from './control-socket.js';
import type { RevisionEvent, RevisionHooks } from '../revisions/layout.js';
import { createEventHooks, type EventHooks } from './event-hooks.js';
import type { ServerHooks } from './hooks.js';
import { Metrics, serveMetrics, type ExecSummary } from './metrics.js';
import { SessionRegistry } from './sessions.js';
import { quotaGauges, usageViews } from './usage.js';
import { usageLedgers } from '../usage/registry.js';

export interface OperationsOptions {
  config: Config;
  load: LoadOptions;
  logSink: LogSink;
  /** The admin ring built at start (serve refuses to start on its errors). */
  adminRing?: KeyRing;
}

export class Operations {
  readonly registry = new SessionRegistry();
  readonly metrics: Metrics;
  private config: Config;
  private adminRing?: KeyRing;
  private server?: RrsyncServer;
  private control?: ControlSocket;
  private http?: HttpServer;
  private stopping = false;
  private readonly log: Logger;
  /** The configured event hooks (rebuilt on reload; runs already started go on). */
  private events: EventHooks;
  /**
   * What a revision-publishing session asks of the hooks (verify, published): hand this to the
   * session request; it always uses the current configuration.
   */
  readonly revisionHooks: RevisionHooks = {
    verify: (event, stagedPath) => this.events.verify?.(event, stagedPath) ?? Promise.resolve(null),
    published: (event) => this.events.published?.(event),
  };

  constructor(private readonly opts: OperationsOptions) {
    this.config = opts.config;
    this.adminRing = opts.adminRing;
    this.log = opts.logSink.logger;
    this.events = createEventHooks(opts.config.hooks, this.log);
    this.metrics = new Metrics({
      activeConnections: () => this.server?.connectionCount ?? 0,
      activeSessions: () => this.registry.size,
      quotas: () => quotaGauges(this.config, usageLedgers),
    });
    // before the server listens: every receiving session is counted, in ledgers kept in the state dir
    usageLedgers.configure({ stateDir: this.config.stateDir, reconcileSeconds: this.config.usage.reconcileSeconds, log: this.log });
  }

  hooks(): ServerHooks {
    return {
      sessions: this.registry,
      authFailed: (reason) => this.metrics.authFailed(reason),
      execEnded: (summary) => {
        this.metrics.recordExec(summary);
        this.events.sessionEnd(sessionEndEvent(summary));
      },
      adminRing: () => this.adminRing,
      revisionHooks: this.revisionHooks,
      adminSession: (session, info) =>
        startAdminSession(session, info, {
          controlSocket: controlSocketPath(this.config.stateDir),
          shell: this.config.admins.shell,
          idleTimeoutMs: this.config.admins.idleTimeoutMs,
          cwd: this.config.stateDir,
        }),
    };
  }

  /** Starts the control socket and (when configured) the metrics endpoint. */
  async start(server: RrsyncServer): Promise<AddressInfo | undefined> {
    this.server = server;
    // every tenant's ledger: loaded from the state dir (gauges from the start), or measured in the background
    for (const t of this.config.tenants) usageLedgers.forRoot(tenantGrant(t, this.config.root).root);
    const path = controlSocketPath(this.config.stateDir);
    try {
      this.control = await ControlSocket.start(
        path,
        {
          sessions: () => this.registry.list(),
          kick: (sel, reason) => this.registry.kick(sel, reason),
          reload: () => this.reload(),
          tenants: () => this.tenants(),
          usage: (tenant) => usageViews(this.config, usageLedgers, tenant),
          follow: (f) => this.opts.logSink.follow(f),
        },
        this.log,
      );
    } catch (err) {
      // e.g. a second server on the same state dir: it serves, without sessions/kick/reload
      this.log.warn({ path, err: (err as Error).message }, 'no control socket');
    }
    if (!this.config.metrics.listen) return undefined;
    const { server: http, address } = await serveMetrics(this.config.metrics.listen, this.metrics, {
      ready: () => !this.stopping && server.accepting,
    });
    this.http = http;
    return address;
  }

  /** Called on SIGTERM: /readyz answers 503 from now on. */
  draining(): void {
    this.stopping = true;
  }

  /** Resolves once the hooks and webhooks started so far have finished. */
  hooksSettled(): Promise<void> {
    return this.events.settled();
  }

  stop(): void {
    usageLedgers.close();
    this.control?.close();
    this.http?.close();
    this.http?.closeAllConnections();
  }

  /**
   * Loads and validates the configuration again; applies it only when it is whole (keys, admin
   * keys, log settings). Connections of removed or changed keys are closed by the server.
   */
  reload(): ReloadOutcome {
    try {
      const config = loadConfig(this.opts.load);
      const keys = buildKeyRing(config);
      const admins = buildAdminRing(config);
      const errors = [...keys.errors, ...admins.errors];
      if (errors.length) throw new ConfigError(errors);
      for (const w of [...keys.warnings, ...admins.warnings]) this.log.warn({ problem: w }, 'authorized key skipped');
      this.opts.logSink.apply(config.log);
      this.config = config;
      this.adminRing = admins.ring;
      this.events = createEventHooks(config.hooks, this.log);
      const closed = this.server?.reload(config, keys.ring) ?? 0;
      this.log.info({ keys: keys.ring.size, adminKeys: admins.ring?.size ?? 0, closed }, 'configuration reloaded');
      return { ok: true, keys: keys.ring.size, closed };
    } catch (err) {
      const problems = (err as ConfigError).problems ?? [(err as Error).message];
      this.log.error({ problems }, 'reload failed; keeping the old configuration');
      return { ok: false, problems };
    }
  }

  private tenants(): TenantView[] {
    const running = this.registry.countByTenant();
    return this.config.tenants.map((t) => ({
      name: t.name,
      root: tenantGrant(t, this.config.root).root,
      sessions: running.get(t.name) ?? 0,
      quotaBytes: t.limits?.quotaBytes,
      quotaFiles: t.limits?.quotaFiles,
    }));
  }
}

/** The `session.end` event of an exec summary (the server's `exec` record). */
function sessionEndEvent(s: ExecSummary & Record<string, unknown>): RevisionEvent {
  const end = Date.now();
  const event: RevisionEvent = {
    event: 'session.end',
    exitCode: s.exitCode,
    bytes: s.role === 'sender' ? s.bytesOut : s.bytesIn,
    start: new Date(end - s.durationMs).toISOString(),
    end: new Date(end).toISOString(),
  };
  if (s.tenant !== undefined) event.tenant = s.tenant;
  if (typeof s.fingerprint === 'string') event.keyFingerprint = s.fingerprint;
  if (typeof s.root === 'string') event.root = s.root;
  if (Array.isArray(s.argv)) event.argv = s.argv as string[];
  if (s.files !== undefined) event.files = s.files;
  return event;
}
