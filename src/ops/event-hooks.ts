/**
 * The operator's event hooks (config `hooks`, docs/revisions-operations.md): `verify` runs on a
 * staged revision before it is published and may veto it, `published` after a revision was
 * published, `sessionEnd` after every rsync session; `webhook` gets published and session-end
 * events as a JSON POST. A hook is an argv run without a shell; it gets the event as one JSON line
 * on stdin and as RRSYNCD_* variables, runs with a timeout (SIGTERM, then SIGKILL), and only the
 * first 4 KiB of its stdout and stderr are kept (for the log). Nothing here blocks a session:
 * `published` and `sessionEnd` return at once, and every failure is logged, never thrown.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { HooksConfig } from '../config/schema.js';
import type { RevisionEvent, RevisionHooks } from '../revisions/layout.js';
import { postWebhook } from './webhook.js';

/** Output kept per stream. */
const OUTPUT_HEAD_BYTES = 4096;
/** SIGTERM → SIGKILL. */
const KILL_GRACE_MS = 5000;
/** published/sessionEnd hook processes running at once, and waiting beyond that (then dropped). */
const MAX_RUNNING = 8;
const MAX_WAITING = 256;

export interface EventHooks extends RevisionHooks {
  published(event: RevisionEvent): void;
  sessionEnd(event: RevisionEvent): void;
  /** Resolves once every hook and webhook started so far has finished (tests, shutdown). */
  settled(): Promise<void>;
}

interface HookRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The program could not be started. */
  error?: string;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface EventHooksOptions {
  /** Webhook backoff start (tests). */
  webhookBackoffMs?: number;
  /** SIGTERM → SIGKILL (tests). */
  killGraceMs?: number;
}

export function createEventHooks(config: HooksConfig, log: Logger, opts: EventHooksOptions = {}): EventHooks {
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  const timeoutMs = config.timeoutSeconds * 1000;
  const killGraceMs = opts.killGraceMs ?? KILL_GRACE_MS;
  const run = (name: string, argv: string[], event: RevisionEvent, cwd?: string): Promise<HookRun> =>
    runHook(argv, event, { cwd, timeoutMs, killGraceMs }).then((r) => {
      const failed = r.code !== 0;
      log[failed ? 'warn' : 'info'](
        { event: 'hook', hook: name, for: event.event, tenant: event.tenant, revision: event.revision, ...r },
        failed ? `${name} hook failed` : `${name} hook done`,
      );
      return r;
    });
  // A busy server ends many sessions: their hooks run a few at a time, the rest wait (bounded).
  let running = 0;
  const waiting: (() => void)[] = [];
  const startQueued = (name: string, argv: string[], event: RevisionEvent): void => {
    const start = (): void => {
      running++;
      track(
        run(name, argv, event).finally(() => {
          running--;
          waiting.shift()?.();
        }),
      );
    };
    if (running < MAX_RUNNING) return start();
    if (waiting.length >= MAX_WAITING) {
      log.warn({ event: 'hook', hook: name, for: event.event, tenant: event.tenant, waiting: waiting.length }, `${name} hook dropped: too many waiting`);
      return;
    }
    waiting.push(start);
  };
  const notify = (name: 'published' | 'sessionEnd', argv: string[], event: RevisionEvent): void => {
    if (argv.length) startQueued(name, argv, event);
    if (config.webhook.url) {
      const url = config.webhook.url;
      track(
        postWebhook(event, { url, timeoutMs: config.webhook.timeoutSeconds * 1000, retries: config.webhook.retries, backoffMs: opts.webhookBackoffMs }).then((w) => {
          if (!w.ok) log.warn({ event: 'webhook', for: event.event, url, ...w }, 'webhook failed');
          else log.debug({ event: 'webhook', for: event.event, url, ...w }, 'webhook delivered');
        }),
      );
    }
  };

  const hooks: EventHooks = {
    published(event) {
      notify('published', config.published, event);
    },
    sessionEnd(event) {
      notify('sessionEnd', config.sessionEnd, { ...event, event: 'session.end' });
    },
    async settled() {
      while (pending.size || waiting.length) await Promise.allSettled([...pending]);
    },
  };
  if (config.verify.length) {
    hooks.verify = async (event, stagedPath) => {
      const p = run('verify', config.verify, event, stagedPath);
      track(p);
      const reason = vetoReason(await p);
      return reason;
    };
  }
  return hooks;
}

/** null when the hook said yes (exit 0), else one short line saying why not. */
function vetoReason(r: HookRun): string | null {
  if (r.error !== undefined) return `verify hook could not run (${r.error})`;
  if (r.timedOut) return 'verify hook timed out';
  if (r.code === 0) return null;
  const line = r.stderr.split('\n').map((l) => l.trim()).find((l) => l !== '');
  if (line) return line.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 200);
  return r.signal ? `verify hook killed by ${r.signal}` : `exit ${r.code}`;
}

/** The RRSYNCD_* variables of an event. */
function eventEnv(e: RevisionEvent): Record<string, string> {
  const env: Record<string, string> = { RRSYNCD_EVENT: e.event };
  const set = (k: string, v: string | number | undefined): void => {
    if (v !== undefined) env[k] = String(v);
  };
  set('RRSYNCD_TENANT', e.tenant);
  set('RRSYNCD_KEY_FINGERPRINT', e.keyFingerprint);
  set('RRSYNCD_MODE', e.mode);
  set('RRSYNCD_REVISION', e.revision);
  set('RRSYNCD_ROOT', e.root);
  set('RRSYNCD_REVISION_PATH', e.root !== undefined && e.revisionPath !== undefined ? join(e.root, e.revisionPath) : undefined);
  set('RRSYNCD_FILES', e.files);
  set('RRSYNCD_BYTES', e.bytes);
  set('RRSYNCD_EXIT_CODE', e.exitCode);
  set('RRSYNCD_START', e.start);
  set('RRSYNCD_END', e.end);
  return env;
}

function runHook(argv: string[], event: RevisionEvent, o: { cwd?: string; timeoutMs: number; killGraceMs: number }): Promise<HookRun> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: o.cwd,
      env: { ...process.env, ...eventEnv(event) },
      stdio: ['pipe', 'pipe', 'pipe'],
      shell: false,
      detached: true, // its own process group: a timeout ends whatever the hook started too
    });
    const signalGroup = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    const out = { stdout: new Head(), stderr: new Head() };
    child.stdout.on('data', (b: Buffer) => out.stdout.add(b));
    child.stderr.on('data', (b: Buffer) => out.stderr.add(b));
    child.stdin.on('error', () => undefined); // a hook that does not read its stdin
    child.stdin.end(`${JSON.stringify(event)}\n`);
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const termTimer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), o.killGraceMs);
    }, o.timeoutMs);
    let error: string | undefined;
    let finished = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (finished) return;
      finished = true;
      clearTimeout(termTimer);
      clearTimeout(killTimer);
      resolve({
        code: error !== undefined ? null : code,
        signal,
        timedOut,
        ...(error !== undefined ? { error } : {}),
        stdout: out.stdout.text(),
        stderr: out.stderr.text(),
        durationMs: Math.round(performance.now() - started),
      });
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
      if (child.pid === undefined) finish(null, null); // never started: no 'close' to wait for
    });
    child.on('close', finish);
  });
}

/** The first OUTPUT_HEAD_BYTES of a stream; the rest is read and dropped. */
class Head {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;

  add(b: Buffer): void {
    const room = OUTPUT_HEAD_BYTES - this.size;
    if (room > 0) {
      const part = b.subarray(0, room);
      this.chunks.push(part);
      this.size += part.length;
    }
    this.dropped += Math.max(0, b.length - Math.max(room, 0));
  }

  text(): string {
    const s = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped ? `${s}… (${this.dropped} more bytes)` : s;
  }
}
