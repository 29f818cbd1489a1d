/**
 * rrsyncd command line:
 *   rrsyncd serve [--config FILE] [--listen HOST:PORT] [--host-key FILE] [--authorized-keys FILE] [--root DIR]
 *   rrsyncd check-config [--config FILE] (accepts the serve flags too)
 *   rrsyncd keygen --host-key FILE
 *   rrsyncd init | sessions | kick | reload | usage | console (src/ops)
 *   rrsyncd relay [OPTIONS] SRCHOST:PATH DSTHOST:PATH (src/relay)
 *   rrsyncd revisions | prune | publish --rollback (src/ops/revision-verbs.ts)
 *   rrsyncd --help | --version
 */
import { assertPatchedInternals } from './patches/self-check.js';
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import { ConfigError, loadConfig, type CliOverrides, type Config, type LoadOptions } from './config/load.js';
import { buildKeyRing } from './ssh/key-ring.js';
import { removeStaleStagingAtStart } from './revisions/staging.js';
import { createLogSink, type Logger } from './log.js';
import { buildAdminRing } from './ops/admins.js';
import { resolveControlSocket, runControlVerb, VerbUsageError } from './ops/cli-verbs.js';
import { runConsole } from './ops/console.js';
import { runInit } from './ops/init.js';
import { runRevisionVerb } from './ops/revision-verbs.js';
import { Operations } from './ops/operations.js';
import { ensureHostKey, generateHostKey, loadHostKey, type HostKey } from './ssh/host-keys.js';
import { nativeCryptoStatus } from './ssh/native-crypto.js';
import { RrsyncServer } from './ssh/server.js';

const USAGE = `usage:
  rrsyncd serve [--config FILE] [--listen HOST:PORT] [--host-key FILE]
                [--authorized-keys FILE] [--root DIR] [--metrics-listen HOST:PORT]
  rrsyncd check-config [--config FILE]   validate; print problems with their source; exit 1 on error
  rrsyncd keygen --host-key FILE         create an ed25519 host key, print its SHA256 fingerprint
  rrsyncd init [--dir DIR] [--root DIR] [--state-dir DIR] [--listen HOST:PORT]
                                         write a starter config, host key and authorized_keys example
  rrsyncd sessions [--json]              running sessions of the server (control socket)
  rrsyncd kick ID | --key FP | --tenant NAME   end sessions
  rrsyncd reload                         reload the server's configuration (validated first)
  rrsyncd usage [--tenant NAME] [--json] disk usage and quotas per tenant (the usage ledgers)
  rrsyncd console                        the operator console (admin keys get it over ssh -t)
  rrsyncd relay [OPTIONS] [USER@]SRCHOST:PATH [USER@]DSTHOST:PATH
                                         rsync between two remote hosts through this machine
  rrsyncd revisions --root DIR | --config FILE --tenant NAME [--json]
                                         list a revisions root's snapshots/revisions
  rrsyncd prune (--root DIR | --config FILE --tenant NAME) [--keep-last N] [--keep-daily N]
                [--keep-weekly N] [--keep-monthly N] [--keep-within D] [--min-age D]
                [--dry-run] [--json]       remove revisions no rule keeps (D: 12h, 7d, 2w)
  rrsyncd publish (--root DIR | --config FILE --tenant NAME) --rollback [NAME]
                                         point current/latest back at an earlier revision
  rrsyncd --help | --version

sessions, kick, reload, usage and console find the server by --socket PATH, $RRSYNCD_CONTROL_SOCKET, or
the state dir of --config FILE / the environment.

--listen, --host-key and --authorized-keys may be repeated. Settings come from the schema
defaults, then the --config file (JSON), then RRSYNCD_* environment variables, then flags.
With no keys configured, the invoking user's ~/.ssh/authorized_keys and ~/.ssh/id_*.pub are
accepted and a demo root is served from the state directory.
`;

const SERVE_OPTIONS = {
  config: { type: 'string' },
  listen: { type: 'string', multiple: true },
  'host-key': { type: 'string', multiple: true },
  'authorized-keys': { type: 'string', multiple: true },
  root: { type: 'string' },
  'metrics-listen': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    switch (command) {
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 1 : 0;
      case '--version':
      case '-V':
        process.stdout.write(`rrsyncd ${packageVersion()}\n`);
        return 0;
      case 'serve':
        return await serve(rest);
      case 'check-config':
        return checkConfig(rest);
      case 'keygen':
        return keygen(rest);
      case 'init':
        return runInit(rest);
      case 'sessions':
      case 'kick':
      case 'reload':
      case 'usage':
        return await runControlVerb(command, rest);
      case 'console':
        return await consoleVerb(rest);
      case 'revisions':
      case 'prune':
      case 'publish':
        return await runRevisionVerb(command, rest);
      case 'relay':
        return await (await import('./relay/relay.js')).runRelay(rest);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof VerbUsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`rrsyncd: ${(err as Error).message}\n${USAGE}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      for (const p of err.problems) process.stderr.write(`rrsyncd: config error: ${p}\n`);
      return 1;
    }
    process.stderr.write(`rrsyncd: ${(err as Error).message}\n`);
    return 1;
  }
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function parseServeArgs(args: string[]): { load: LoadOptions; help: boolean } {
  const { values, positionals } = parseArgs({ args, options: SERVE_OPTIONS, allowPositionals: true, strict: true });
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const overrides: CliOverrides = {};
  if (values.listen) overrides.listen = values.listen;
  if (values['host-key']) overrides.hostKeys = values['host-key'];
  if (values['authorized-keys']) overrides.authorizedKeys = values['authorized-keys'];
  if (values.root !== undefined) overrides.root = values.root;
  if (values['metrics-listen'] !== undefined) overrides['metrics.listen'] = values['metrics-listen'];
  return { load: { file: values.config ?? process.env.RRSYNCD_CONFIG, overrides }, help: !!values.help };
}

async function consoleVerb(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { socket: { type: 'string' }, config: { type: 'string' } }, strict: true });
  const idle = Number(process.env.RRSYNCD_CONSOLE_IDLE_MS);
  return runConsole({
    socket: resolveControlSocket(values),
    who: process.env.RRSYNCD_ADMIN ?? `local user ${process.env.USER ?? process.getuid?.() ?? '?'}`,
    idleTimeoutMs: Number.isSafeInteger(idle) && idle > 0 ? idle : 900_000,
  });
}

function keygen(args: string[]): number {
  const { values, positionals } = parseArgs({ args, options: { 'host-key': { type: 'string' } }, allowPositionals: true });
  const path = values['host-key'] ?? positionals[0];
  if (!path) throw new UsageError('keygen needs --host-key FILE');
  if (existsSync(path)) throw new Error(`${path} already exists; not overwriting`);
  const key = generateHostKey(path);
  process.stdout.write(`${key.fingerprint} ${path}\n`);
  return 0;
}

function checkConfig(args: string[]): number {
  const { load, help } = parseServeArgs(args);
  if (help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const config = loadConfig(load);
  const problems: string[] = [];
  const notes: string[] = [];
  for (const path of config.hostKeys) {
    if (!existsSync(path)) notes.push(`host key ${path} does not exist yet; serve will generate it`);
    else {
      try {
        loadHostKey(path);
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
  }
  if (!config.demo.root && !isDirectory(config.root)) problems.push(`root: ${config.root} is not a directory`);
  const keys = buildKeyRing(config);
  problems.push(...keys.errors, ...keys.warnings);
  if (keys.ring.size === 0) problems.push('no usable keys: nobody could log in');
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  for (const p of problems) process.stderr.write(`rrsyncd: config error: ${p}\n`);
  if (problems.length) return 1;
  process.stdout.write(`config OK${config.file ? ` (${config.file})` : ''}: ${keys.ring.size} key(s), listen ${config.listen.join(', ')}\n`);
  return 0;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function prepareStateAndRoot(config: Config): void {
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  if (config.demo.root && !existsSync(config.root)) {
    mkdirSync(config.root, { recursive: true, mode: 0o755 });
    writeFileSync(`${config.root}/hello.txt`, 'Hello from rrsyncd. Push files here, pull them back.\n');
  }
  if (!isDirectory(config.root)) throw new Error(`root ${config.root} is not a directory`);
}

function loadHostKeys(config: Config, log: Logger): HostKey[] {
  return config.hostKeys.map((path) => {
    const { hostKey, created } = ensureHostKey(path);
    if (created) log.info({ path, fingerprint: hostKey.fingerprint }, 'generated host key');
    return hostKey;
  });
}

function tryLine(addr: AddressInfo): string {
  const host = addr.address === '0.0.0.0' || addr.address === '::' ? '127.0.0.1' : addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const rsh = addr.port === 22 ? 'ssh' : `ssh -p ${addr.port}`;
  return [
    `  pull: rsync -av -e '${rsh}' ${host}:hello.txt ./`,
    `  push: rsync -av -e '${rsh}' ./some-dir ${host}:`,
  ].join('\n');
}

async function serve(args: string[]): Promise<number> {
  const { load, help } = parseServeArgs(args);
  if (help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const config = loadConfig(load);
  const logSink = createLogSink(config.log);
  const log = logSink.logger;
  assertPatchedInternals();
  const crypto = nativeCryptoStatus();
  if (!crypto.loaded) {
    log.warn({ error: crypto.error }, "ssh2's native crypto binding is not loaded: using the pure-JS ciphers (2-3x slower)");
  }
  prepareStateAndRoot(config);
  const hostKeys = loadHostKeys(config, log);
  const keys = buildKeyRing(config);
  if (keys.errors.length) throw new ConfigError(keys.errors);
  for (const w of keys.warnings) log.warn({ problem: w }, 'authorized key skipped');
  if (keys.ring.size === 0) log.warn({ sources: keys.sources }, 'no usable keys: nobody can log in');
  // awaited before listening: no session starts while a stale staging is being removed
  await removeStaleStagingAtStart(keys.ring.all().flatMap((e) => (e.grant?.revisions ? [e.grant.root] : [])), log);
  const admins = buildAdminRing(config);
  if (admins.errors.length) throw new ConfigError(admins.errors);
  for (const w of admins.warnings) log.warn({ problem: w }, 'admin key skipped');

  const ops = new Operations({ config, load, logSink, adminRing: admins.ring });
  const server = new RrsyncServer({ config, keyRing: keys.ring, hostKeys, log, hooks: ops.hooks() });
  const bound = await server.listen();
  const metricsAddress = await ops.start(server);
  if (metricsAddress) log.info({ event: 'metrics', address: metricsAddress.address, port: metricsAddress.port }, 'metrics listening');
  for (const addr of bound) {
    log.info({ event: 'listening', address: addr.address, port: addr.port, fingerprints: hostKeys.map((h) => h.fingerprint) }, 'listening');
  }
  process.stderr.write(
    [
      `rrsyncd ${packageVersion()} listening on ${bound.map((a) => `${a.address}:${a.port}`).join(', ')}`,
      ...hostKeys.map((h) => `host key ${h.fingerprint} (${h.key.type}) ${h.path}`),
      `root ${config.root}${config.demo.root ? ' (demo)' : ''}`,
      `${keys.ring.size} key(s) from ${keys.sources.join(', ') || (config.tenants.length ? 'config tenants' : 'nowhere')}`,
      `try:\n${tryLine(bound[0]!)}`,
      '',
    ].join('\n'),
  );

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      ops.draining();
      log.info({ signal, connections: server.connectionCount }, 'shutting down');
      void server.shutdown().then(() => {
        ops.stop();
        log.info('shutdown complete');
        process.off('SIGHUP', reload);
        // something left open (a stuck handle) must not keep a stopped server alive
        setTimeout(() => process.exit(0), 2000).unref();
        resolve(0);
      });
    };
    const reload = () => void ops.reload();
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', reload);
  });
}

function isMainModule(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  process.exitCode = await main(process.argv.slice(2));
}
