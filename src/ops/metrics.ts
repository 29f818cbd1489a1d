/**
 * Prometheus metrics (prom-client) and the health endpoints, served on `metrics.listen`:
 * `/metrics`, `/healthz` (the process is alive) and `/readyz` (listening with a loaded
 * configuration; 503 while draining). Counters are fed from the exec summary record, so they count
 * exactly what the log says.
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { parseListenAddress } from '../config/schema.js';

/** The parts of an exec summary record the metrics count. */
export interface ExecSummary {
  tenant?: string;
  role: string;
  exitCode: number;
  bytesIn: number;
  bytesOut: number;
  files?: number;
  deletions?: number;
  /** File data that crossed the wire, and data the other side's basis supplied. */
  literalBytes?: number;
  matchedBytes?: number;
  durationMs: number;
  refused?: string;
  kicked?: boolean;
}

export interface MetricsSources {
  activeConnections(): number;
  activeSessions(): number;
  /** Quota limits and usage (where the tenant's ledger is measured) per tenant. */
  quotas(): QuotaState[];
}

interface QuotaState {
  tenant: string;
  limitBytes?: number;
  usedBytes?: number;
  limitFiles?: number;
  usedFiles?: number;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly sessions: Counter<'tenant' | 'role' | 'result'>;
  private readonly bytesIn: Counter<'tenant'>;
  private readonly bytesOut: Counter<'tenant'>;
  private readonly files: Counter<'tenant' | 'role'>;
  private readonly deletions: Counter<'tenant'>;
  private readonly literal: Counter<'tenant' | 'role'>;
  private readonly matched: Counter<'tenant' | 'role'>;
  private readonly refusals: Counter<'reason'>;
  private readonly authFailures: Counter<'reason'>;
  private readonly duration: Histogram<'role'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'rrsyncd_' });
    this.sessions = new Counter({ name: 'rrsyncd_sessions_total', help: 'Finished exec sessions.', labelNames: ['tenant', 'role', 'result'], registers });
    this.bytesIn = new Counter({ name: 'rrsyncd_received_bytes_total', help: 'Bytes received from clients by sessions.', labelNames: ['tenant'], registers });
    this.bytesOut = new Counter({ name: 'rrsyncd_sent_bytes_total', help: 'Bytes sent to clients by sessions.', labelNames: ['tenant'], registers });
    this.files = new Counter({ name: 'rrsyncd_files_transferred_total', help: 'Files transferred.', labelNames: ['tenant', 'role'], registers });
    this.deletions = new Counter({ name: 'rrsyncd_deletions_total', help: 'Entries deleted by --delete.', labelNames: ['tenant'], registers });
    this.literal = new Counter({ name: 'rrsyncd_literal_bytes_total', help: 'File data sent as is (role sender) or received as is (role receiver).', labelNames: ['tenant', 'role'], registers });
    this.matched = new Counter({ name: 'rrsyncd_matched_bytes_total', help: 'File data the delta algorithm took from the basis instead.', labelNames: ['tenant', 'role'], registers });
    this.refusals = new Counter({ name: 'rrsyncd_refusals_total', help: 'Exec requests refused, by reason.', labelNames: ['reason'], registers });
    this.authFailures = new Counter({ name: 'rrsyncd_auth_failures_total', help: 'Failed public-key authentications, by reason.', labelNames: ['reason'], registers });
    this.duration = new Histogram({
      name: 'rrsyncd_session_duration_seconds',
      help: 'Exec session duration.',
      labelNames: ['role'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200],
      registers,
    });
    new Gauge({ name: 'rrsyncd_active_sessions', help: 'Running exec sessions.', registers, collect() { this.set(sources.activeSessions()); } });
    new Gauge({ name: 'rrsyncd_active_connections', help: 'Open SSH connections.', registers, collect() { this.set(sources.activeConnections()); } });
    // prom-client's defaults have external memory but not the part of it Buffers hold
    new Gauge({ name: 'rrsyncd_nodejs_array_buffers_bytes', help: 'Memory held by ArrayBuffers and Buffers, in bytes.', registers, collect() { this.set(process.memoryUsage().arrayBuffers); } });
    const quotaGauge = (name: string, help: string, pick: (q: QuotaState) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['tenant'],
        registers,
        collect() {
          this.reset();
          for (const q of sources.quotas()) {
            const v = pick(q);
            if (v !== undefined) this.set({ tenant: q.tenant }, v);
          }
        },
      });
    quotaGauge('rrsyncd_quota_limit_bytes', 'Byte quota per tenant.', (q) => q.limitBytes);
    quotaGauge('rrsyncd_quota_used_bytes', 'Bytes used per tenant (its usage ledger, once measured).', (q) => q.usedBytes);
    quotaGauge('rrsyncd_quota_limit_files', 'Entry quota per tenant.', (q) => q.limitFiles);
    quotaGauge('rrsyncd_quota_used_files', 'Entries used per tenant (its usage ledger, once measured).', (q) => q.usedFiles);
  }

  recordExec(s: ExecSummary): void {
    const tenant = s.tenant ?? '';
    const result = s.kicked ? 'kicked' : s.refused ? 'refused' : s.exitCode === 0 ? 'ok' : 'error';
    this.sessions.inc({ tenant, role: s.role, result });
    if (s.refused) this.refusals.inc({ reason: refusalReason(s.refused) });
    else if (s.role === 'none' && s.exitCode !== 0) this.refusals.inc({ reason: 'options or grant' });
    this.bytesIn.inc({ tenant }, s.bytesIn);
    this.bytesOut.inc({ tenant }, s.bytesOut);
    if (s.files) this.files.inc({ tenant, role: s.role }, s.files);
    if (s.deletions) this.deletions.inc({ tenant }, s.deletions);
    if (s.literalBytes) this.literal.inc({ tenant, role: s.role }, s.literalBytes);
    if (s.matchedBytes) this.matched.inc({ tenant, role: s.role }, s.matchedBytes);
    if (s.role !== 'none') this.duration.observe({ role: s.role }, s.durationMs / 1000);
  }

  authFailed(reason: string): void {
    this.authFailures.inc({ reason: authFailureReason(reason) });
  }
}

/** A bounded label from a refusal message (the part before any detail). */
export function refusalReason(text: string): string {
  return text.split(':')[0]!.slice(0, 40);
}

/** Auth failure reasons carry addresses and file names; the label keeps only their kind. */
export function authFailureReason(reason: string): string {
  const kinds: Array<[RegExp, string]> = [
    [/^unknown key/, 'unknown key'],
    [/^user /, 'user not allowed'],
    [/^address /, 'from mismatch'],
    [/expir/, 'expired'],
    [/bad signature/, 'bad signature'],
    [/too many connections/, 'too many connections'],
    [/authentication is not accepted/, 'method not accepted'],
  ];
  for (const [re, kind] of kinds) if (re.test(reason)) return kind;
  return 'unusable key';
}

export interface HealthState {
  ready(): boolean;
}

/** Serves /metrics, /healthz and /readyz on one address; resolves once listening. */
export async function serveMetrics(address: string, metrics: Metrics, health: HealthState): Promise<{ server: Server; address: AddressInfo }> {
  const { host, port } = parseListenAddress(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ok = health.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.listen(port, host);
  await once(server, 'listening');
  return { server, address: server.address() as AddressInfo };
}
