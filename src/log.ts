/**
 * pino logging: JSON lines, one record per connection and one per exec (see ssh/server.ts).
 * The destination is stdout by default so process supervisors (journald, docker) collect it.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LogOptions {
  level?: string;
  /** 'stdout', 'stderr' or a file path (appended). */
  destination?: string;
}


export function createLogger(opts: LogOptions = {}): Logger {
  return createLogSink(opts).logger;
}

type Destination = ReturnType<typeof pino.destination>;

function openDestination(dest: string): Destination {
  const fd = dest === 'stdout' ? 1 : dest === 'stderr' ? 2 : undefined;
  return pino.destination(fd !== undefined ? { fd, sync: true } : { dest, sync: true, mkdir: true, append: true });
}

/**
 * The logger and the stream under it: SIGHUP applies a new level or destination and reopens a log
 * file (logrotate without copytruncate); followers (the console's `log`) get every line too.
 */
export class LogSink {
  readonly logger: Logger;
  private dest: Destination;
  private destName: string;
  private readonly followers = new Set<(line: string) => void>();

  constructor(opts: LogOptions) {
    this.destName = opts.destination ?? 'stdout';
    this.dest = openDestination(this.destName);
    const stream = { write: (line: string) => this.write(line) };
    this.logger = pino(
      {
        level: opts.level ?? 'info',
        base: { pid: process.pid },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
      },
      stream,
    );
  }

  private write(line: string): void {
    this.dest.write(line);
    for (const f of this.followers) f(line);
  }

  /** New level and destination; the same file destination is reopened. */
  apply(opts: LogOptions): void {
    this.logger.level = opts.level ?? 'info';
    const next = opts.destination ?? 'stdout';
    if (next !== this.destName) {
      const old = this.dest;
      const oldIsFile = this.destName !== 'stdout' && this.destName !== 'stderr';
      this.dest = openDestination(next);
      this.destName = next;
      if (oldIsFile) old.end();
    } else if (next !== 'stdout' && next !== 'stderr') {
      this.dest.reopen();
    }
  }

  /** Calls `f` with each line written from now on; returns the unsubscribe function. */
  follow(f: (line: string) => void): () => void {
    this.followers.add(f);
    return () => this.followers.delete(f);
  }
}

export function createLogSink(opts: LogOptions = {}): LogSink {
  return new LogSink(opts);
}
