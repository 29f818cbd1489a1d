/**
 * Runs the engine over stdin/stdout, the way `rsync -e test/pipe/rsh.sh` expects a remote shell
 * to run `rsync --server ...`: no SSH involved, for fast engine tests against the real client.
 * Env: RRSYNCD_TEST_ROOT (the grant's root), RRSYNCD_TEST_GRANT (JSON, optional partial Grant),
 * RRSYNCD_TEST_LOG (file for pino output, optional).
 */
import { splitShellWords } from '../../src/policy/shellwords.js';
import pino from 'pino';
import { runRsyncSession } from '../../src/engine/session.js';
import { defaultGrant, type Grant } from '../../src/policy/grant.js';

function splitLikeShell(cmd: string): string[] {
  return splitShellWords(cmd);
}

const argv = process.argv.slice(2);
const start = argv.indexOf('rsync') >= 0 ? argv.indexOf('rsync') : argv.findIndex((a) => a.endsWith('/rsync'));
const command = Buffer.from(argv.slice(start).join(' '), 'utf8').toString('latin1');
const words = splitLikeShell(command);
const root = process.env.RRSYNCD_TEST_ROOT ?? process.cwd();
const grant: Grant = { ...defaultGrant(root), ...(process.env.RRSYNCD_TEST_GRANT ? JSON.parse(process.env.RRSYNCD_TEST_GRANT) : {}) };
const dest = process.env.RRSYNCD_TEST_LOG;
const log = dest ? pino({ level: 'debug' }, pino.destination({ dest, append: true, sync: true })) : pino({ level: 'silent' });

// A client that aborts closes our stdout: the engine sees it through its writes; don't crash on EPIPE.
process.stdout.on('error', () => undefined);
// rsync signals its remote shell with SIGUSR1 when it aborts; by default node would open its inspector.
process.on('SIGUSR1', () => process.exit(20));
const result = await runRsyncSession(
  { input: process.stdin, output: process.stdout, stderr: process.stderr },
  { argv: words, grant, log },
);
log.info({ result }, 'session end');
process.stdout.end(() => process.exit(result.exitCode));
