/**
 * `rrsyncd init [--dir DIR] [--root DIR] [--state-dir DIR] [--listen HOST:PORT]`: a starter
 * configuration (comments in "//" keys), a host key and an authorized_keys example, written only
 * when none of them exists yet.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateHostKey } from '../ssh/host-keys.js';

const AUTHORIZED_KEYS_EXAMPLE = `# rrsyncd authorized_keys: the OpenSSH format, one key per line.
# command="rrsync [-ro|-wo] [-munge] [-no-del] [-no-lock] [-no-overwrite] [-absolute] DIR" is the key's
# grant (a relative DIR is below the config's "root"); a line without command= may use the whole root.
# Any other command= makes the key unusable. from=, expiry-time=, restrict, no-pty... are honoured.
# Uncomment and paste a real public key; then \`rrsyncd reload --config <this dir>/rrsyncd.json\`.
#
# restrict,command="rrsync -wo backups/host1" ssh-ed25519 AAAA... root@host1
# restrict,from="203.0.113.0/24",command="rrsync -ro pub" ssh-ed25519 AAAA... mirror
`;

function starterConfig(o: { root: string; stateDir: string; listen: string }): object {
  return {
    '//': [
      'rrsyncd configuration. JSON has no comments: keys named "//" are comments and ignored.',
      'Relative paths are relative to this file. Every setting: README "Configuration" and src/config/schema.ts.',
      'Check it with `rrsyncd check-config --config <this file>`; apply changes with `rrsyncd reload --config <this file>`.',
    ],
    listen: [o.listen],
    stateDir: o.stateDir,
    hostKeys: ['ssh_host_ed25519_key'],
    root: o.root,
    authorizedKeys: ['authorized_keys'],
    tenants: [],
    limits: { shutdownGraceMs: 30000 },
    log: { level: 'info', destination: 'stdout' },
    metrics: { '//': 'HOST:PORT for /metrics, /healthz, /readyz; empty = off', listen: '' },
    admins: { '//': 'authorized_keys lines of operator keys: `ssh -t` gives them the console; they can never rsync', keys: [] },
  };
}

/** Writes the files; resolves with the exit code. */
export function runInit(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    options: { dir: { type: 'string' }, root: { type: 'string' }, 'state-dir': { type: 'string' }, listen: { type: 'string' } },
    allowPositionals: false,
    strict: true,
  });
  void positionals;
  const dir = resolve(values.dir ?? '.');
  const files = { config: join(dir, 'rrsyncd.json'), hostKey: join(dir, 'ssh_host_ed25519_key'), keys: join(dir, 'authorized_keys') };
  const existing = [files.config, files.hostKey, `${files.hostKey}.pub`, files.keys].filter((f) => existsSync(f));
  if (existing.length) {
    process.stderr.write(`rrsyncd: init: not overwriting ${existing.join(', ')}\n`);
    return 1;
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const config = starterConfig({ root: values.root ?? '/srv/rrsyncd', stateDir: values['state-dir'] ?? '/var/lib/rrsyncd', listen: values.listen ?? '0.0.0.0:2222' });
  writeFileSync(files.config, `${JSON.stringify(config, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
  writeFileSync(files.keys, AUTHORIZED_KEYS_EXAMPLE, { flag: 'wx', mode: 0o644 });
  const key = generateHostKey(files.hostKey);
  process.stdout.write(
    [
      `wrote ${files.config}`,
      `wrote ${files.keys} (examples only: add real keys)`,
      `wrote ${files.hostKey} (${key.fingerprint})`,
      `next: rrsyncd check-config --config ${files.config}`,
      '',
    ].join('\n'),
  );
  return 0;
}
