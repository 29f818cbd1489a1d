// A "remote shell" for `rsync -e 'node .../rsh-client.mjs'` that hands the remote command to an
// engine host running inside the test process (engine-host.ts) over a unix socket, instead of
// booting a fresh node+tsx engine per run (test/pipe/rsh.sh does that; ~0.8 s CPU each).
// Plain JS on purpose: no loader, fast start.
//
// Wire: client -> host: one JSON line {enc: "base64", cmd (the joined command's bytes), root,
// grant, log}, every value base64, then the raw stdin bytes (half-close = stdin EOF). host -> client: frames
// [type u8][len u32be][data]: 1 = stdout, 2 = stderr, 3 = exit status (i32be).
// Env: RRSYNCD_IT_SOCK (socket path), RRSYNCD_TEST_ROOT, RRSYNCD_TEST_GRANT, RRSYNCD_TEST_LOG.
import net from 'node:net';

const env = process.env;
// argv: [node, script, host, rsync, --server, ...] as rsync passes them; ssh would join with spaces.
const words = process.argv.slice(3);
const b64 = (s) => Buffer.from(s ?? '', 'utf8').toString('base64');
const header = {
  enc: 'base64',
  cmd: b64(words.join(' ')),
  root: b64(env.RRSYNCD_TEST_ROOT ?? process.cwd()),
  grant: b64(env.RRSYNCD_TEST_GRANT),
  log: b64(env.RRSYNCD_TEST_LOG),
};
// rsync signals its remote shell with SIGUSR1 when it aborts; node would start its inspector.
process.on('SIGUSR1', () => process.exit(255));
const sock = net.createConnection(env.RRSYNCD_IT_SOCK);
sock.write(`${JSON.stringify(header)}\n`);
process.stdin.pipe(sock);
process.stdin.on('error', () => {});

let buf = Buffer.alloc(0);
let exitCode = null;
sock.on('data', (chunk) => {
  buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
  while (buf.length >= 5) {
    const len = buf.readUInt32BE(1);
    if (buf.length < 5 + len) break;
    const type = buf[0];
    const data = buf.subarray(5, 5 + len);
    buf = buf.subarray(5 + len);
    if (type === 1) {
      if (!process.stdout.write(data)) {
        sock.pause();
        process.stdout.once('drain', () => sock.resume());
      }
    } else if (type === 2) {
      process.stderr.write(data);
    } else if (type === 3) {
      exitCode = data.readInt32BE(0);
    }
  }
});
const finish = () => {
  const code = exitCode ?? 255;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
};
sock.on('end', finish);
sock.on('error', (err) => {
  if (exitCode === null) process.stderr.write(`rsh-client: ${err.message}\n`);
  finish();
});
