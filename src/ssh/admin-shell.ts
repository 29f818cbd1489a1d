/**
 * Session channels of an admin key: a `pty-req` then `shell` gets a PTY (node-pty) running
 * `rrsyncd console` (or `admins.shell`), with window resizes, the program's exit status, and the
 * PTY killed when the channel goes. Everything else (exec — so no rsync —, subsystems, env, x11,
 * agent) is refused.
 */
import type { PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import type { IPty } from 'node-pty';
import type { AdminSessionInfo } from '../ops/hooks.js';

export interface AdminShellOptions {
  controlSocket: string;
  /** argv to run instead of the console; empty = `rrsyncd console`. */
  shell: string[];
  idleTimeoutMs: number;
  cwd: string;
}

/** The command that runs this same rrsyncd's console (compiled or under tsx alike). */
function consoleArgv(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]!, 'console'];
}

export function startAdminSession(session: Session, info: AdminSessionInfo, opts: AdminShellOptions): void {
  let pty: PseudoTtyInfo | undefined;
  let child: IPty | undefined;
  const log = info.log.child({ admin: info.entry.fingerprint });
  const refuse = (what: string) => (_accept: unknown, reject?: () => void) => {
    log.info({ refused: what }, 'admin session request refused');
    reject?.();
  };
  session.on('env', refuse('env'));
  session.on('x11', refuse('x11'));
  session.on('auth-agent', refuse('auth-agent'));
  session.on('subsystem', refuse('subsystem'));
  session.on('sftp', refuse('sftp'));
  session.on('pty', (accept, _reject, p) => {
    pty = p;
    accept?.();
  });
  session.on('window-change', (accept, _reject, w) => {
    child?.resize(Math.max(1, w.cols), Math.max(1, w.rows));
    accept?.();
  });
  session.on('signal', (accept) => accept?.());
  session.on('exec', (accept, _reject, req) => {
    const channel = accept();
    log.info({ event: 'admin', refused: 'exec', command: req.command.slice(0, 200) }, 'admin key exec refused');
    channel.stderr.write('rrsyncd: admin keys cannot run commands or rsync; use `ssh -t` for the console\n');
    channel.exit(1);
    channel.end();
  });
  session.on('shell', (accept) => {
    const channel = accept();
    if (!pty) {
      channel.stderr.write('rrsyncd: the console needs a terminal: use `ssh -t`\n');
      channel.exit(1);
      channel.end();
      return;
    }
    void spawnConsole(channel, pty, info, opts).then((c) => (child = c));
  });
}

async function spawnConsole(channel: ServerChannel, pty: PseudoTtyInfo, info: AdminSessionInfo, opts: AdminShellOptions): Promise<IPty | undefined> {
  const log = info.log;
  const argv = opts.shell.length ? opts.shell : consoleArgv();
  let child: IPty;
  try {
    const nodePty = await import('node-pty');
    child = nodePty.spawn(argv[0]!, argv.slice(1), {
      name: pty.term || 'xterm',
      cols: Math.max(1, pty.cols || 80),
      rows: Math.max(1, pty.rows || 24),
      cwd: process.cwd(),
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: opts.cwd,
        TERM: pty.term || 'xterm',
        LANG: process.env.LANG ?? 'C.UTF-8',
        RRSYNCD_CONTROL_SOCKET: opts.controlSocket,
        RRSYNCD_ADMIN: `${info.entry.fingerprint} ${info.entry.comment}`.trim(),
        RRSYNCD_CONSOLE_IDLE_MS: String(opts.idleTimeoutMs),
      },
    });
  } catch (err) {
    log.error({ err: (err as Error).message }, 'console failed to start');
    channel.stderr.write('rrsyncd: the console could not be started (see the server log)\n');
    channel.exit(1);
    channel.end();
    return undefined;
  }
  const started = Date.now();
  log.info({ event: 'admin', fingerprint: info.entry.fingerprint, comment: info.entry.comment, argv, pid: child.pid }, 'console started');
  child.onData((d) => channel.write(d));
  channel.on('data', (d: Buffer) => child.write(d.toString('utf8')));
  let exited = false;
  child.onExit(({ exitCode, signal }) => {
    exited = true;
    log.info({ event: 'admin', fingerprint: info.entry.fingerprint, exitCode, signal, durationMs: Date.now() - started }, 'console ended');
    channel.exit(signal ? 128 + signal : exitCode);
    channel.end();
  });
  channel.once('close', () => {
    if (!exited) child.kill('SIGHUP');
  });
  return child;
}
