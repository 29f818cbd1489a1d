// In-process RrsyncServer with a fake engine: a connection that closes while its exec is still
// running (a killed client) leaves no timer behind once the exec has ended. The idle timer armed
// after an exec used to hold the closed connection (ssh2's state, its packet pool) for
// limits.idleTimeoutMs, which the soak saw as memory that stayed after the sessions.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { loadConfig } from '../../src/config/load.js';
import { KeyRing, parseAuthorizedKeys } from '../../src/ssh/authorized-keys.js';
import { generateHostKey } from '../../src/ssh/host-keys.js';
import { RrsyncServer } from '../../src/ssh/server.js';
import { createLogger } from '../../src/log.js';

const dir = mkdtempSync(join(tmpdir(), 'rrsyncd-conn-timers-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const clientKey = ssh2.utils.generateKeyPairSync('ed25519');

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

async function quiet(): Promise<void> {
  // the server's own short timers (a disconnect's 2 s socket destroy is unref'd) settle
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
}

t.test('an exec ending after its connection closed arms no idle timer', async (t) => {
  let ended!: () => void;
  const sessionEnded = new Promise<void>((r) => (ended = r));
  let started!: () => void;
  const sessionStarted = new Promise<void>((r) => (started = r));
  const config = loadConfig({ env: { HOME: dir }, overrides: { listen: ['127.0.0.1:0'], root: dir } });
  const ring = new KeyRing(parseAuthorizedKeys(clientKey.public, { source: 'test', defaultRoot: dir }).entries);
  const srv = new RrsyncServer({
    config,
    keyRing: ring,
    hostKeys: [generateHostKey(join(dir, 'hk'))],
    log: createLogger({ level: 'silent' }),
    runSession: (io, req) =>
      new Promise((resolve) => {
        io.output.write('started\n');
        started();
        // the engine notices the closed connection and ends a moment later, as a real one does
        req.signal!.addEventListener('abort', () =>
          setTimeout(() => {
            resolve({ exitCode: 20, role: 'receiver', bytesIn: 0, bytesOut: 8 });
            setTimeout(ended, 50);
          }, 100),
        );
      }),
  });
  t.teardown(() => srv.shutdown(100));
  const [addr] = await srv.listen();
  await quiet();
  const before = timers();

  const c = new ssh2.Client();
  c.on('error', () => {});
  c.on('ready', () => c.exec('rsync --server . x', () => {}));
  c.connect({ host: '127.0.0.1', port: addr!.port, username: 'u', privateKey: clientKey.private, hostVerifier: () => true });
  await sessionStarted;
  t.ok(timers() > before, 'a running connection has its timers (keepalive)');
  c.destroy(); // the client dies: its TCP connection closes mid-exec
  await sessionEnded;
  await quiet();
  t.equal(srv.connectionCount, 0, 'the connection is gone');
  t.equal(timers(), before, `timers back to ${before}`);
});
