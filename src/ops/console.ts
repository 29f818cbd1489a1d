/**
 * `rrsyncd console`: the operator's command shell, run on the PTY of an admin key's `ssh -t` (or
 * locally). It talks to the server's control socket, which logs every command it is sent; local
 * commands (help, exit, typos) are sent as `audit` requests so they are logged too.
 */
import { createInterface } from 'node:readline';
import type { Socket } from 'node:net';
import { controlFollowLog, controlRequest, type ControlRequest } from './control-socket.js';
import { formatTenants } from './cli-verbs.js';
import { runRevisionVerb } from './revision-verbs.js';
import { formatSessions, type SessionView } from './sessions.js';
import type { TenantView } from './control-socket.js';
import { formatUsage, type UsageView } from './usage.js';

const HELP = `commands:
  sessions [--json]                  running sessions
  kick ID | --key FP | --tenant NAME end sessions (the client gets an error and a non-zero exit)
  tenants                            configured tenants, roots, running sessions, quotas
  usage [--tenant NAME] [--json]     disk usage and quotas per tenant (the usage ledgers)
  reload                             reload the configuration (validated first)
  revisions TENANT [--json]          a tenant's snapshots/revisions
  prune TENANT --dry-run --keep-…    what rrsyncd prune would remove (only a preview here)
  log                                follow the server log (^C stops)
  help                               this text
  exit [N]                           leave the console (also ^D)
`;

export interface ConsoleOptions {
  socket: string;
  who: string;
  idleTimeoutMs: number;
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
}

export function runConsole(opts: ConsoleOptions): Promise<number> {
  const out = opts.output ?? process.stdout;
  const rl = createInterface({ input: opts.input ?? process.stdin, output: out, prompt: 'rrsyncd> ', terminal: true });
  const write = (text: string) => out.write(text.replace(/\r?\n/g, '\r\n'));
  let following: Socket | undefined;
  let idle: NodeJS.Timeout | undefined;
  return new Promise<number>((resolve) => {
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      following?.destroy();
      rl.close();
      resolve(code);
    };
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        write('\nidle timeout: closing the console\n');
        finish(0);
      }, opts.idleTimeoutMs);
    };
    const request = (req: ControlRequest) => controlRequest(opts.socket, { ...req, who: opts.who });
    write(`rrsyncd operator console (${opts.who}); type "help"\n`);
    armIdle();
    rl.prompt();
    rl.on('SIGINT', () => {
      armIdle();
      if (following) {
        following.destroy();
        following = undefined;
        write('\n');
      } else write('^C\n');
      rl.prompt();
    });
    rl.on('close', () => finish(0));
    rl.on('line', (line) => {
      armIdle();
      if (following) return;
      const words = line.trim().split(/\s+/).filter(Boolean);
      if (words.length === 0) return rl.prompt();
      const ctx: CommandContext = { request, write, finish, follow: () => (following = controlFollowLog(opts.socket, opts.who, (l) => write(`${l}\n`), () => undefined)) };
      void execute(words, ctx).then(
        () => !done && !following && rl.prompt(),
        (err: Error) => {
          write(`error: ${err.message}\n`);
          if (!done) rl.prompt();
        },
      );
    });
  });
}

interface CommandContext {
  request: (req: ControlRequest) => ReturnType<typeof controlRequest>;
  write: (text: string) => void;
  /** Starts following the log until ^C. */
  follow: () => void;
  finish: (code: number) => void;
}

async function execute(words: string[], { request, write, follow, finish }: CommandContext): Promise<void> {
  const [cmd, ...rest] = words;
  const line = words.join(' ');
  const flag = (name: string) => {
    const i = rest.indexOf(name);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  switch (cmd) {
    case 'help':
    case '?':
      await request({ op: 'audit', line });
      return write(HELP);
    case 'exit':
    case 'quit': {
      await request({ op: 'audit', line });
      const n = Number(rest[0] ?? 0);
      return finish(Number.isInteger(n) && n >= 0 && n < 256 ? n : 1);
    }
    case 'sessions': {
      const r = await request({ op: 'sessions' });
      if (!r.ok) return write(`error: ${r.error}\n`);
      const list = r.sessions as SessionView[];
      return write(rest.includes('--json') ? `${JSON.stringify(list, null, 2)}\n` : formatSessions(list));
    }
    case 'kick': {
      const sel = { id: rest[0]?.startsWith('--') ? undefined : rest[0], fingerprint: flag('--key'), tenant: flag('--tenant') };
      const r = await request({ op: 'kick', ...sel });
      if (!r.ok) return write(`error: ${r.error}\n`);
      const kicked = r.kicked as string[];
      return write(kicked.length ? `kicked ${kicked.join(', ')}\n` : 'no matching session\n');
    }
    case 'tenants': {
      const r = await request({ op: 'tenants' });
      return write(r.ok ? formatTenants(r.tenants as TenantView[]) : `error: ${r.error}\n`);
    }
    case 'usage': {
      const r = await request({ op: 'usage', tenant: flag('--tenant') });
      if (!r.ok) return write(`error: ${r.error}\n`);
      const list = r.usage as UsageView[];
      return write(rest.includes('--json') ? `${JSON.stringify(list, null, 2)}\n` : formatUsage(list));
    }
    case 'reload': {
      const r = await request({ op: 'reload' });
      if (r.ok) return write(`reloaded: ${String(r.keys)} key(s), ${String(r.closed)} connection(s) closed\n`);
      return write(`${r.error}\n${(r.problems ?? []).map((p) => `  ${p}\n`).join('')}`);
    }
    case 'revisions':
    case 'prune': {
      await request({ op: 'audit', line });
      const [tenant, ...args] = rest;
      if (cmd === 'prune' && !args.includes('--dry-run')) return write('the console only previews: prune TENANT --dry-run --keep-…\n');
      const r = await request({ op: 'tenants' });
      if (!r.ok) return write(`error: ${r.error}\n`);
      const t = (r.tenants as TenantView[]).find((x) => x.name === tenant);
      if (!t) return write(`usage: ${cmd} TENANT …; no tenant named "${tenant ?? ''}"\n`);
      await runRevisionVerb(cmd, ['--root', t.root, ...args], { out: write, err: write });
      return;
    }
    case 'log': {
      write('following the log; ^C stops\n');
      return follow();
    }
    default:
      await request({ op: 'audit', line });
      return write(`unknown command "${cmd}"; type "help"\n`);
  }
}
