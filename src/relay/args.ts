/**
 * `rrsyncd relay` command line: the subset of rsync's client options the relay supports, the two
 * remote specs, and the `rsync --server …` argv each side gets (as a stock 3.x client builds it
 * for a pull from the source and a push to the destination; see docs in README "Relay").
 */
import { ExitCode, RsyncError } from '../protocol/errors.js';
import { splitShellWords } from '../policy/shellwords.js';

type DeleteMode = 'none' | 'default' | 'before' | 'during' | 'after' | 'delay';

export interface FilterRuleText {
  /** '+', '-', 'P' (protect), 'R' (risk), 'H' (hide), 'S' (show), ':' (dir-merge) */
  action: string;
  pattern: string;
}

interface RemoteSpec {
  user?: string;
  host: string;
  path: string;
}

export interface RelayOptions {
  verbose: number;
  itemize: number;
  dryRun: boolean;
  recursive: boolean;
  links: boolean;
  perms: boolean;
  times: boolean;
  group: boolean;
  owner: boolean;
  devices: boolean;
  specials: boolean;
  hardLinks: boolean;
  checksum: boolean;
  compress: boolean;
  wholeFile: boolean;
  numericIds: boolean;
  deleteMode: DeleteMode;
  deleteExcluded: boolean;
  partial: boolean;
  inplace: boolean;
  stats: boolean;
  progress: boolean;
  filters: FilterRuleText[];
  srcRsh: string[];
  dstRsh: string[];
  srcRsyncPath: string;
  dstRsyncPath: string;
  src: RemoteSpec;
  dst: RemoteSpec;
}

class RelayUsageError extends RsyncError {
  constructor(message: string) {
    super(message, ExitCode.SYNTAX);
  }
}

const SHORT_FLAGS: Record<string, (o: RelayOptions) => void> = {
  a: (o) => {
    o.recursive = o.links = o.perms = o.times = o.group = o.owner = o.devices = o.specials = true;
  },
  r: (o) => void (o.recursive = true),
  l: (o) => void (o.links = true),
  p: (o) => void (o.perms = true),
  t: (o) => void (o.times = true),
  g: (o) => void (o.group = true),
  o: (o) => void (o.owner = true),
  D: (o) => void (o.devices = o.specials = true),
  v: (o) => void o.verbose++,
  i: (o) => void o.itemize++,
  n: (o) => void (o.dryRun = true),
  z: (o) => void (o.compress = true),
  H: (o) => void (o.hardLinks = true),
  c: (o) => void (o.checksum = true),
  W: (o) => void (o.wholeFile = true),
  P: (o) => void (o.partial = o.progress = true),
};

const LONG_FLAGS: Record<string, (o: RelayOptions) => void> = {
  archive: SHORT_FLAGS.a!,
  recursive: SHORT_FLAGS.r!,
  links: SHORT_FLAGS.l!,
  perms: SHORT_FLAGS.p!,
  times: SHORT_FLAGS.t!,
  group: SHORT_FLAGS.g!,
  owner: SHORT_FLAGS.o!,
  devices: (o) => void (o.devices = true),
  specials: (o) => void (o.specials = true),
  verbose: SHORT_FLAGS.v!,
  'itemize-changes': SHORT_FLAGS.i!,
  'dry-run': SHORT_FLAGS.n!,
  compress: SHORT_FLAGS.z!,
  'hard-links': SHORT_FLAGS.H!,
  checksum: SHORT_FLAGS.c!,
  'whole-file': SHORT_FLAGS.W!,
  'numeric-ids': (o) => void (o.numericIds = true),
  delete: (o) => void (o.deleteMode = o.deleteMode === 'none' ? 'default' : o.deleteMode),
  'delete-before': (o) => void (o.deleteMode = 'before'),
  'delete-during': (o) => void (o.deleteMode = 'during'),
  'delete-after': (o) => void (o.deleteMode = 'after'),
  'delete-delay': (o) => void (o.deleteMode = 'delay'),
  'delete-excluded': (o) => {
    o.deleteExcluded = true;
    if (o.deleteMode === 'none') o.deleteMode = 'default';
  },
  partial: (o) => void (o.partial = true),
  inplace: (o) => void (o.inplace = true),
  stats: (o) => void (o.stats = true),
  progress: (o) => void (o.progress = true),
};

const VALUED = new Set(['rsh', 'src-rsh', 'dst-rsh', 'rsync-path', 'src-rsync-path', 'dst-rsync-path', 'exclude', 'include', 'filter']);
const SHORT_VALUED: Record<string, string> = { e: 'rsh', f: 'filter' };

function defaults(): Omit<RelayOptions, 'src' | 'dst'> {
  return {
    verbose: 0,
    itemize: 0,
    dryRun: false,
    recursive: false,
    links: false,
    perms: false,
    times: false,
    group: false,
    owner: false,
    devices: false,
    specials: false,
    hardLinks: false,
    checksum: false,
    compress: false,
    wholeFile: false,
    numericIds: false,
    deleteMode: 'none',
    deleteExcluded: false,
    partial: false,
    inplace: false,
    stats: false,
    progress: false,
    filters: [],
    srcRsh: ['ssh'],
    dstRsh: ['ssh'],
    srcRsyncPath: 'rsync',
    dstRsyncPath: 'rsync',
  };
}

const FILTER_WORDS: Record<string, string> = {
  include: '+',
  exclude: '-',
  protect: 'P',
  risk: 'R',
  hide: 'H',
  show: 'S',
  'dir-merge': ':',
};

/** One --filter rule: "ACTION PATTERN" with a short (+ - P R H S :) or long action name. */
function parseFilterText(rule: string): FilterRuleText {
  const m = /^(\S+?)[ _](.+)$/.exec(rule) ?? /^([+\-PRHS:])(\S.*)$/.exec(rule);
  if (!m) throw new RelayUsageError(`rrsyncd relay: unsupported filter rule: ${rule}`);
  const action = FILTER_WORDS[m[1]!] ?? m[1]!;
  if (!['+', '-', 'P', 'R', 'H', 'S', ':'].includes(action)) {
    throw new RelayUsageError(`rrsyncd relay: unsupported filter rule (only + - P R H S and dir-merge): ${rule}`);
  }
  return { action, pattern: m[2]! };
}

function rshWords(value: string): string[] {
  const words = splitShellWords(value);
  if (words.length === 0) throw new RelayUsageError('rrsyncd relay: empty remote shell command');
  return words;
}

function applyValued(o: Omit<RelayOptions, 'src' | 'dst'>, name: string, value: string): void {
  switch (name) {
    case 'rsh':
      o.srcRsh = o.dstRsh = rshWords(value);
      break;
    case 'src-rsh':
      o.srcRsh = rshWords(value);
      break;
    case 'dst-rsh':
      o.dstRsh = rshWords(value);
      break;
    case 'rsync-path':
      o.srcRsyncPath = o.dstRsyncPath = value;
      break;
    case 'src-rsync-path':
      o.srcRsyncPath = value;
      break;
    case 'dst-rsync-path':
      o.dstRsyncPath = value;
      break;
    case 'exclude':
      o.filters.push({ action: '-', pattern: value });
      break;
    case 'include':
      o.filters.push({ action: '+', pattern: value });
      break;
    case 'filter':
      o.filters.push(parseFilterText(value));
      break;
  }
}

function unsupported(opt: string): RelayUsageError {
  return new RelayUsageError(`rrsyncd relay: option ${opt} is not supported by the relay (see rrsyncd relay --help)`);
}

/** [USER@]HOST:PATH; daemon (host::module) and local paths are refused. */
function parseRemoteSpec(arg: string, what: string): RemoteSpec {
  const colon = arg.indexOf(':');
  const slash = arg.indexOf('/');
  if (colon <= 0 || (slash >= 0 && slash < colon)) {
    throw new RelayUsageError(`rrsyncd relay: the ${what} must be remote ([USER@]HOST:PATH): ${arg}`);
  }
  if (arg[colon + 1] === ':' || arg.startsWith('rsync://')) {
    throw new RelayUsageError(`rrsyncd relay: rsync daemon addresses are not supported: ${arg}`);
  }
  const hostPart = arg.slice(0, colon);
  const at = hostPart.lastIndexOf('@');
  const path = arg.slice(colon + 1) || '.';
  return at >= 0 ? { user: hostPart.slice(0, at), host: hostPart.slice(at + 1), path } : { host: hostPart, path };
}

export function parseRelayArgs(argv: string[]): RelayOptions {
  const o = defaults();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      if (VALUED.has(name)) {
        const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
        if (value === undefined) throw new RelayUsageError(`rrsyncd relay: option --${name} needs a value`);
        applyValued(o, name, value);
        continue;
      }
      const flag = LONG_FLAGS[name];
      if (!flag || eq >= 0) throw unsupported(arg);
      flag(o as RelayOptions);
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const c = arg[j]!;
        const valued = SHORT_VALUED[c];
        if (valued) {
          const value = j + 1 < arg.length ? arg.slice(j + 1) : argv[++i];
          if (value === undefined) throw new RelayUsageError(`rrsyncd relay: option -${c} needs a value`);
          applyValued(o, valued, value);
          break;
        }
        const flag = SHORT_FLAGS[c];
        if (!flag) throw unsupported(`-${c}`);
        flag(o as RelayOptions);
      }
      continue;
    }
    positional.push(arg);
  }
  if (positional.length !== 2) {
    throw new RelayUsageError('rrsyncd relay: expected exactly two arguments: [USER@]SRCHOST:PATH [USER@]DSTHOST:PATH');
  }
  return { ...o, src: parseRemoteSpec(positional[0]!, 'source'), dst: parseRemoteSpec(positional[1]!, 'destination') };
}

/** Quotes a word for the remote shell when it holds anything but plain characters. */
function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_./,:=@%+-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The short-option bundle (rsync's server_options order) with the client-info letters. */
function shortFlags(o: RelayOptions): string {
  let s = '-';
  s += 'v'.repeat(o.verbose);
  if (o.dryRun) s += 'n';
  if (o.links) s += 'l';
  if (o.hardLinks) s += 'H';
  if (o.wholeFile) s += 'W';
  if (o.owner) s += 'o';
  if (o.group) s += 'g';
  if (o.devices && o.specials) s += 'D';
  if (o.times) s += 't';
  if (o.perms) s += 'p';
  if (o.recursive) s += 'r';
  if (o.checksum) s += 'c';
  if (o.compress) s += 'z';
  // Client info: no 'i' (the relay keeps one file list, no incremental recursion).
  return `${s}e.LsfxCIvu`;
}

export type SideRole = 'source' | 'destination';

/** argv after the rsync path: `--server [--sender] FLAGS [long options] . PATH`. */
function serverArgs(o: RelayOptions, role: SideRole, seed: number): string[] {
  const args = ['--server'];
  if (role === 'source') args.push('--sender');
  args.push(shortFlags(o));
  if (o.devices && !o.specials) args.push('--devices');
  if (o.specials && !o.devices) args.push('--specials');
  if (role === 'destination') {
    if (o.deleteMode === 'default') args.push('--delete');
    else if (o.deleteMode !== 'none') args.push(`--delete-${o.deleteMode}`);
    if (o.deleteExcluded) args.push('--delete-excluded');
    if (o.partial) args.push('--partial');
    if (o.stats) args.push('--stats');
    if (o.itemize) args.push(o.itemize > 1 ? '--log-format=%i%I' : '--log-format=%i');
  }
  if (o.inplace) args.push('--inplace');
  if (o.numericIds) args.push('--numeric-ids');
  args.push(`--checksum-seed=${seed}`);
  args.push('.', role === 'source' ? o.src.path : o.dst.path);
  return args;
}

/** The remote shell's argv for one side: RSH [-l USER] HOST RSYNC-PATH SERVER-ARGS… */
export function remoteCommand(o: RelayOptions, role: SideRole, seed: number): string[] {
  const spec = role === 'source' ? o.src : o.dst;
  const rsyncPath = role === 'source' ? o.srcRsyncPath : o.dstRsyncPath;
  const words = [...(role === 'source' ? o.srcRsh : o.dstRsh)];
  if (spec.user !== undefined) words.push('-l', spec.user);
  words.push(spec.host, rsyncPath, ...serverArgs(o, role, seed).map(shellQuote));
  return words;
}

export const RELAY_USAGE = `usage: rrsyncd relay [OPTIONS] [USER@]SRCHOST:PATH [USER@]DSTHOST:PATH

Runs rsync --server --sender on SRCHOST and rsync --server on DSTHOST through the remote shell
and relays between them (nothing is written locally; delta transfer is preserved).

  -a -r -l -p -t -g -o -D --devices --specials   what to preserve (as rsync)
  -v -i -n -z -H -c -W --numeric-ids --stats -P --progress --partial --inplace
  --delete --delete-before|-during|-after|-delay --delete-excluded
  --exclude=PAT --include=PAT -f/--filter=RULE   (+ - P R H S and dir-merge rules)
  -e/--rsh=COMMAND                              remote shell (default ssh)
  --src-rsh=COMMAND, --dst-rsh=COMMAND          remote shell for one side only
  --rsync-path=PROGRAM, --src-rsync-path=…, --dst-rsync-path=…
`;
