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

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function createLogger(opts: LogOptions = {}): Logger {
  const dest = opts.destination ?? 'stdout';
  const fd = dest === 'stdout' ? 1 : dest === 'stderr' ? 2 : undefined;
  const stream = pino.destination(fd !== undefined ? { fd, sync: true } : { dest, sync: true, mkdir: true, append: true });
  return pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}
