/**
 * The verbs that talk to a running server over its control socket: `rrsyncd sessions [--json]`,
 * `rrsyncd kick ID | --key FP | --tenant NAME`, `rrsyncd reload`, `rrsyncd usage [--tenant NAME]
 * [--json]`. They find the socket with `--socket`, $RRSYNCD_CONTROL_SOCKET, or the state dir of
 * `--config` / the environment.
 */
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { controlRequest, controlSocketPath, type ControlReply, type TenantView } from './control-socket.js';
import { formatSessions, type SessionView } from './sessions.js';
import { formatUsage, type UsageView } from './usage.js';

const COMMON = {
  config: { type: 'string' },
  socket: { type: 'string' },
  json: { type: 'boolean' },
  key: { type: 'string' },
  tenant: { type: 'string' },
} as const;

export class VerbUsageError extends Error {}

export function resolveControlSocket(values: { socket?: string; config?: string }): string {
  if (values.socket) return values.socket;
  if (process.env.RRSYNCD_CONTROL_SOCKET) return process.env.RRSYNCD_CONTROL_SOCKET;
  return controlSocketPath(loadConfig({ file: values.config ?? process.env.RRSYNCD_CONFIG }).stateDir);
}

function who(): string {
  try {
    return `local user ${userInfo().username}`;
  } catch {
    return `local uid ${process.getuid?.() ?? '?'}`;
  }
}

function fail(reply: ControlReply): number {
  if (reply.ok) return 0;
  process.stderr.write(`rrsyncd: ${reply.error}\n`);
  for (const p of reply.problems ?? []) process.stderr.write(`rrsyncd: config error: ${p}\n`);
  return 1;
}

/** Runs `sessions`, `kick`, `reload` or `usage`; resolves with the exit code. */
export async function runControlVerb(verb: 'sessions' | 'kick' | 'reload' | 'usage', args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: COMMON, allowPositionals: true, strict: true });
  const socket = resolveControlSocket(values);
  if (verb === 'sessions') {
    const reply = await controlRequest(socket, { op: 'sessions', who: who() });
    if (!reply.ok) return fail(reply);
    const list = reply.sessions as SessionView[];
    process.stdout.write(values.json ? `${JSON.stringify(list, null, 2)}\n` : formatSessions(list));
    return 0;
  }
  if (verb === 'usage') {
    const reply = await controlRequest(socket, { op: 'usage', who: who(), tenant: values.tenant });
    if (!reply.ok) return fail(reply);
    const list = reply.usage as UsageView[];
    process.stdout.write(values.json ? `${JSON.stringify(list, null, 2)}\n` : formatUsage(list));
    return 0;
  }
  if (verb === 'kick') {
    const sel = { id: positionals[0], fingerprint: values.key, tenant: values.tenant };
    if (sel.id === undefined && sel.fingerprint === undefined && sel.tenant === undefined) {
      throw new VerbUsageError('kick needs ID, --key FINGERPRINT or --tenant NAME');
    }
    const reply = await controlRequest(socket, { op: 'kick', who: who(), ...sel });
    if (!reply.ok) return fail(reply);
    const kicked = reply.kicked as string[];
    process.stdout.write(kicked.length ? `kicked ${kicked.join(', ')}\n` : 'no matching session\n');
    return kicked.length ? 0 : 1;
  }
  const reply = await controlRequest(socket, { op: 'reload', who: who() });
  if (!reply.ok) return fail(reply);
  process.stdout.write(`reloaded: ${String(reply.keys)} key(s), ${String(reply.closed)} connection(s) of removed or changed keys closed\n`);
  return 0;
}

/** The table the console's `tenants` prints. */
export function formatTenants(list: TenantView[]): string {
  if (list.length === 0) return 'no tenants configured\n';
  return (
    list
      .map((t) => {
        const quota = [t.quotaBytes !== undefined ? `${t.quotaBytes} bytes` : '', t.quotaFiles !== undefined ? `${t.quotaFiles} files` : '']
          .filter(Boolean)
          .join(', ');
        return `${t.name}  root ${t.root}  sessions ${t.sessions}${quota ? `  quota ${quota}` : ''}`;
      })
      .join('\n') + '\n'
  );
}
