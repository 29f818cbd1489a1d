/**
 * The usage ledgers of this process, one per root (keyed by the root directory's device and
 * inode, so two paths to one directory share it; a ledger whose inode turns up under another real
 * path is taken for a deleted root whose inode was reused, and dropped). A ledger is loaded from its state file or, for
 * a root never measured, by a background walk; it is reconciled by another walk when first opened
 * and every `reconcileSeconds`, and saved (debounced) while it changes and at shutdown.
 *
 * A receiving session of a root that has never been measured waits for the first walk before it
 * makes any change: the wait is asynchronous (other sessions keep running) and happens once per
 * root, since the result is kept in the state dir. No session start walks anything itself.
 */
import { realpathSync } from 'node:fs';
import type { Logger } from 'pino';
import { Sandbox } from '../sandbox/sandbox.js';
import { UsageLedger } from './ledger.js';
import { loadLedger, saveLedger, saveLedgerNow } from './state-file.js';
import { walkUsage } from './walk.js';

export interface UsageSettings {
  /** Where ledgers are kept; unset: in memory only (tests, the pipe harness). */
  stateDir?: string;
  /** Period of the reconcile walks in seconds; 0: only when a ledger is first opened. */
  reconcileSeconds: number;
  /** How long changes may wait before the state file is rewritten. */
  saveDelayMs?: number;
  log?: Logger;
}

interface Entry {
  ledger: UsageLedger;
  /** The root's real path when the ledger was opened. */
  real: string;
  /** Settles when the ledger has a measurement (loaded or walked). */
  ready: Promise<void>;
  walking?: Promise<void>;
  walkAbort?: AbortController;
  reconcileTimer?: NodeJS.Timeout;
  saveTimer?: NodeJS.Timeout;
  saving: Promise<void>;
}

/** Walks running at once (each yields to the event loop; this bounds the disk traffic). */
const MAX_WALKS = 2;
const DEFAULT_SAVE_DELAY_MS = 3000;

export class UsageLedgers {
  private settings: UsageSettings = { reconcileSeconds: 0 };
  private readonly byId = new Map<string, Entry>();
  private readonly byRoot = new Map<string, Entry>();
  private walks = 0;
  private readonly waiting: Array<() => void> = [];

  configure(settings: UsageSettings): void {
    this.settings = settings;
  }

  /** Kept in a state dir (a server): every receiving session is counted, with a quota or not. */
  get persistent(): boolean {
    return this.settings.stateDir !== undefined;
  }

  /** The measured ledger of the sandbox's root (waits for its first walk; `signal` stops waiting). */
  async open(sandbox: Sandbox, signal?: AbortSignal): Promise<UsageLedger> {
    const entry = this.ensure(idOf(sandbox), sandbox.rootPath);
    if (entry.ledger.measuredAt === null) await abortable(entry.ready, signal);
    return entry.ledger;
  }

  /** The ledger of a root, opened (from its state file, or a walk started) when it is not yet; null: no such root. */
  forRoot(root: string): UsageLedger | null {
    const known = this.byRoot.get(root);
    if (known) return known.ledger;
    let sandbox: Sandbox;
    try {
      sandbox = Sandbox.open(root);
    } catch {
      return null;
    }
    try {
      return this.ensure(idOf(sandbox), root).ledger;
    } finally {
      sandbox.close();
    }
  }

  /** The ledger of a root if it is open (never opens one: for metrics scrapes). */
  peek(root: string): UsageLedger | undefined {
    return this.byRoot.get(root)?.ledger;
  }

  list(): UsageLedger[] {
    return [...this.byId.values()].map((e) => e.ledger);
  }

  /** Walks the root now (or joins the walk under way) and applies what it finds. */
  reconcile(ledger: UsageLedger): Promise<void> {
    const entry = this.byId.get(ledger.id);
    if (!entry) return Promise.resolve();
    entry.walking ??= this.walk(entry).finally(() => (entry.walking = undefined));
    return entry.walking;
  }

  /** Stops walks and timers and writes every ledger's state file (shutdown). */
  close(): void {
    for (const e of this.byId.values()) {
      clearInterval(e.reconcileTimer);
      clearTimeout(e.saveTimer);
      e.walkAbort?.abort();
      if (this.settings.stateDir !== undefined) {
        try {
          saveLedgerNow(this.settings.stateDir, e.ledger, e.real);
        } catch (err) {
          this.settings.log?.error({ root: e.ledger.root, err: (err as Error).message }, 'usage ledger not saved');
        }
      }
    }
    this.byId.clear();
    this.byRoot.clear();
  }

  private ensure(id: string, root: string): Entry {
    const real = realPath(root);
    const known = this.byId.get(id);
    if (known && known.real === real) {
      this.byRoot.set(root, known);
      return known;
    }
    if (known) this.forget(known);
    const ledger = new UsageLedger(id, root);
    const entry: Entry = { ledger, real, ready: Promise.resolve(), saving: Promise.resolve() };
    ledger.onChange = () => this.scheduleSave(entry);
    this.byId.set(id, entry);
    this.byRoot.set(root, entry);
    const { stateDir, reconcileSeconds } = this.settings;
    const loaded = stateDir !== undefined && loadLedger(stateDir, ledger, real);
    // Loaded: usable now, reconciled in the background. Never measured: sessions wait for this walk.
    const first = this.reconcile(ledger);
    entry.ready = loaded ? Promise.resolve() : first;
    entry.ready.catch(() => {
      if (ledger.measuredAt === null) this.forget(entry); // the next session tries again
    });
    if (stateDir !== undefined && reconcileSeconds > 0) {
      entry.reconcileTimer = setInterval(() => void this.reconcile(ledger).catch(() => undefined), reconcileSeconds * 1000);
      entry.reconcileTimer.unref();
    }
    return entry;
  }

  private forget(entry: Entry): void {
    clearInterval(entry.reconcileTimer);
    entry.walkAbort?.abort();
    this.byId.delete(entry.ledger.id);
    for (const [root, e] of this.byRoot) if (e === entry) this.byRoot.delete(root);
  }

  /**
   * One walk. A reconcile keeps what sessions charged meanwhile only when none ran: a walk that
   * saw some of a session's changes (or its temp files) would count them twice, so it is dropped
   * and the next period tries again.
   */
  private async walk(entry: Entry): Promise<void> {
    const { ledger } = entry;
    const log = this.settings.log;
    const release = await this.slot();
    const first = ledger.measuredAt === null;
    const before = { bytes: ledger.bytes, entries: ledger.entries };
    const version = ledger.version;
    const started = Date.now();
    const ac = (entry.walkAbort = new AbortController());
    let sandbox: Sandbox | undefined;
    try {
      if (!first && ledger.sessions > 0) return;
      ledger.measuring = true;
      sandbox = Sandbox.open(ledger.root);
      if (idOf(sandbox) !== ledger.id) throw new Error('the root was replaced');
      const walked = await walkUsage(sandbox, ac.signal);
      if (!first && (ledger.version !== version || ledger.sessions > 0)) {
        log?.info({ event: 'usage', root: ledger.root }, 'usage reconcile dropped: the root changed meanwhile');
        return;
      }
      ledger.measured(walked, first ? null : before, Date.now());
      log?.info({ event: 'usage', root: ledger.root, bytes: ledger.bytes, entries: ledger.entries, drift: ledger.drift, ms: Date.now() - started }, first ? 'usage measured' : 'usage reconciled');
    } catch (err) {
      if (!ac.signal.aborted) log?.warn({ event: 'usage', root: ledger.root, err: (err as Error).message }, 'usage walk failed');
      if (first) throw err;
    } finally {
      ledger.measuring = false;
      sandbox?.close();
      release();
    }
  }

  private scheduleSave(entry: Entry): void {
    const stateDir = this.settings.stateDir;
    if (stateDir === undefined || entry.saveTimer) return;
    entry.saveTimer = setTimeout(() => {
      entry.saveTimer = undefined;
      entry.saving = entry.saving
        .then(() => saveLedger(stateDir, entry.ledger, entry.real))
        .catch((err: Error) => this.settings.log?.error({ root: entry.ledger.root, err: err.message }, 'usage ledger not saved'));
    }, this.settings.saveDelayMs ?? DEFAULT_SAVE_DELAY_MS);
    entry.saveTimer.unref();
  }

  private async slot(): Promise<() => void> {
    if (this.walks < MAX_WALKS) this.walks++;
    else await new Promise<void>((r) => this.waiting.push(r)); // handed over by a finishing walk
    return () => {
      const next = this.waiting.shift();
      if (next) next();
      else this.walks--;
    };
  }
}

function realPath(root: string): string {
  try {
    return realpathSync(root);
  } catch {
    return root;
  }
}

/** The ledger id of a root: its device and inode. */
function idOf(sandbox: Sandbox): string {
  const st = sandbox.lstat('')!;
  return `${st.dev}-${st.ino}`;
}

function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** The process's ledgers: sessions, the control socket and the metrics all read these. */
export const usageLedgers = new UsageLedgers();
