/**
 * The configuration schema (convict). Every setting has a doc string, an RRSYNCD_* environment
 * variable (except the structured `tenants` list) and a default that gives a working local server.
 * Empty defaults for `root`, `hostKeys` and `authorizedKeys` mean "demo mode" values, filled in by
 * config/load.ts (state dir, demo root, the invoking user's keys).
 */
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { isAbsolute, relative, resolve } from 'node:path';
import convict from 'convict';
import { parseChmod } from '../policy/chmod.js';
import { parseMaxStartups } from './max-startups.js';
import type { RevisionsConfig } from '../revisions/layout.js';

const require = createRequire(import.meta.url);
const ssh2Constants = require('ssh2/lib/protocol/constants.js') as Record<string, string[]>;

const DEFAULT_ALGORITHMS = {
  kex: [
    'curve25519-sha256', 'curve25519-sha256@libssh.org', 'ecdh-sha2-nistp256', 'ecdh-sha2-nistp384',
    'ecdh-sha2-nistp521', 'diffie-hellman-group16-sha512', 'diffie-hellman-group18-sha512',
    'diffie-hellman-group14-sha256',
  ],
  serverHostKey: ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'],
  cipher: [
    'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com',
    'aes128-ctr', 'aes192-ctr', 'aes256-ctr',
  ],
  hmac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512'],
  compress: ['none'],
  pubkey: ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'],
};

/** Client key signature algorithms ssh2 can verify; `ssh-rsa` (SHA-1) and `ssh-dss` only when configured. */
const SUPPORTED_PUBKEY_ALGORITHMS = [...DEFAULT_ALGORITHMS.pubkey, 'ssh-rsa', 'ssh-dss'];

interface TenantLimits {
  maxFileSize?: number;
  quotaBytes?: number;
  quotaFiles?: number;
  maxSessions?: number;
  uploadBytesPerSecond?: number;
  memoryBytes?: number;
  allowDevices?: boolean;
  allowChown?: boolean;
  incomingChmod?: string;
}

export interface TenantConfig {
  name: string;
  /** SSH user names this tenant's keys may log in as; absent = any. */
  users?: string[];
  /** authorized_keys lines (options allowed, e.g. from=, command="rrsync …"). */
  keys?: string[];
  /** An authorized_keys file with more keys for this tenant. */
  keysFile?: string;
  /** The tenant's root; relative = below the default root. */
  root?: string;
  mode?: 'rw' | 'ro' | 'wo';
  noDelete?: boolean;
  noOverwrite?: boolean;
  /** -append-only: add, never delete, replace or change what exists. */
  appendOnly?: boolean;
  munge?: boolean;
  noLock?: boolean;
  absolute?: boolean;
  allowOptions?: string[];
  denyOptions?: string[];
  limits?: TenantLimits;
  /** Every push builds a new revision (docs/revisions.md). */
  revisions?: RevisionsConfig;
}

export interface ConfigShape {
  stateDir: string;
  listen: string[];
  hostKeys: string[];
  root: string;
  authorizedKeys: string[];
  tenants: TenantConfig[];
  algorithms: { kex: string[]; serverHostKey: string[]; cipher: string[]; hmac: string[]; compress: string[]; pubkey: string[] };
  limits: {
    handshakeTimeoutMs: number;
    idleTimeoutMs: number;
    maxConnections: number;
    maxConnectionsPerKey: number;
    maxSessionsPerConnection: number;
    maxAuthTries: number;
    maxStartups: string;
    maxStartupsPerSource: number;
    shutdownGraceMs: number;
    keepaliveIntervalMs: number;
    keepaliveCountMax: number;
    serverMemoryBytes: number;
  };
  log: { level: string; destination: string; transfers: boolean };
  metrics: { listen: string };
  usage: { reconcileSeconds: number };
  admins: { keys: string[]; keysFile: string; shell: string[]; idleTimeoutMs: number };
  hooks: HooksConfig;
}

/** Event hooks (src/ops/event-hooks.ts): argv lists run without a shell; empty = none. */
export interface HooksConfig {
  verify: string[];
  published: string[];
  sessionEnd: string[];
  timeoutSeconds: number;
  webhook: { url: string; timeoutSeconds: number; retries: number };
}

const splitList = (v: unknown): unknown => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v);

function assertStringList(v: unknown): asserts v is string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error('must be a list of strings');
}

export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m) throw new Error(`"${text}" is not HOST:PORT`);
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`"${text}": port out of range`);
  if (host !== '' && m[1] !== undefined && isIP(host) !== 6) throw new Error(`"${text}": bad IPv6 address`);
  return { host: host || '0.0.0.0', port };
}

function algorithmList(kind: string, supported: string[]): convict.Format {
  return {
    name: `${kind}-list`,
    coerce: splitList,
    validate(v: unknown) {
      assertStringList(v);
      if (v.length === 0) throw new Error('must name at least one algorithm');
      const bad = v.filter((a) => !supported.includes(a));
      if (bad.length) throw new Error(`unsupported ${kind} algorithm(s): ${bad.join(', ')}`);
    },
  };
}

const TENANT_KEYS = new Set([
  'name', 'users', 'keys', 'keysFile', 'root', 'mode', 'noDelete', 'noOverwrite', 'appendOnly', 'munge', 'noLock', 'absolute',
  'allowOptions', 'denyOptions', 'limits', 'revisions',
]);
const LIMIT_NUMBERS = ['maxFileSize', 'quotaBytes', 'quotaFiles', 'maxSessions', 'uploadBytesPerSecond', 'memoryBytes'];
const LIMIT_BOOLS = ['allowDevices', 'allowChown'];

/**
 * A tenant name is also its default root's last component (`<root>/<name>`) and appears in logs:
 * one plain path component, no leading dot, no control characters (JSON.stringify shows them escaped).
 */
function tenantNameProblem(name: string): string | undefined {
  if (name.includes('/')) return `${JSON.stringify(name)} must not contain "/"`;
  if (name.startsWith('.')) return `${JSON.stringify(name)} must not start with "."`;
  if (/[\x00-\x1f\x7f]/.test(name)) return `${JSON.stringify(name)} must not contain control characters`;
  if (name.length > 255) return 'must be at most 255 characters';
  return undefined;
}

function escapesBase(rel: string): boolean {
  const r = relative('/base', resolve('/base', rel));
  return r === '..' || r.startsWith('../');
}

function chmodProblem(spec: string): string | undefined {
  try {
    parseChmod(spec);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** `revisions: {mode, keep?, graceSeconds?}`; -no-lock cannot go with it (one writer per root). */
function revisionsProblems(r: unknown, noLock: unknown, at: string): string[] {
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return [`${at}: must be an object`];
  const o = r as Record<string, unknown>;
  const out: string[] = [];
  for (const k of Object.keys(o)) if (!['mode', 'keep', 'graceSeconds'].includes(k)) out.push(`${at}.${k}: unknown setting`);
  if (o.mode !== 'snapshot' && o.mode !== 'publish') out.push(`${at}.mode: must be one of snapshot, publish`);
  for (const k of ['keep', 'graceSeconds']) {
    if (o[k] !== undefined && (!Number.isSafeInteger(o[k]) || (o[k] as number) < 0)) out.push(`${at}.${k}: must be a non-negative integer`);
  }
  if (noLock === true) out.push(`${at}: cannot be combined with noLock (one writer per revisions root)`);
  return out;
}

/** Validates one tenant; returns messages naming the field, e.g. `tenants[0].mode: …`. */
export function tenantProblems(t: unknown, at: string): string[] {
  if (typeof t !== 'object' || t === null || Array.isArray(t)) return [`${at}: must be an object`];
  const o = t as Record<string, unknown>;
  const out: string[] = [];
  for (const k of Object.keys(o)) if (!TENANT_KEYS.has(k)) out.push(`${at}.${k}: unknown setting`);
  if (typeof o.name !== 'string' || o.name === '') out.push(`${at}.name: required, a non-empty string`);
  else {
    const bad = tenantNameProblem(o.name);
    if (bad) out.push(`${at}.name: ${bad}`);
  }
  for (const k of ['users', 'keys', 'allowOptions', 'denyOptions']) {
    if (o[k] !== undefined && !(Array.isArray(o[k]) && (o[k] as unknown[]).every((s) => typeof s === 'string'))) {
      out.push(`${at}.${k}: must be a list of strings`);
    }
  }
  for (const k of ['keysFile', 'root']) {
    if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === '')) out.push(`${at}.${k}: must be a non-empty string`);
  }
  if (typeof o.root === 'string' && !isAbsolute(o.root) && escapesBase(o.root)) {
    out.push(`${at}.root: a relative root must stay below the default root (no ".." leading out)`);
  }
  if (o.mode !== undefined && !['rw', 'ro', 'wo'].includes(o.mode as string)) out.push(`${at}.mode: must be one of rw, ro, wo`);
  for (const k of ['noDelete', 'noOverwrite', 'appendOnly', 'munge', 'noLock', 'absolute']) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') out.push(`${at}.${k}: must be true or false`);
  }
  if (o.keys === undefined && o.keysFile === undefined) out.push(`${at}: needs keys or keysFile`);
  if (o.revisions !== undefined) out.push(...revisionsProblems(o.revisions, o.noLock, `${at}.revisions`));
  if (o.limits !== undefined) {
    if (typeof o.limits !== 'object' || o.limits === null || Array.isArray(o.limits)) {
      out.push(`${at}.limits: must be an object`);
    } else {
      const l = o.limits as Record<string, unknown>;
      for (const k of Object.keys(l)) {
        if (LIMIT_NUMBERS.includes(k)) {
          if (!Number.isSafeInteger(l[k]) || (l[k] as number) < 0) out.push(`${at}.limits.${k}: must be a non-negative integer`);
        } else if (LIMIT_BOOLS.includes(k)) {
          if (typeof l[k] !== 'boolean') out.push(`${at}.limits.${k}: must be true or false`);
        } else if (k === 'incomingChmod') {
          const bad = typeof l[k] === 'string' ? chmodProblem(l[k]) : 'must be a string';
          if (bad) out.push(`${at}.limits.${k}: ${bad}`);
        } else out.push(`${at}.limits.${k}: unknown setting`);
      }
    }
  }
  return out;
}

let formatsAdded = false;
function addFormats(): void {
  if (formatsAdded) return;
  formatsAdded = true;
  convict.addFormats({
    'listen-list': {
      coerce: splitList,
      validate(v: unknown) {
        assertStringList(v);
        if (v.length === 0) throw new Error('must name at least one HOST:PORT');
        for (const a of v) parseListenAddress(a);
      },
    },
    'path-list': {
      coerce: splitList,
      validate(v: unknown) {
        assertStringList(v);
        if (v.some((p) => p === '')) throw new Error('paths must not be empty');
      },
    },
    'string-list': {
      validate(v: unknown) {
        assertStringList(v);
      },
    },
    'optional-listen': {
      validate(v: unknown) {
        if (typeof v !== 'string') throw new Error('must be HOST:PORT or empty');
        if (v !== '') parseListenAddress(v);
      },
    },
    'tenant-list': {
      // Each tenant is checked by tenantProblems() in config/load.ts, which names the failing field.
      validate(v: unknown) {
        if (!Array.isArray(v)) throw new Error('must be a list of tenant objects');
      },
    },
    'kex-list': algorithmList('kex', ssh2Constants.SUPPORTED_KEX!),
    'hostkey-algo-list': algorithmList('host key', ssh2Constants.SUPPORTED_SERVER_HOST_KEY!),
    'cipher-list': algorithmList('cipher', ssh2Constants.SUPPORTED_CIPHER!),
    'hmac-list': algorithmList('hmac', ssh2Constants.SUPPORTED_MAC!),
    'compress-list': algorithmList('compression', ssh2Constants.SUPPORTED_COMPRESSION!),
    'pubkey-list': algorithmList('public key signature', SUPPORTED_PUBKEY_ALGORITHMS),
    'max-startups': {
      validate(v: unknown) {
        if (typeof v !== 'string') throw new Error('must be a string "start:rate:full" or "N"');
        parseMaxStartups(v);
      },
    },
    'hook-argv': {
      validate(v: unknown) {
        assertStringList(v);
        if (v.length > 0 && !isAbsolute(v[0]!)) throw new Error('must be empty or an argv whose program is an absolute path');
      },
    },
    'webhook-url': {
      validate(v: unknown) {
        if (typeof v !== 'string') throw new Error('must be an http:// or https:// URL, or empty');
        if (v !== '' && !/^https?:\/\/[^\s]+$/.test(v)) throw new Error(`"${v}" is not an http:// or https:// URL`);
        if (v !== '') new URL(v);
      },
    },
    'retries': {
      coerce: (v: unknown) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v),
      validate(v: unknown) {
        if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > 10) throw new Error('must be an integer from 0 to 10');
      },
    },
    'positive-int': {
      coerce: (v: unknown) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v),
      validate(v: unknown) {
        if (!Number.isSafeInteger(v) || (v as number) <= 0) throw new Error('must be a positive integer');
      },
    },
  });
}

export function buildSchema(defaultStateDir: string): convict.Schema<ConfigShape> {
  addFormats();
  return {
    stateDir: {
      doc: 'Directory for state: the generated host key and the demo root. Created 0700 when missing.',
      format: String,
      default: defaultStateDir,
      env: 'RRSYNCD_STATE_DIR',
    },
    listen: {
      doc: 'Addresses to listen on, HOST:PORT ([v6addr]:PORT for IPv6). Port 0 picks a free port.',
      format: 'listen-list',
      default: ['127.0.0.1:2222'],
      env: 'RRSYNCD_LISTEN',
    },
    hostKeys: {
      doc: 'Host private key files (OpenSSH or PEM). Empty: <stateDir>/ssh_host_ed25519_key, generated on first start.',
      format: 'path-list',
      default: [],
      env: 'RRSYNCD_HOST_KEYS',
    },
    root: {
      doc: 'Default root: keys without command="rrsync …" are confined here, relative rrsync DIRs and tenant roots resolve against it. Empty: <stateDir>/demo-root.',
      format: String,
      default: '',
      env: 'RRSYNCD_ROOT',
    },
    authorizedKeys: {
      doc: 'OpenSSH authorized_keys files. When neither these nor tenants are set, the invoking user\'s ~/.ssh/authorized_keys and ~/.ssh/id_*.pub are used (demo mode).',
      format: 'path-list',
      default: [],
      env: 'RRSYNCD_AUTHORIZED_KEYS',
    },
    tenants: {
      doc: 'Tenants: [{name, users?, keys?: [authorized_keys lines], keysFile?, root?, mode?: rw|ro|wo, noDelete?, noOverwrite?, appendOnly?, munge?, noLock?, absolute?, allowOptions?, denyOptions?, limits?: {maxFileSize, quotaBytes, quotaFiles, maxSessions, uploadBytesPerSecond, memoryBytes (per session: block sums, file lists, id lists; default 256 MiB), allowDevices, allowChown, incomingChmod}, revisions?: {mode: snapshot|publish, keep?, graceSeconds?}}].',
      format: 'tenant-list',
      default: [],
    },
    algorithms: {
      kex: { doc: 'Key exchange algorithms, in server preference order.', format: 'kex-list', default: DEFAULT_ALGORITHMS.kex, env: 'RRSYNCD_KEX' },
      serverHostKey: {
        doc: 'Host key signature algorithms offered (only those matching a loaded host key are used).',
        format: 'hostkey-algo-list',
        default: DEFAULT_ALGORITHMS.serverHostKey,
        env: 'RRSYNCD_HOST_KEY_ALGORITHMS',
      },
      cipher: { doc: 'Ciphers. The client\'s preference decides among these.', format: 'cipher-list', default: DEFAULT_ALGORITHMS.cipher, env: 'RRSYNCD_CIPHERS' },
      hmac: { doc: 'MACs (used with non-AEAD ciphers).', format: 'hmac-list', default: DEFAULT_ALGORITHMS.hmac, env: 'RRSYNCD_MACS' },
      compress: { doc: 'SSH-level compression; rsync compresses itself (-z), so none by default.', format: 'compress-list', default: DEFAULT_ALGORITHMS.compress, env: 'RRSYNCD_COMPRESSION' },
      pubkey: {
        doc: 'Signature algorithms accepted from client keys (like sshd PubkeyAcceptedAlgorithms); ssh-rsa (SHA-1) and ssh-dss only when listed.',
        format: 'pubkey-list',
        default: DEFAULT_ALGORITHMS.pubkey,
        env: 'RRSYNCD_PUBKEY_ALGORITHMS',
      },
    },
    limits: {
      handshakeTimeoutMs: {
        doc: 'Time from TCP connect until successful authentication, in ms.',
        format: 'positive-int',
        default: 30_000,
        env: 'RRSYNCD_HANDSHAKE_TIMEOUT_MS',
      },
      idleTimeoutMs: {
        doc: 'An authenticated connection with no running exec is closed after this many ms.',
        format: 'positive-int',
        default: 300_000,
        env: 'RRSYNCD_IDLE_TIMEOUT_MS',
      },
      maxConnections: { doc: 'Concurrent connections, all clients.', format: 'positive-int', default: 256, env: 'RRSYNCD_MAX_CONNECTIONS' },
      maxConnectionsPerKey: {
        doc: 'Concurrent authenticated connections per key.',
        format: 'positive-int',
        default: 16,
        env: 'RRSYNCD_MAX_CONNECTIONS_PER_KEY',
      },
      maxSessionsPerConnection: {
        doc: 'Session channels per connection (like sshd MaxSessions).',
        format: 'positive-int',
        default: 10,
        env: 'RRSYNCD_MAX_SESSIONS_PER_CONNECTION',
      },
      maxAuthTries: {
        doc: 'Failed authentication attempts (each refused key counts) before the connection is cut, like sshd MaxAuthTries.',
        format: 'positive-int',
        default: 6,
        env: 'RRSYNCD_MAX_AUTH_TRIES',
      },
      maxStartups: {
        doc: 'Unauthenticated connections, sshd MaxStartups style "start:rate:full": from start on, new ones are dropped with rate% probability, rising to 100% at full; "N" drops everything past N.',
        format: 'max-startups',
        default: '20:30:100',
        env: 'RRSYNCD_MAX_STARTUPS',
      },
      maxStartupsPerSource: {
        doc: 'Unauthenticated connections per source address (IPv6: per /64), like sshd PerSourceMaxStartups; more are dropped.',
        format: 'positive-int',
        default: 10,
        env: 'RRSYNCD_MAX_STARTUPS_PER_SOURCE',
      },
      shutdownGraceMs: {
        doc: 'On SIGTERM, running transfers get this long to finish before they are aborted.',
        format: 'positive-int',
        default: 30_000,
        env: 'RRSYNCD_SHUTDOWN_GRACE_MS',
      },
      keepaliveIntervalMs: {
        doc: 'SSH keepalive probe interval for authenticated connections.',
        format: 'positive-int',
        default: 15_000,
        env: 'RRSYNCD_KEEPALIVE_INTERVAL_MS',
      },
      keepaliveCountMax: {
        doc: 'Unanswered keepalives before a connection is dropped.',
        format: 'positive-int',
        default: 3,
        env: 'RRSYNCD_KEEPALIVE_COUNT_MAX',
      },
      serverMemoryBytes: {
        doc: 'Memory watermark (V8 heap + Buffers in use): above it new sessions are refused ("server busy", exit 5) instead of the process running out of memory. 0 = three quarters of the V8 heap limit.',
        format: 'nat',
        default: 0,
        env: 'RRSYNCD_SERVER_MEMORY_BYTES',
      },
    },
    log: {
      level: {
        doc: 'Log level.',
        format: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
        default: 'info',
        env: 'RRSYNCD_LOG_LEVEL',
      },
      destination: { doc: 'stdout, stderr or a file path.', format: String, default: 'stdout', env: 'RRSYNCD_LOG_DESTINATION' },
      transfers: {
        doc: "One info record per file sent, received or deleted (event transfer.file), as rsyncd's transfer logging.",
        format: Boolean,
        default: false,
        env: 'RRSYNCD_LOG_TRANSFERS',
      },
    },
    metrics: {
      listen: {
        doc: 'HOST:PORT for the HTTP metrics and health endpoints (/metrics, /healthz, /readyz). Empty: off.',
        format: 'optional-listen',
        default: '',
        env: 'RRSYNCD_METRICS_LISTEN',
      },
    },
    usage: {
      reconcileSeconds: {
        doc: 'Each root\'s usage ledger (<stateDir>/usage/) is checked against the disk by a background walk this often, in seconds; 0: only when the server first opens it.',
        format: 'nat',
        default: 3600,
        env: 'RRSYNCD_USAGE_RECONCILE_SECONDS',
      },
    },
    admins: {
      keys: {
        doc: 'authorized_keys lines of operator keys: they get the operator console on `ssh -t`, and can never rsync.',
        format: 'string-list',
        default: [],
      },
      keysFile: { doc: 'An authorized_keys file of operator keys. Empty: none.', format: String, default: '', env: 'RRSYNCD_ADMIN_KEYS_FILE' },
      shell: {
        doc: 'argv run on the console PTY instead of `rrsyncd console` (e.g. ["/bin/bash"]). Empty: the console.',
        format: 'string-list',
        default: [],
      },
      idleTimeoutMs: {
        doc: 'The console ends after this many ms without input.',
        format: 'positive-int',
        default: 900_000,
        env: 'RRSYNCD_ADMIN_IDLE_TIMEOUT_MS',
      },
    },
    hooks: {
      verify: {
        doc: 'argv (no shell; absolute program path) run on a staged revision before it is published, cwd = the revision; a non-zero exit vetoes it. Gets one JSON event on stdin and RRSYNCD_* variables.',
        format: 'hook-argv',
        default: [],
      },
      published: { doc: 'argv run after a revision was published (same event and variables).', format: 'hook-argv', default: [] },
      sessionEnd: { doc: 'argv run after every rsync session (same event and variables).', format: 'hook-argv', default: [] },
      timeoutSeconds: {
        doc: 'A hook still running after this many seconds gets SIGTERM, then SIGKILL 5 s later (a verify hook that times out vetoes).',
        format: 'positive-int',
        default: 30,
      },
      webhook: {
        url: { doc: 'http(s) URL that gets each published and session-end event as a JSON POST. Empty: none.', format: 'webhook-url', default: '' },
        timeoutSeconds: { doc: 'Timeout of one webhook attempt.', format: 'positive-int', default: 10 },
        retries: { doc: 'Attempts after a failed one (0-10), with doubling backoff from 1 s.', format: 'retries', default: 3 },
      },
    },
  };
}
