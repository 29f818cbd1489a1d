/**
 * rrsyncd benchmark harness (issue 6): the same stock rsync client against a private OpenSSH sshd
 * (+ system rsync) and against rrsyncd, interleaved, with wall time, server CPU and server peak RSS.
 *
 *   npm run bench -- [--scale 0.01] [--rounds 3] [--only new,delta,...] [--cipher aes128-gcm@openssh.com|chacha20-poly1305@openssh.com|both]
 *                    [--sides openssh,rrsyncd] [--timeout SEC] [--profile] [--dev] [--verify-all] [--concurrency 16]
 *
 * See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureData, makeEmptyTree, manyFilesFor, type DataSet } from './lib/data.js';
import { loopUnavailable, mountScratch, plainScratch, type ScratchFs } from './lib/scratchfs.js';
import { holdFreedMemory } from './lib/vmmem.js';
import { RssSampler, selfChildrenCpu } from './lib/proc.js';
import { renderMarkdown, summarize, type ReportMeta, type RunRecord, type WorkloadInfo } from './lib/report.js';
import {
  OpenSshServer,
  RrsyncdServer,
  ensureBinary,
  ensureKeys,
  probeNegotiation,
  type Keys,
  type Negotiated,
  type Server,
  type SideName,
} from './lib/servers.js';
import { GiB, MiB, freshDir, log, mkdirp, rmrf, run, runClient, setWorkRoot, syncDisks, type ClientResult } from './lib/util.js';

const BENCH = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(BENCH, '..');
const WORK = join(BENCH, 'work');
const RESULTS = join(BENCH, 'results');
const RSYNC = '/usr/bin/rsync';
const CIPHERS = { aes: 'aes128-gcm@openssh.com', chacha: 'chacha20-poly1305@openssh.com' };

// ---------------------------------------------------------------------------------------------
// Options

const HELP = `usage: npm run bench -- [options]
  --scale X          multiply every size and count (1 = 1 GiB file, 20 000 files, 200 MiB text); e.g. 0.01
  --rounds N         interleaved rounds per workload and cipher (default 3)
  --only LIST        workloads: new,delta,small,noop,pull,zstd,zlib,conc,mpush,mpull (or numbers 1-8;
                     6 = zstd+zlib, 8 = mpush+mpull)
  --cipher C         aes128-gcm@openssh.com | chacha20-poly1305@openssh.com | both (default both)
  --sides LIST       openssh,rrsyncd (default both)
  --concurrency N    parallel pushes in workload 7 (default 16)
  --timeout SEC      per-run client timeout (default 30 + 300 × scale)
  --profile          start rrsyncd with --cpu-prof --cpu-prof-dir bench/work/prof
  --fs auto|loop|dir destination filesystem: loop = a fresh journaled ext4 on a loop device (root only),
                     dir = bench/work itself; auto (default) = loop when possible
  --dev              run rrsyncd from src/ through tsx even when dist/ exists
  --repo DIR         benchmark the rrsyncd of another checkout (built), e.g. an older commit
  --label NAME       appended to the result file names (e.g. before, after)
  --vm-memory M      hold (default): on VMs that report freed memory to the host at once, defer
                     that for the run (bench/README.md); leave: change nothing
  --verify-all       verify the result of every round (default: round 1 only)
  -h, --help`;

const { values: opt } = parseArgs({
  options: {
    scale: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
    cipher: { type: 'string', default: 'both' },
    sides: { type: 'string', default: 'openssh,rrsyncd' },
    concurrency: { type: 'string', default: '16' },
    timeout: { type: 'string' },
    profile: { type: 'boolean', default: false },
    fs: { type: 'string', default: 'auto' },
    repo: { type: 'string' },
    label: { type: 'string' },
    'vm-memory': { type: 'string', default: 'hold' },
    dev: { type: 'boolean', default: false },
    'verify-all': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) {
  console.log(HELP);
  process.exit(0);
}
/** The checkout whose rrsyncd is measured (--repo; default this one). */
const RR_REPO = resolve(opt.repo ?? REPO);
const scale = Number(opt.scale);
const rounds = Number.parseInt(opt.rounds!, 10);
const concurrency = Number.parseInt(opt.concurrency!, 10);
if (!(scale > 0 && scale <= 1) || !(rounds >= 1) || !(concurrency >= 1) || !['auto', 'loop', 'dir'].includes(opt.fs!) || !['hold', 'leave'].includes(opt['vm-memory']!)) {
  console.error(`bad --scale/--rounds/--concurrency/--fs/--vm-memory\n${HELP}`);
  process.exit(2);
}
const timeoutMs = (opt.timeout ? Number(opt.timeout) : 30 + 300 * scale) * 1000;
const ciphers =
  opt.cipher === 'both'
    ? [CIPHERS.aes, CIPHERS.chacha]
    : opt.cipher!.split(',').map((c) => (c in CIPHERS ? CIPHERS[c as keyof typeof CIPHERS] : c));
const sides = opt.sides!.split(',') as SideName[];
if (sides.some((s) => s !== 'openssh' && s !== 'rrsyncd')) {
  console.error(`bad --sides\n${HELP}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Workloads

interface Ctx {
  ds: DataSet;
  /** Local (client-side) scratch directory for this side. */
  local: string;
  server: Server;
  scratch: ScratchFs;
}

interface Workload extends WorkloadInfo {
  /** Untimed preparation of the destination before each run (followed by sync). */
  prepare(c: Ctx): void;
  /** rsync argument lists (without -e); more than one runs concurrently. */
  clients(c: Ctx): string[][];
  /** Returns a problem description, or undefined when the result is right. */
  verify(c: Ctx): string | undefined;
  /** Untimed clean-up after the run (frees disk). */
  cleanup?(c: Ctx): void;
}

const droot = (c: Ctx, rel: string): string => join(c.server.root, rel);

const manyFiles = manyFilesFor(scale);
const manyLabel = manyFiles.toLocaleString('en-US').replace(/,/g, ' ');

/** Workload 8's tree: made once per bench run on the destination filesystem, then copied as needed. */
function manyTree(c: Ctx): string {
  const src = join(c.scratch.dir, 'many-src');
  makeEmptyTree(src, manyFiles);
  return src;
}

/** A copy of the many-files tree at dst (cp -a, once; a marker beside it says it is complete). */
function copyManyTree(c: Ctx, dst: string): void {
  const marker = `${dst}.complete`;
  if (existsSync(marker)) return;
  rmrf(dst);
  const t0 = Date.now();
  run('cp', ['-a', manyTree(c), dst]);
  writeFileSync(marker, '');
  log(`copied the ${manyLabel}-file tree to ${dst} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** Tree / file compare: `rsync -anic` lists every difference in content or metadata. */
function compare(src: string, dst: string, del = true): string | undefined {
  const r = spawnSync(RSYNC, ['-anic', ...(del ? ['--delete'] : []), src, dst], { encoding: 'utf8' });
  if (r.status !== 0) return `compare failed (rsync exit ${r.status}): ${r.stderr.trim().slice(0, 200)}`;
  const lines = r.stdout.split('\n').filter((l) => l.trim());
  if (lines.length) return `result differs from source (${lines.length} items, e.g. ${lines.slice(0, 3).join('; ')})`;
  return undefined;
}

/** Copies src file to dst keeping mode and times (untimed set-up). */
function copyPreserving(src: string, dst: string): void {
  copyFileSync(src, dst);
  const st = statSync(src);
  utimesSync(dst, st.atime, st.mtime);
}

const WORKLOADS: Workload[] = [
  {
    id: 'new',
    num: '1',
    title: 'push 1 GiB new',
    target: 0.85,
    prepare: (c) => freshDir(droot(c, 'new')),
    clients: (c) => [['-a', join(c.ds.orig, 'big.bin'), c.server.remote('new/')]],
    verify: (c) => compare(join(c.ds.orig, 'big.bin'), droot(c, 'new/'), false),
    cleanup: (c) => rmrf(droot(c, 'new')),
  },
  {
    id: 'delta',
    num: '2',
    title: 'push 1 GiB delta (1 % changed)',
    target: 0.95,
    prepare: (c) => {
      freshDir(droot(c, 'delta'));
      copyPreserving(join(c.ds.orig, 'big.bin'), join(droot(c, 'delta'), 'big.bin'));
    },
    clients: (c) => [['-a', join(c.ds.mod, 'big.bin'), c.server.remote('delta/')]],
    verify: (c) => compare(join(c.ds.mod, 'big.bin'), droot(c, 'delta/'), false),
  },
  {
    id: 'small',
    num: '3',
    title: 'push 20 000 small files new',
    target: 0.85,
    prepare: (c) => freshDir(droot(c, 'small')),
    clients: (c) => [['-a', c.ds.small + '/', c.server.remote('small/')]],
    verify: (c) => compare(c.ds.small + '/', droot(c, 'small/')),
    cleanup: (c) => rmrf(droot(c, 'small')),
  },
  {
    id: 'noop',
    num: '4',
    title: 'push 20 000 files, no change',
    target: 0.6,
    prepare: (c) => {
      mkdirp(droot(c, 'noop'));
      run(RSYNC, ['-a', '--delete', c.ds.small + '/', droot(c, 'noop/')]);
    },
    clients: (c) => [['-a', c.ds.small + '/', c.server.remote('noop/')]],
    verify: (c) => compare(c.ds.small + '/', droot(c, 'noop/')),
  },
  {
    id: 'pull',
    num: '5',
    title: 'pull 1 GiB',
    target: 1.0,
    prepare: (c) => {
      mkdirp(droot(c, 'pull'));
      // The server-side source: a copy per side (never a hard link, so a bad run can't hurt the data set).
      run(RSYNC, ['-a', join(c.ds.orig, 'big.bin'), droot(c, 'pull/')]);
      freshDir(join(c.local, 'pull'));
    },
    clients: (c) => [['-a', c.server.remote('pull/big.bin'), join(c.local, 'pull') + '/']],
    verify: (c) => compare(join(c.ds.orig, 'big.bin'), join(c.local, 'pull') + '/', false),
    cleanup: (c) => rmrf(join(c.local, 'pull')),
  },
  {
    id: 'zstd',
    num: '6a',
    title: '`-z` push of text (zstd)',
    target: 1.0,
    prepare: (c) => freshDir(droot(c, 'z')),
    clients: (c) => [['-az', c.ds.text + '/', c.server.remote('z/')]],
    verify: (c) => compare(c.ds.text + '/', droot(c, 'z/')),
    cleanup: (c) => rmrf(droot(c, 'z')),
  },
  {
    id: 'zlib',
    num: '6b',
    title: '`-z --compress-choice=zlib` push of text',
    target: 1.0,
    prepare: (c) => freshDir(droot(c, 'z')),
    clients: (c) => [['-az', '--compress-choice=zlib', c.ds.text + '/', c.server.remote('z/')]],
    verify: (c) => compare(c.ds.text + '/', droot(c, 'z/')),
    cleanup: (c) => rmrf(droot(c, 'z')),
  },
  {
    id: 'mpush',
    num: '8a',
    title: `no-change push of ${manyLabel} files`,
    rssLimitMiB: 150,
    prepare: (c) => copyManyTree(c, droot(c, 'many')),
    clients: (c) => [['-a', manyTree(c) + '/', c.server.remote('many/')]],
    verify: (c) => compare(manyTree(c) + '/', droot(c, 'many/')),
  },
  {
    id: 'mpull',
    num: '8b',
    title: `no-change pull of ${manyLabel} files`,
    rssLimitMiB: 150,
    prepare: (c) => {
      copyManyTree(c, droot(c, 'many'));
      copyManyTree(c, join(c.local, 'many'));
    },
    clients: (c) => [['-a', c.server.remote('many/'), join(c.local, 'many') + '/']],
    verify: (c) => compare(droot(c, 'many/'), join(c.local, 'many') + '/'),
  },
  {
    id: 'conc',
    num: '7',
    title: `${concurrency} concurrent pushes of the text`,
    targetNote: 'RSS flat',
    prepare: (c) => {
      freshDir(droot(c, 'conc'));
      for (let i = 0; i < concurrency; i++) mkdirp(join(droot(c, 'conc'), `c${String(i).padStart(2, '0')}`));
    },
    clients: (c) =>
      Array.from({ length: concurrency }, (_, i) => [
        '-a',
        c.ds.text + '/',
        c.server.remote(`conc/c${String(i).padStart(2, '0')}/`),
      ]),
    verify: (c) => {
      for (let i = 0; i < concurrency; i++) {
        const e = compare(c.ds.text + '/', join(droot(c, 'conc'), `c${String(i).padStart(2, '0')}`) + '/');
        if (e) return `c${i}: ${e}`;
      }
      return undefined;
    },
    cleanup: (c) => rmrf(droot(c, 'conc')),
  },
];

function selectWorkloads(only: string | undefined): Workload[] {
  if (!only) return WORKLOADS;
  const want = new Set<string>();
  for (const t of only.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (t === '6' || t === '8') {
      for (const id of t === '6' ? ['zstd', 'zlib'] : ['mpush', 'mpull']) want.add(id);
      continue;
    }
    const w = WORKLOADS.find((x) => x.id === t || x.num === t);
    if (!w) {
      console.error(`unknown workload '${t}'; known: ${WORKLOADS.map((x) => x.id).join(',')}`);
      process.exit(2);
    }
    want.add(w.id);
  }
  return WORKLOADS.filter((w) => want.has(w.id));
}

// ---------------------------------------------------------------------------------------------
// One measured run

function sshArgs(port: number, cipher: string, keys: Keys): string[] {
  return [
    '-F', '/dev/null',
    '-p', String(port),
    '-c', cipher,
    '-i', keys.client,
    '-o', 'IdentitiesOnly=yes',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
  ];
}

function clientEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.SSH_AUTH_SOCK;
  delete env.RSYNC_RSH;
  delete env.RSYNC_PROTECT_ARGS;
  delete env.RSYNC_OLD_ARGS;
  return env;
}

function describeExit(r: ClientResult): string {
  if (r.timedOut) return `timeout after ${(timeoutMs / 1000).toFixed(1)} s (client killed)`;
  return r.signal ? `signal ${r.signal}` : `exit ${r.code}`;
}

async function measure(
  w: Workload,
  c: Ctx,
  cipher: string,
  keys: Keys,
  round: number,
  order: number,
  verify: boolean,
): Promise<RunRecord> {
  const rec: RunRecord = {
    round,
    workload: w.id,
    cipher,
    side: c.server.name,
    order,
    ok: false,
    exit: '',
    timedOut: false,
    wallS: 0,
    serverCpuS: 0,
    clientCpuS: 0,
    peakRssB: 0,
    sampledPeakRssB: 0,
    samples: 0,
  };
  if (!(await c.server.ensureUp())) {
    rec.exit = 'server down';
    rec.error = c.server.downReason;
    rec.skipped = true;
    return rec;
  }
  w.prepare(c);
  c.scratch.trim();
  syncDisks();

  const rsh = ['ssh', ...sshArgs(c.server.port, cipher, keys), '-o', 'LogLevel=ERROR'].join(' ');
  const root = c.server.rssRoot();
  c.server.beforeRun();
  const cpu0 = c.server.cpu();
  const ccpu0 = selfChildrenCpu();
  const sampler = new RssSampler(root.pid, root.includeRoot).start();
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(
    w.clients(c).map((args) => runClient(RSYNC, ['-e', rsh, ...args], timeoutMs, clientEnv())),
  );
  rec.wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  sampler.stop();
  await c.server.settle();
  const died = !c.server.alive();
  rec.serverCpuS = died ? 0 : c.server.cpu() - cpu0;
  rec.clientCpuS = selfChildrenCpu() - ccpu0;
  rec.sampledPeakRssB = sampler.peak;
  rec.samples = sampler.samples;
  rec.hwmB = c.server.peakRss();
  rec.peakRssB = Math.max(rec.sampledPeakRssB, rec.hwmB ?? 0);

  const bad = results.find((r) => r.timedOut || r.code !== 0);
  rec.timedOut = results.some((r) => r.timedOut);
  rec.exit = bad ? describeExit(bad) : 'exit 0';
  if (died) {
    rec.error = `${c.server.name} process died during the run (${rec.exit})`;
  } else if (bad) {
    const firstErr = bad.stderr.trim().split('\n').filter(Boolean).slice(0, 3).join(' | ');
    rec.error = `${rec.exit}${firstErr ? ': ' + firstErr : ''}`;
  } else if (verify) {
    const problem = w.verify(c);
    rec.verified = problem === undefined;
    if (problem) rec.error = `wrong result: ${problem}`;
  }
  rec.ok = !died && !bad && rec.verified !== false;
  try {
    w.cleanup?.(c);
  } catch (e) {
    log(`cleanup failed: ${String(e)}`);
  }
  return rec;
}

// ---------------------------------------------------------------------------------------------
// Machine description

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '?';
}

const LOAD_AT_START = loadavg();

function machineInfo(rrsyncdMode: string): Record<string, string> {
  const git = (args: string[]): string => spawnSync('git', args, { cwd: RR_REPO, encoding: 'utf8' }).stdout?.trim() ?? '';
  const dirty = git(['status', '--porcelain', '--', 'src']).length > 0;
  return {
    machine: `${cpus().length} CPUs (nproc ${firstLine('nproc', [])}), ${cpus()[0]?.model ?? '?'}, ${(totalmem() / GiB).toFixed(0)} GiB RAM, Linux ${firstLine('uname', ['-r'])}`,
    node: process.version,
    'rsync (client and OpenSSH-side server)': firstLine(RSYNC, ['--version']),
    openssh: firstLine('ssh', ['-V']),
    rrsyncd: `${rrsyncdMode}; commit ${git(['rev-parse', '--short', 'HEAD']) || '?'}${dirty ? ' + uncommitted changes in src/' : ''}${RR_REPO === REPO ? '' : ` (checkout ${RR_REPO})`}`,
    'load average at start (machine is shared)': LOAD_AT_START.map((x) => x.toFixed(2)).join(' '),
  };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  setWorkRoot(WORK);
  for (const d of ['logs', 'prof']) mkdirSync(join(WORK, d), { recursive: true });
  mkdirSync(RESULTS, { recursive: true });
  ensureBinary(RSYNC, 'rsync');
  ensureBinary('/usr/bin/ssh', 'openssh-client');
  const workloads = selectWorkloads(opt.only);

  const ds = ensureData(WORK, scale);
  const keys = ensureKeys(WORK);

  // Warm the page cache for the sources (the baseline method measures with a hot cache).
  spawnSync('sh', ['-c', `cat ${ds.orig}/big.bin ${ds.mod}/big.bin > /dev/null; tar cf - -C ${ds.dir} small text > /dev/null`]);

  const noLoop = opt.fs === 'dir' ? 'asked for --fs dir' : loopUnavailable();
  if (noLoop && opt.fs === 'loop') throw new Error(`--fs loop: ${noLoop}`);
  if (noLoop && opt.fs === 'auto') log(`destinations stay on bench/work's own filesystem (${noLoop})`);
  // Inodes: the small-file runs, and for workload 8 its tree, both servers' copies and the pull target.
  const inodes = 2_000_000 + (workloads.some((w) => w.id === 'mpush' || w.id === 'mpull') ? Math.ceil(4.2 * manyFiles) : 0);
  const scratch = noLoop ? plainScratch(WORK) : mountScratch(WORK, inodes);
  log(`destination filesystem: ${scratch.description}`);
  const memoryHold = opt['vm-memory'] === 'hold' ? holdFreedMemory() : null;
  if (memoryHold) log(memoryHold.description);
  for (const d of ['roots', 'local']) mkdirSync(join(scratch.dir, d), { recursive: true });

  const servers: Partial<Record<SideName, Server>> = {};
  let rr: RrsyncdServer | undefined;
  const stopAll = async (): Promise<void> => {
    await Promise.all(Object.values(servers).map((s) => s.stop()));
    scratch.teardown();
    memoryHold?.restore();
  };
  process.on('SIGINT', () => {
    log('interrupted: stopping servers');
    void stopAll().then(() => process.exit(130));
  });

  try {
    if (sides.includes('openssh')) {
      const root = join(scratch.dir, 'roots', 'openssh');
      freshDir(root);
      const o = new OpenSshServer(root, keys, WORK);
      await o.start();
      servers.openssh = o;
    }
    if (sides.includes('rrsyncd')) {
      const root = join(scratch.dir, 'roots', 'rrsyncd');
      freshDir(root);
      rr = new RrsyncdServer({ repo: RR_REPO, root, keys, workDir: WORK, profile: opt.profile!, dev: opt.dev! });
      if (!(await rr.start())) log(`rrsyncd unavailable: ${rr.downReason} (its runs will be reported as FAIL)`);
      servers.rrsyncd = rr;
    }

    const negotiated: Record<string, Negotiated | string> = {};
    for (const s of Object.values(servers)) {
      for (const cipher of ciphers) {
        negotiated[`${s.name} -c ${cipher}`] = (await s.ensureUp())
          ? probeNegotiation(sshArgs(s.port, cipher, keys), s.remote('').replace(/:.*$/, ''))
          : `server down: ${s.downReason}`;
      }
    }

    // One untimed warm-up push per server: loads rrsyncd's lazily imported modules (and, in --dev, lets tsx
    // compile them) and warms sshd's and rsync's pages, so round 1 is not penalised.
    for (const s of Object.values(servers)) {
      if (!(await s.ensureUp())) continue;
      const rsh = ['ssh', ...sshArgs(s.port, ciphers[0]!, keys), '-o', 'LogLevel=ERROR'].join(' ');
      freshDir(join(s.root, 'warmup'));
      const r = await runClient(RSYNC, ['-e', rsh, '-a', ds.small + '/', s.remote('warmup/')], timeoutMs, clientEnv());
      if (r.code !== 0) log(`warm-up push to ${s.name} failed (${describeExit(r)}): ${r.stderr.trim().split('\n')[0] ?? ''}`);
      rmrf(join(s.root, 'warmup'));
    }

    const ctx = (s: Server): Ctx => {
      const local = join(scratch.dir, 'local', s.name);
      mkdirp(local);
      return { ds, local, server: s, scratch };
    };
    const records: RunRecord[] = [];
    const givenUp = new Set<string>();
    const runsPath = join(WORK, 'logs', 'runs.jsonl');

    for (let round = 1; round <= rounds; round++) {
      for (const w of workloads) {
        for (const cipher of ciphers) {
          const order: SideName[] = round % 2 === 1 ? ['openssh', 'rrsyncd'] : ['rrsyncd', 'openssh'];
          let pos = 0;
          for (const name of order) {
            const s = servers[name];
            if (!s) continue;
            const key = `${name}|${w.id}|${cipher}`;
            let rec: RunRecord;
            if (givenUp.has(key)) {
              rec = {
                round, workload: w.id, cipher, side: name, order: pos, ok: false, exit: 'skipped', timedOut: false,
                wallS: 0, serverCpuS: 0, clientCpuS: 0, peakRssB: 0, sampledPeakRssB: 0, samples: 0,
                error: 'skipped after an earlier timeout', skipped: true,
              };
            } else {
              const verify = round === 1 || opt['verify-all']!;
              try {
                rec = await measure(w, ctx(s), cipher, keys, round, pos, verify);
              } catch (e) {
                rec = {
                  round, workload: w.id, cipher, side: name, order: pos, ok: false, exit: 'harness error', timedOut: false,
                  wallS: 0, serverCpuS: 0, clientCpuS: 0, peakRssB: 0, sampledPeakRssB: 0, samples: 0,
                  error: `harness error: ${e instanceof Error ? e.message : String(e)}`,
                };
              }
              if (rec.timedOut) {
                givenUp.add(key);
                if (s === rr) {
                  log('rrsyncd timed out: restarting it so a stuck session cannot skew later runs');
                  await rr.restart();
                }
              }
            }
            pos++;
            records.push(rec);
            writeFileSync(runsPath, JSON.stringify(rec) + '\n', { flag: 'a' });
            log(
              `r${round} ${w.id.padEnd(5)} ${cipher.replace('@openssh.com', '').padEnd(17)} ${name.padEnd(7)} ` +
                (rec.ok
                  ? `wall ${rec.wallS.toFixed(3)} s  cpu ${rec.serverCpuS.toFixed(2)} s  rss ${(rec.peakRssB / MiB).toFixed(1)} MiB` +
                    `${rec.verified ? '  verified' : ''}`
                  : `FAIL ${rec.error ?? rec.exit}`.slice(0, 240)),
            );
          }
        }
      }
    }

    // ----- report
    const date = new Date().toISOString().slice(0, 10);
    const meta: ReportMeta = {
      date,
      scale,
      rounds,
      ciphers,
      machine: machineInfo(rr ? rr.mode || 'unavailable' : 'not run'),
      dataSets: [
        `big file ${(ds.spec.bigBytes / MiB).toFixed(1)} MiB random`,
        `delta: ${ds.spec.edits} × ${ds.spec.editBytes / 1024} KiB edits`,
        `${ds.spec.smallFiles} small files (0–${ds.spec.smallMaxBytes / 1024} KiB, ${(ds.smallTotalBytes / MiB).toFixed(1)} MiB)`,
        `text ${(ds.spec.textBytes / MiB).toFixed(1)} MiB in ${ds.spec.textFiles} file(s)`,
        `workload 7: ${concurrency} concurrent pushes of the text`,
        `workload 8: ${manyLabel} empty files in ${Math.ceil(manyFiles / 1000)} directories`,
      ],
      negotiated,
      notes: [
        `load average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
        `per-run client timeout ${(timeoutMs / 1000).toFixed(0)} s`,
        `destination filesystem (both servers' roots, local pull targets): ${scratch.description}`,
        `guest memory: ${memoryHold ? memoryHold.description : 'as the machine has it (--vm-memory leave, or no page_reporting knob)'}`,
      ],
    };
    if (rr) {
      meta.notes.push(
        `rrsyncd process started ${rr.starts} time(s); idle RSS after start ${(rr.idleRss / MiB).toFixed(1)} MiB ` +
          `(included in its peak-RSS column); highest process-lifetime VmHWM ${(rr.lifetimeHwm / MiB).toFixed(1)} MiB`,
      );
    }
    if (opt.only) meta.notes.push(`subset: --only ${opt.only}`);
    const infos: WorkloadInfo[] = workloads.map(({ id, num, title, target, targetNote, rssLimitMiB }) => ({ id, num, title, target, targetNote, rssLimitMiB }));
    const rows = summarize(records, infos, ciphers);
    const md = renderMarkdown(meta, rows, records);
    const base = `${date}-scale${scale}${opt.only ? '-' + opt.only.replace(/,/g, '+') : ''}${opt.label ? '-' + opt.label.replace(/[^A-Za-z0-9_.-]/g, '_') : ''}`;
    writeFileSync(join(RESULTS, `${base}.md`), md);
    writeFileSync(join(RESULTS, 'latest.md'), md);
    writeFileSync(join(RESULTS, `${base}.json`), JSON.stringify({ meta, rows, records }, null, 2) + '\n');
    process.stdout.write(md + '\n');
    log(`wrote bench/results/${base}.md, bench/results/latest.md and ${base}.json`);
    return records.some((r) => r.side === 'openssh' && !r.ok) ? 1 : 0;
  } finally {
    await stopAll();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  },
);
