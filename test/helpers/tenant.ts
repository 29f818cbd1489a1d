/**
 * Grants a running test server's client key through a config tenant, for what an
 * authorized_keys line cannot grant (limits such as allowDevices). The server must have been
 * started with `config` (so it has a config file to reload).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestServer } from './server.js';

export async function grantAsTenant(srv: TestServer, keyOptions: string, tenant: Record<string, unknown>): Promise<void> {
  // The "listening" record is written just before the server installs its SIGHUP handler: one
  // exec served proves it is past that point (a SIGHUP earlier would kill it).
  const probe = await srv.ssh('true');
  if (probe.code !== 0) throw new Error(`server not ready for SIGHUP: ${probe.stderr}`);
  const pub = (await readFile(`${srv.keyPath}.pub`, 'utf8')).trim();
  await writeFile(join(srv.dir, 'config.json'), JSON.stringify({ tenants: [{ name: 'test', ...tenant, keys: [`${keyOptions} ${pub}`] }] }));
  await writeFile(join(srv.dir, 'authorized_keys'), '');
  const reloaded = () => srv.logRecords().filter((l) => l.msg === 'configuration reloaded').length;
  const before = reloaded();
  srv.child.kill('SIGHUP');
  await srv.waitForLog(() => reloaded() > before);
}
