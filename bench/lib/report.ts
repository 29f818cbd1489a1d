/** Turns run records into the Markdown results table (medians, paired ratios, targets). */
import type { Negotiated, SideName } from './servers.js';
import { MiB, median } from './util.js';

export interface RunRecord {
  round: number;
  workload: string;
  cipher: string;
  side: SideName;
  /** Position within the pair (0 = ran first). */
  order: number;
  ok: boolean;
  exit: string;
  timedOut: boolean;
  wallS: number;
  serverCpuS: number;
  clientCpuS: number;
  /** Peak RSS used in the table: max of the 50 ms samples and (rrsyncd) the per-run VmHWM. */
  peakRssB: number;
  sampledPeakRssB: number;
  hwmB?: number;
  samples: number;
  /** undefined: not verified this round. */
  verified?: boolean;
  error?: string;
  skipped?: boolean;
}

export interface WorkloadInfo {
  id: string;
  num: string;
  title: string;
  target?: number;
  targetNote?: string;
  /** A bound on rrsyncd's peak RSS (median over the runs) instead of a wall-time target. */
  rssLimitMiB?: number;
}

export interface ReportMeta {
  date: string;
  scale: number;
  rounds: number;
  ciphers: string[];
  machine: Record<string, string>;
  dataSets: string[];
  negotiated: Record<string, Negotiated | string>;
  notes: string[];
}

const f2 = (x: number | undefined): string => (x === undefined ? '–' : x.toFixed(2));
const fw = (x: number | undefined): string => (x === undefined ? '–' : x < 1 ? x.toFixed(3) : x.toFixed(2));
const fmib = (x: number | undefined): string => (x === undefined ? '–' : (x / MiB).toFixed(1));
const short = (c: string): string => c.replace('@openssh.com', '').replace('-poly1305', '');

export interface RowSummary {
  workload: WorkloadInfo;
  cipher: string;
  n: { openssh: number; rrsyncd: number; attempted: number };
  med: Record<SideName, { wall?: number; cpu?: number; rss?: number }>;
  ratio: { wall?: number; cpu?: number; rss?: number };
  result: string;
}

export function summarize(records: RunRecord[], workloads: WorkloadInfo[], ciphers: string[]): RowSummary[] {
  const rows: RowSummary[] = [];
  for (const w of workloads) {
    for (const cipher of ciphers) {
      const rs = records.filter((r) => r.workload === w.id && r.cipher === cipher);
      if (rs.length === 0) continue;
      const ok = (side: SideName): RunRecord[] => rs.filter((r) => r.side === side && r.ok);
      const med = (side: SideName) => ({
        wall: median(ok(side).map((r) => r.wallS)),
        cpu: median(ok(side).map((r) => r.serverCpuS)),
        rss: median(ok(side).map((r) => r.peakRssB)),
      });
      const pairs: Array<[RunRecord, RunRecord]> = [];
      for (const a of ok('openssh')) {
        const b = ok('rrsyncd').find((r) => r.round === a.round);
        if (b) pairs.push([a, b]);
      }
      const pr = (get: (r: RunRecord) => number): number | undefined =>
        median(pairs.filter(([a]) => get(a) > 0).map(([a, b]) => get(b) / get(a)));
      const ratio = { wall: pr((r) => r.wallS), cpu: pr((r) => r.serverCpuS), rss: pr((r) => r.peakRssB) };
      const attemptedR = rs.filter((r) => r.side === 'rrsyncd').length;
      const okR = ok('rrsyncd').length;
      const attemptedO = rs.filter((r) => r.side === 'openssh').length;
      let result: string;
      if (attemptedR === 0) result = 'not run';
      else if (okR < attemptedR) result = `**FAIL** (${okR}/${attemptedR} ok)`;
      else if (ok('openssh').length < attemptedO) result = `OpenSSH failed`;
      else if (w.rssLimitMiB !== undefined) result = (med('rrsyncd').rss ?? Infinity) <= w.rssLimitMiB * MiB ? 'PASS' : 'MISS';
      else if (w.target === undefined || ratio.wall === undefined) result = '—';
      else result = ratio.wall <= w.target ? 'PASS' : 'MISS';
      rows.push({
        workload: w,
        cipher,
        n: { openssh: ok('openssh').length, rrsyncd: okR, attempted: Math.max(attemptedO, attemptedR) },
        med: { openssh: med('openssh'), rrsyncd: med('rrsyncd') },
        ratio,
        result,
      });
    }
  }
  return rows;
}

export function renderMarkdown(meta: ReportMeta, rows: RowSummary[], records: RunRecord[]): string {
  const L: string[] = [];
  L.push(`# rrsyncd vs OpenSSH + rsync — ${meta.date}, scale ${meta.scale}`);
  L.push('');
  L.push(
    `Medians of ${meta.rounds} interleaved round(s) (A B, then B A, …). Ratios are rrsyncd ÷ OpenSSH: ` +
      `wall and server CPU as the median of per-round paired ratios, peak RSS likewise. ` +
      `Result compares the wall ratio with the target from issue 6 (lower is better); for workload 8 it ` +
      `compares rrsyncd's peak RSS with the bound.`,
  );
  L.push('');
  L.push(
    '| # | workload | cipher | n (O/R) | OpenSSH wall s | rrsyncd wall s | wall ratio | target | result |' +
      ' OpenSSH CPU s | rrsyncd CPU s | CPU ratio | OpenSSH peak RSS MiB | rrsyncd peak RSS MiB | RSS ratio |',
  );
  L.push('|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const w = r.workload;
    const t = w.target !== undefined ? `≤ ${w.target.toFixed(2)}` : w.rssLimitMiB !== undefined ? `RSS ≤ ${w.rssLimitMiB} MiB` : w.targetNote ?? '—';
    L.push(
      `| ${r.workload.num} | ${r.workload.title} | ${short(r.cipher)} | ${r.n.openssh}/${r.n.rrsyncd} ` +
        `| ${fw(r.med.openssh.wall)} | ${fw(r.med.rrsyncd.wall)} | ${f2(r.ratio.wall)} | ${t} | ${r.result} ` +
        `| ${f2(r.med.openssh.cpu)} | ${f2(r.med.rrsyncd.cpu)} | ${f2(r.ratio.cpu)} ` +
        `| ${fmib(r.med.openssh.rss)} | ${fmib(r.med.rrsyncd.rss)} | ${f2(r.ratio.rss)} |`,
    );
  }
  L.push('');

  const fails = records.filter((r) => !r.ok);
  if (fails.length) {
    L.push('## Failed runs');
    L.push('');
    // One line per distinct error, listing where it happened.
    const groups = new Map<string, RunRecord[]>();
    for (const r of fails) {
      const key = `${r.side}\u0000${(r.error ?? r.exit).replace(/\s+/g, ' ').slice(0, 300)}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    for (const [key, rs] of groups) {
      const [side, err] = key.split('\u0000');
      const where = [...new Set(rs.map((r) => `${r.workload}/${short(r.cipher)}`))].join(', ');
      L.push(`- ${side}, ${rs.length} run(s) (${where}): ${err}`);
    }
    L.push('');
  }

  L.push('## Setup');
  L.push('');
  for (const [k, v] of Object.entries(meta.machine)) L.push(`- ${k}: ${v}`);
  L.push(`- ciphers (client \`-c\`, same for both servers): ${meta.ciphers.join(', ')}`);
  L.push(`- negotiated (\`ssh -v\` probe per server and cipher):`);
  for (const [k, v] of Object.entries(meta.negotiated)) {
    L.push(`  - ${k}: ${typeof v === 'string' ? `unknown (${v})` : `kex ${v.kex}, host key ${v.hostKey}, cipher ${v.cipher}`}`);
  }
  L.push(`- data sets: ${meta.dataSets.join('; ')}`);
  for (const n of meta.notes) L.push(`- ${n}`);
  L.push('');
  L.push('## Method');
  L.push('');
  L.push(
    '- Client: the stock `/usr/bin/rsync` with `-e "ssh -F /dev/null -p PORT -c CIPHER -i KEY -o IdentitiesOnly=yes ' +
      '-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"`, same for both servers.',
  );
  L.push(
    '- OpenSSH: a private `sshd -D -e` (own config, host key and authorized_keys; 127.0.0.1; UsePAM no, StrictModes no) ' +
      'running the system `rsync --server`; paths are absolute in its root. rrsyncd: `serve --root`; paths are relative to that root.',
  );
  L.push(
    '- Destinations are reset (untimed) before every run as the workload needs, then `sync`. Wall time is the client ' +
      'command from spawn to exit. Verification (`cmp`-equivalent `rsync -anic` tree compare) on round 1; exit codes on every run.',
  );
  L.push(
    '- Server CPU: rrsyncd = utime+stime(+reaped children) delta of the node process; OpenSSH = the sshd listener\'s own plus ' +
      'children CPU delta (cutime+cstime, read after the per-connection sshd was reaped: includes the session sshd and the rsync server).',
  );
  L.push(
    '- Peak RSS: rrsyncd = VmHWM of the node process, reset before each run through /proc/PID/clear_refs (and the max of ' +
      'VmRSS sampled every 50 ms); OpenSSH = max over 50 ms samples of the RSS sum of all sshd listener descendants ' +
      '(session sshd processes, shells, rsync servers).',
  );
  L.push('');
  return L.join('\n');
}
