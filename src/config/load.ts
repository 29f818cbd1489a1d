/**
 * Loads the configuration: schema defaults < config file (JSON) < RRSYNCD_* environment < CLI flags.
 * Every problem names its setting and where the value came from (file, variable or flag).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import convict from 'convict';
import { buildSchema, tenantProblems, type ConfigShape } from './schema.js';

export interface CliOverrides {
  listen?: string[];
  hostKeys?: string[];
  authorizedKeys?: string[];
  root?: string;
  'metrics.listen'?: string;
}

export interface LoadOptions {
  /** JSON config file; relative paths inside it resolve against its directory. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: CliOverrides;
  homeDir?: string;
  cwd?: string;
}

export interface Config extends ConfigShape {
  file?: string;
  /** Which demo-mode defaults were applied. */
  demo: { root: boolean; hostKey: boolean; keys: boolean };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

const CLI_FLAG: Record<keyof CliOverrides, string> = {
  listen: '--listen',
  hostKeys: '--host-key',
  authorizedKeys: '--authorized-keys',
  root: '--root',
  'metrics.listen': '--metrics-listen',
};

/** $RRSYNCD_STATE_DIR, else $XDG_STATE_HOME/rrsyncd, else ~/.local/state/rrsyncd. */
function defaultStateDir(env: NodeJS.ProcessEnv, home: string): string {
  if (env.XDG_STATE_HOME && isAbsolute(env.XDG_STATE_HOME)) return join(env.XDG_STATE_HOME, 'rrsyncd');
  return join(home, '.local', 'state', 'rrsyncd');
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${file}: cannot read config file: ${(err as Error).message}`]);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([describeJsonError(file, text, err as Error)]);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError([`${file}: the top level must be a JSON object`]);
  }
  return stripComments(data) as Record<string, unknown>;
}

/** JSON has no comments: keys named "//" (at any depth) are comments and dropped. */
function stripComments(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripComments);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v).filter(([k]) => k !== '//').map(([k, x]) => [k, stripComments(x)]));
}

/**
 * `FILE:LINE:COLUMN: invalid JSON: …` (1-based, like compilers print it) from V8's message, which
 * gives a character offset ("at position N"); a premature end points past the last character.
 */
function describeJsonError(file: string, text: string, err: Error): string {
  const at = /\bat position (\d+)/.exec(err.message);
  const offset = at ? Math.min(Number(at[1]), text.length) : text.length;
  const before = text.slice(0, offset).split('\n');
  const line = before.length;
  const column = before[before.length - 1]!.length + 1;
  const reason = err.message.replace(/\s*(?:in JSON )?at position \d+(?: \(line \d+ column \d+\))?/, '').trim();
  return `${file}:${line}:${column}: invalid JSON: ${reason}`;
}

/** Makes the file's relative paths absolute against the file's directory (only well-typed values). */
function anchorFilePaths(data: Record<string, unknown>, baseDir: string): void {
  const abs = (p: unknown) => (typeof p === 'string' && p !== '' ? resolve(baseDir, p) : p);
  const absList = (v: unknown) => (Array.isArray(v) ? v.map(abs) : v);
  if ('stateDir' in data) data.stateDir = abs(data.stateDir);
  if ('root' in data) data.root = abs(data.root);
  if ('hostKeys' in data) data.hostKeys = absList(data.hostKeys);
  if ('authorizedKeys' in data) data.authorizedKeys = absList(data.authorizedKeys);
  if (Array.isArray(data.tenants)) {
    for (const t of data.tenants) {
      if (t && typeof t === 'object' && 'keysFile' in t) (t as Record<string, unknown>).keysFile = abs((t as Record<string, unknown>).keysFile);
    }
  }
  const admins = data.admins as Record<string, unknown> | undefined;
  if (admins && typeof admins === 'object' && 'keysFile' in admins) admins.keysFile = abs(admins.keysFile);
  const log = data.log as Record<string, unknown> | undefined;
  if (log && typeof log === 'object' && typeof log.destination === 'string' && !['stdout', 'stderr'].includes(log.destination)) {
    log.destination = abs(log.destination);
  }
}

function envNamesBySetting(schema: object, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(schema)) {
    const name = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && 'default' in v) {
      if (typeof (v as { env?: string }).env === 'string') out.set(name, (v as { env: string }).env);
    } else if (v && typeof v === 'object') {
      for (const [n, e] of envNamesBySetting(v, name)) out.set(n, e);
    }
  }
  return out;
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const home = opts.homeDir || env.HOME || homedir();
  const schema = buildSchema(defaultStateDir(env, home));
  const conf = convict<ConfigShape>(schema, { env, args: [] });
  const file = opts.file ? resolve(cwd, opts.file) : undefined;

  let fileData: Record<string, unknown> = {};
  if (file) {
    fileData = readConfigFile(file);
    anchorFilePaths(fileData, dirname(file));
    conf.load(fileData);
  }
  const overrides = opts.overrides ?? {};
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) conf.set(key as keyof ConfigShape, value as never);
  }

  const envNames = envNamesBySetting(schema);
  const sourceOf = (setting: string): string => {
    const top = (setting in CLI_FLAG ? setting : setting.split(/[.[]/)[0]) as keyof CliOverrides;
    if (overrides[top] !== undefined && top in CLI_FLAG) return `command line ${CLI_FLAG[top]}`;
    const envName = envNames.get(setting);
    if (envName && env[envName] !== undefined) return `environment ${envName}`;
    return file ?? 'defaults';
  };

  const problems: string[] = [];
  try {
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    for (const line of (err as Error).message.split('\n')) problems.push(describeConvictProblem(line, sourceOf));
  }
  const tenants = conf.get('tenants');
  if (Array.isArray(tenants)) {
    tenants.forEach((t, i) => {
      for (const p of tenantProblems(t, `tenants[${i}]`)) problems.push(`${sourceOf('tenants')}: ${p}`);
    });
    const names = tenants.map((t) => t?.name);
    const dup = names.find((n, i) => typeof n === 'string' && names.indexOf(n) !== i);
    if (dup) problems.push(`${sourceOf('tenants')}: tenants: duplicate tenant name "${dup}"`);
  }
  if (problems.length) throw new ConfigError(problems);

  const shape = conf.getProperties();
  return finishConfig(shape, file, cwd);
}

function describeConvictProblem(line: string, sourceOf: (setting: string) => string): string {
  const undeclared = /^configuration param '(.+)' not declared in the schema$/.exec(line);
  if (undeclared) return `${sourceOf(undeclared[1]!)}: ${undeclared[1]}: unknown setting`;
  const m = /^([A-Za-z0-9_.]+): (.*)$/.exec(line);
  if (m) return `${sourceOf(m[1]!)}: ${m[1]}: ${m[2]!.trim()}`;
  return line;
}

/** Absolute paths everywhere and the demo-mode defaults for root, host key and keys. */
function finishConfig(shape: ConfigShape, file: string | undefined, cwd: string): Config {
  const abs = (p: string) => resolve(cwd, p);
  const stateDir = abs(shape.stateDir);
  const demo = {
    root: shape.root === '',
    hostKey: shape.hostKeys.length === 0,
    keys: shape.authorizedKeys.length === 0 && shape.tenants.length === 0,
  };
  const root = demo.root ? join(stateDir, 'demo-root') : abs(shape.root);
  return {
    ...shape,
    stateDir,
    root,
    hostKeys: demo.hostKey ? [join(stateDir, 'ssh_host_ed25519_key')] : shape.hostKeys.map(abs),
    authorizedKeys: shape.authorizedKeys.map(abs),
    tenants: shape.tenants.map((t) => ({ ...t, keysFile: t.keysFile === undefined ? undefined : abs(t.keysFile) })),
    admins: { ...shape.admins, keysFile: shape.admins.keysFile === '' ? '' : abs(shape.admins.keysFile) },
    log: {
      ...shape.log,
      destination: ['stdout', 'stderr'].includes(shape.log.destination) ? shape.log.destination : abs(shape.log.destination),
    },
    file,
    demo,
  };
}
