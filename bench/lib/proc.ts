/**
 * /proc readers for the benchmark: CPU times, RSS of a process tree, peak RSS (VmHWM) and its reset.
 * Linux only. Every reader tolerates a process that vanished between listing and reading.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat times. 100 on every Linux config we care about. */
const CLK_TCK = 100;
const PAGE = 4096;

export interface CpuTimes {
  /** utime + stime of the process itself, seconds. */
  self: number;
  /** cutime + cstime: CPU of waited-for children (and their waited-for descendants), seconds. */
  children: number;
}

function readStatFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  const close = text.lastIndexOf(')');
  // fields[0] is field 3 (state).
  return text.slice(close + 2).trim().split(/\s+/);
}

export function cpuTimes(pid: number): CpuTimes | undefined {
  const f = readStatFields(pid);
  if (!f) return undefined;
  const n = (i: number): number => Number(f[i - 3]);
  return { self: (n(14) + n(15)) / CLK_TCK, children: (n(16) + n(17)) / CLK_TCK };
}

/** The harness's own waited-for children CPU (the rsync clients it spawns, and their ssh). */
export function selfChildrenCpu(): number {
  return cpuTimes(process.pid)?.children ?? 0;
}

export function isAlive(pid: number): boolean {
  const f = readStatFields(pid);
  return f !== undefined && f[0] !== 'Z' && f[0] !== 'X';
}

/** Direct children of every thread of `pid`. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').trim();
      if (text) for (const c of text.split(/\s+/)) out.push(Number(c));
    } catch {
      /* thread exited */
    }
  }
  return out;
}

/** All descendants of `pid` (not including pid). */
function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  const stack = childrenOf(pid);
  while (stack.length) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...childrenOf(p));
  }
  return out;
}

/** Resident set size in bytes (statm), 0 when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
    return Number(f[1]) * PAGE;
  } catch {
    return 0;
  }
}

function statusKb(pid: number, key: string): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'latin1');
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Peak RSS of the process's lifetime (or since the last resetPeakRss), bytes. */
export function vmHwm(pid: number): number | undefined {
  return statusKb(pid, 'VmHWM');
}

/**
 * Resets VmHWM to the current RSS (`echo 5 > /proc/PID/clear_refs`, Linux ≥ 4.0; needs to own the
 * process or be root). Returns false when the kernel refused, in which case VmHWM stays lifetime.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Samples the RSS of a process tree every `intervalMs` until stopped; returns the peak sum.
 * `includeRoot`: count the root process itself (rrsyncd: yes; sshd listener: no, only its children).
 */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  peak = 0;
  samples = 0;

  constructor(
    private readonly rootPid: number,
    private readonly includeRoot: boolean,
    private readonly intervalMs = 50,
  ) {}

  sample(): void {
    let sum = this.includeRoot ? rssBytes(this.rootPid) : 0;
    for (const p of descendantsOf(this.rootPid)) sum += rssBytes(p);
    this.samples++;
    if (sum > this.peak) this.peak = sum;
  }

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  stop(): number {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    return this.peak;
  }
}
