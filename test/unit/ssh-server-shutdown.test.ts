// In-process RrsyncServer with a fake engine: the shutdown deadline and exit-status ordering.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { loadConfig } from '../../src/config/load.js';
import { KeyRing, parseAuthorizedKeys } from '../../src/ssh/authorized-keys.js';
import { generateHostKey } from '../../src/ssh/host-keys.js';
import { RrsyncServer, type RunSession } from '../../src/ssh/server.js';
import { createLogger } from '../../src/log.js';

const dir = mkdtempSync(join(tmpdir(), 'rrsyncd-srv-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const client = ssh2.utils.generateKeyPairSync('ed25519');

function makeServer(runSession: RunSession) {
  const config = loadConfig({ env: { HOME: dir }, overrides: { listen: ['127.0.0.1:0'], root: dir } });
  const ring = new KeyRing(parseAuthorizedKeys(client.public, { source: 'test', defaultRoot: dir }).entries);
  const hostKey = generateHostKey(join(dir, `hk-${Math.random()}`));
  return new RrsyncServer({ config, keyRing: ring, hostKeys: [hostKey], log: createLogger({ level: 'silent' }), runSession });
}

function execOnce(port: number, command: string, onStarted?: () => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.on('error', reject).on('ready', () => {
      c.exec(command, (err, stream) => {
        if (err) return reject(err);
        let stdout = '';
        let stderr = '';
        let code: number | null = null;
        stream.on('data', (d: Buffer) => {
          stdout += d.toString();
          onStarted?.();
        });
        stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        stream.on('exit', (c2: number | null) => (code = c2));
        stream.on('close', () => {
          c.end();
          resolve({ code, stdout, stderr });
        });
      });
    });
    c.connect({ host: '127.0.0.1', port, username: 'u', privateKey: client.private, hostVerifier: () => true });
  });
}

t.test('the engine gets the channel, argv and grant; its output precedes the exit status', async (t) => {
  let seen: string[] = [];
  const srv = makeServer(async (io, req) => {
    seen = req.argv;
    t.equal(req.grant.root, dir);
    // more than one SSH window, with stderr writes while stdout waits for window space
    io.output.write(Buffer.alloc(3 * 1024 * 1024, 'a'));
    io.stderr.write('note\n');
    io.output.write(Buffer.alloc(1024 * 1024, 'b'));
    io.stderr.write('end\n');
    return { exitCode: 23, role: 'sender', bytesIn: 0, bytesOut: 4 * 1024 * 1024 };
  });
  const [addr] = await srv.listen();
  const r = await execOnce(addr!.port, 'rsync --server --sender . "a b"');
  t.same(seen, ['rsync', '--server', '--sender', '.', 'a b']);
  t.equal(r.stdout.length, 4 * 1024 * 1024, 'all output arrived, nothing sent twice');
  t.ok(r.stdout === 'a'.repeat(3 * 1024 * 1024) + 'b'.repeat(1024 * 1024), 'in order');
  t.equal(r.stderr, 'note\nend\n', 'stderr written while stdout waited for window is delivered');
  t.equal(r.code, 23, 'exit status delivered');
  await srv.shutdown(1000);
});

t.test('shutdown waits for a running session, then aborts it at the deadline', async (t) => {
  let aborted = false;
  const srv = makeServer(
    (io, req) =>
      new Promise((resolve) => {
        io.output.write('started\n');
        req.signal!.addEventListener('abort', () => {
          aborted = true;
          resolve({ exitCode: 20, role: 'receiver', bytesIn: 0, bytesOut: 8 });
        });
      }),
  );
  const [addr] = await srv.listen();
  let startedResolve!: () => void;
  const started = new Promise<void>((r) => (startedResolve = r));
  const exec = execOnce(addr!.port, 'rsync --server . x', () => startedResolve());
  await started;
  const t0 = Date.now();
  await srv.shutdown(400);
  const elapsed = Date.now() - t0;
  t.ok(aborted, 'the session was aborted');
  t.ok(elapsed >= 350, `waited for the grace period (${elapsed} ms)`);
  const r = await exec;
  t.equal(r.code, 20, 'the aborted session still sent its exit status');
  t.equal(srv.connectionCount, 0);
});
