// The administrator's revision verbs on real directories (the layout of src/revisions/layout.ts,
// built here by hand): `rrsyncd revisions`, `prune` (rules, --dry-run, --json, refusal without a
// rule, manifests kept, symlinks inside a revision not followed), `publish --rollback`, and the
// console's `revisions` / `prune --dry-run`.
import t, { type Test } from 'tap';
import { existsSync, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { runCli } from '../helpers/server.js';
import { lockRoot } from '../../src/sandbox/lock.js';
import { nativeBinding } from '../../src/sandbox/native.js';
import { ControlSocket } from '../../src/ops/control-socket.js';
import { runConsole } from '../../src/ops/console.js';

async function tmp(t: Test): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'rrsyncd-revops-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

/** A revisions root with one revision per name (a file, a subdir, a symlink out of the root). */
async function layout(root: string, mode: 'snapshot' | 'publish', names: string[], pointer: string, outside: string): Promise<void> {
  const dir = join(root, mode === 'snapshot' ? 'snapshots' : 'revisions');
  await mkdir(dir, { recursive: true });
  for (const [i, n] of names.entries()) {
    await mkdir(join(dir, n, 'sub'), { recursive: true });
    await writeFile(join(dir, n, 'sub', 'f.txt'), `revision ${n}\n`);
    await symlink(outside, join(dir, n, 'escape'));
    await writeFile(join(dir, `${n}.manifest.json`), JSON.stringify({ files: i + 1, bytes: 100 * (i + 1), end: `${n}` }));
  }
  await symlink(`${mode === 'snapshot' ? 'snapshots' : 'revisions'}/${pointer}`, join(root, mode === 'snapshot' ? 'latest' : 'current'));
}

const NAMES = ['2026-11-01T010000Z', '2026-12-01T010000Z', '2026-12-05T010000Z', '2026-12-06T010000Z', '2026-12-06T010000Z-2'];

t.test('prune: refuses without a rule, dry-run removes nothing, then removes what no rule keeps', async (t) => {
  const d = await tmp(t);
  const root = join(d, 'backup');
  const outside = join(d, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'precious'), 'not in the root\n');
  await layout(root, 'snapshot', NAMES, NAMES[1]!, outside);

  const none = await runCli(['prune', '--root', root]);
  t.equal(none.code, 2, 'no keep rule: exit 2');
  t.match(none.stderr, /needs at least one --keep-\* rule/);
  t.equal(readdirSync(join(root, 'snapshots')).length, 10, 'nothing removed');

  const dry = await runCli(['prune', '--root', root, '--keep-last', '2', '--dry-run']);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /would remove {2}2026-11-01T010000Z {2}no rule keeps it/);
  t.match(dry.stdout, /keep {4}2026-12-01T010000Z {2}the published revision/);
  t.match(dry.stdout, /3 kept, 2 would be removed \(dry run: nothing removed\)/);
  t.equal(readdirSync(join(root, 'snapshots')).length, 10, 'dry run removed nothing');

  const real = await runCli(['prune', '--root', root, '--keep-last', '2', '--json']);
  t.equal(real.code, 0, real.stderr);
  const out = JSON.parse(real.stdout) as { removed: string[]; decisions: { name: string; keep: boolean; reasons: string[] }[] };
  t.same(out.removed, ['2026-11-01T010000Z', '2026-12-05T010000Z']);
  t.same(out.decisions.find((x) => x.name === NAMES[4])?.reasons, ['last 2']);
  for (const n of out.removed) {
    t.notOk(existsSync(join(root, 'snapshots', n)), `${n}: tree removed`);
    t.ok(existsSync(join(root, 'snapshots', `${n}.manifest.json`)), `${n}: manifest kept`);
  }
  for (const n of [NAMES[1]!, NAMES[3]!, NAMES[4]!]) t.ok(existsSync(join(root, 'snapshots', n, 'sub', 'f.txt')), `${n} kept`);
  t.ok(existsSync(join(outside, 'precious')), 'a symlink inside a pruned revision was not followed');
  t.equal(readlinkSync(join(root, 'latest')), `snapshots/${NAMES[1]}`, 'latest unchanged');

  const list = await runCli(['revisions', '--root', root]);
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, /2026-11-01T010000Z {2}2026-11-01T01:00:00.000Z {2}1 files, 100 bytes {2}\(pruned\)/);
  t.match(list.stdout, /2026-12-01T010000Z {2}\S+ {2}2 files, 200 bytes {2}\(latest\)/);
});

t.test('prune --min-age protects young revisions; bad values are usage errors', async (t) => {
  const d = await tmp(t);
  const root = join(d, 'pub');
  const now = new Date();
  const young = `${now.toISOString().slice(0, 10)}T000000Z`;
  await layout(root, 'publish', ['2020-01-01T000000Z', '2020-01-02T000000Z', young], young, d);
  const r = await runCli(['prune', '--root', root, '--keep-last', '0', '--min-age', '1000d', '--json']);
  t.equal(r.code, 0, r.stderr);
  t.same((JSON.parse(r.stdout) as { removed: string[] }).removed, ['2020-01-01T000000Z', '2020-01-02T000000Z']);
  const bad = await runCli(['prune', '--root', root, '--keep-within', '7days']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--keep-within needs a duration such as 12h, 7d or 2w, not "7days"/);
});

t.test('publish --rollback: to the previous revision, to a named one, refuses an unknown name', async (t) => {
  const d = await tmp(t);
  const root = join(d, 'site');
  await layout(root, 'publish', NAMES.slice(0, 3), NAMES[2]!, d);
  const back = await runCli(['publish', '--root', root, '--rollback']);
  t.equal(back.code, 0, back.stderr);
  t.equal(back.stdout, `current: ${NAMES[2]} -> ${NAMES[1]}\n`);
  t.equal(readlinkSync(join(root, 'current')), `revisions/${NAMES[1]}`);
  t.ok(lstatSync(join(root, 'current')).isSymbolicLink());

  const named = await runCli(['publish', '--root', root, '--rollback', NAMES[2]!]);
  t.equal(named.code, 0, named.stderr);
  t.equal(readlinkSync(join(root, 'current')), `revisions/${NAMES[2]}`);

  const unknown = await runCli(['publish', '--root', root, '--rollback', '2026-01-01T000000Z']);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /no revision named "2026-01-01T000000Z"/);
  t.equal(readlinkSync(join(root, 'current')), `revisions/${NAMES[2]}`, 'unchanged');
  t.same(readdirSync(root).sort(), ['current', 'revisions'], 'no temp symlink left behind');

  const first = await runCli(['publish', '--root', root, '--rollback', NAMES[0]!]);
  t.equal(first.code, 0, first.stderr);
  const none = await runCli(['publish', '--root', root, '--rollback']);
  t.equal(none.code, 1);
  t.match(none.stderr, /no revision before 2026-11-01T010000Z/);
});

const crossProcessLock = nativeBinding?.flockex ? false : 'the root lock is in-process only without the native addon';
t.test('prune and rollback wait for the root lock a push holds, then give up and change nothing', { skip: crossProcessLock }, async (t) => {
  const d = await tmp(t);
  const root = join(d, 'site');
  await layout(root, 'publish', NAMES.slice(0, 3), NAMES[2]!, d);
  const lock = lockRoot(root);
  t.ok(lock, 'the test holds the lock as a running push would');
  const busy = await runCli(['publish', '--root', root, '--rollback', '--wait', '1']);
  t.equal(busy.code, 1);
  t.match(busy.stderr, /is busy \(a push is running there\); nothing changed/);
  t.equal(readlinkSync(join(root, 'current')), `revisions/${NAMES[2]}`, 'pointer unchanged');
  const pruneBusy = await runCli(['prune', '--root', root, '--keep-last', '1', '--wait', '0']);
  t.equal(pruneBusy.code, 1);
  t.ok(existsSync(join(root, 'revisions', NAMES[0]!)), 'nothing pruned');
  const dry = await runCli(['prune', '--root', root, '--keep-last', '1', '--dry-run', '--wait', '0']);
  t.equal(dry.code, 0, 'a dry run takes no lock');
  lock!.release();
  const back = await runCli(['publish', '--root', root, '--rollback', '--wait', '0']);
  t.equal(back.code, 0, back.stderr);
  t.equal(readlinkSync(join(root, 'current')), `revisions/${NAMES[1]}`);
});

t.test('--config FILE --tenant NAME finds the tenant root', async (t) => {
  const d = await tmp(t);
  await layout(join(d, 'srv', 'acme'), 'snapshot', NAMES.slice(0, 2), NAMES[1]!, d);
  const cfg = join(d, 'rrsyncd.json');
  await writeFile(cfg, JSON.stringify({ root: join(d, 'srv'), stateDir: join(d, 'state'), tenants: [{ name: 'acme', keys: [] }] }));
  const r = await runCli(['revisions', '--config', cfg, '--tenant', 'acme', '--json']);
  t.equal(r.code, 0, r.stderr);
  const inv = JSON.parse(r.stdout) as { mode: string; pointer: string; revisions: unknown[] };
  t.equal(inv.mode, 'snapshot');
  t.equal(inv.pointer, NAMES[1]);
  t.equal(inv.revisions.length, 2);
  const missing = await runCli(['revisions', '--config', cfg, '--tenant', 'nobody']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /no tenant named "nobody"/);
});

t.test('the console previews: revisions TENANT, prune TENANT --dry-run (and only that)', async (t) => {
  const d = await tmp(t);
  const root = join(d, 'acme');
  await layout(root, 'snapshot', NAMES.slice(0, 3), NAMES[2]!, d);
  const log = pino({ level: 'silent' });
  const socket = join(d, 'control.sock');
  const control = await ControlSocket.start(
    socket,
    {
      sessions: () => [],
      kick: () => [],
      reload: () => ({ ok: true, keys: 0, closed: 0 }),
      tenants: () => [{ name: 'acme', root, sessions: 0 }],
      usage: () => [],
      follow: () => () => undefined,
    },
    log,
  );
  t.teardown(() => control.close());
  const input = new PassThrough();
  const output = new PassThrough();
  let screen = '';
  output.on('data', (c: Buffer) => (screen += c.toString()));
  const done = runConsole({ socket, who: 'test', idleTimeoutMs: 60_000, input, output });
  const waitFor = async (re: RegExp) => {
    for (let i = 0; i < 200 && !re.test(screen); i++) await new Promise((r) => setTimeout(r, 50));
    return re.test(screen);
  };
  input.write('revisions acme\n');
  t.ok(await waitFor(/2026-12-05T010000Z {2}\S+ {2}3 files, 300 bytes {2}\(latest\)/), 'revisions listed');
  input.write('prune acme --keep-last 1\n');
  t.ok(await waitFor(/the console only previews/), 'a real prune is refused');
  input.write('prune acme --dry-run --keep-last 1\n');
  t.ok(await waitFor(/1 kept, 2 would be removed \(dry run: nothing removed\)/), 'the preview');
  input.write('exit\n');
  t.equal(await done, 0);
  t.equal(readdirSync(join(root, 'snapshots')).length, 6, 'nothing removed');
});
