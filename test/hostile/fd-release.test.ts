/**
 * Every descriptor a receiving session opens is released however the session ends, and the two
 * halves of the role stop together before the session closes its sandbox. The engine runs in this
 * process, so its descriptors are ours: /proc/self/fd must be back where it started after many
 * failing pushes of each kind.
 */
import t from 'tap';
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { arena, dirEntry, fileEntry, HostileClient, type Arena } from './client.js';
import { PUSH, PUSH_INC } from './harness.js';

const BIG = 24 * 1024 * 1024;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

async function settle(): Promise<void> {
  // closeInBackground() closes on the thread pool: give it a few turns.
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 5));
}

function plantBasis(a: Arena): void {
  mkdirSync(join(a.root, 'dst'), { recursive: true });
  writeFileSync(join(a.root, 'dst', 'big'), Buffer.alloc(BIG, 'b'));
  utimesSync(join(a.root, 'dst', 'big'), 1_000_000, 1_000_000);
}

type Kind = (c: HostileClient) => Promise<void>;

/** name, server args, grant, rounds, the client's part. */
const kinds: Array<[string, string[], Record<string, unknown>, number, Kind]> = [
  [
    // The generator is summing the 24 MiB basis when the receiving half reads a bad index.
    'the receiving half fails while the generator sums a large basis',
    PUSH_INC,
    {},
    12,
    async (c) => {
      c.sendWholeList([dirEntry('.'), fileEntry('big', BIG)]);
      c.w.ndx(999_999);
      c.w.flush();
    },
  ],
  [
    // A transfer is under way (basis and temp file open) when the client goes away.
    'the client goes away in the middle of a file',
    PUSH,
    {},
    4,
    async (c) => {
      c.sendWholeList([dirEntry('.'), fileEntry('big', BIG)]);
      const req = await c.nextRequest();
      if (req.kind !== 'transfer') throw new Error(`expected a transfer request, got ${req.kind}`);
      c.replyHeader(req);
      c.w.flush();
      c.end();
    },
  ],
  [
    // The generator fails (quota) while the receiving half waits for the client.
    'the generator fails while the receiving half waits for input',
    PUSH_INC,
    { limits: { allowDevices: false, allowChown: true, quotaFiles: 2 } },
    6,
    async (c) => {
      c.sendWholeList([dirEntry('.'), dirEntry('d1'), dirEntry('d2'), dirEntry('d3'), fileEntry('big', BIG)], { flistEof: false });
    },
  ],
];

t.test('descriptors of failing pushes are all released', async (t) => {
  if (process.env.HOSTILE_SPAWN === '1') return t.test('in-process engine', { skip: 'HOSTILE_SPAWN=1 runs the engine in a child process' }, () => {});
  const a = arena('hostile-fds-');
  t.teardown(() => a.cleanup());
  plantBasis(a);
  for (const [name, args, grant, rounds, script] of kinds) {
    await t.test(name, async (t) => {
      const once = async (): Promise<number | null> => {
        const c = await HostileClient.start({ root: a.root, args, grant, mode: 'inproc' });
        try {
          await c.handshake();
          await script(c);
        } catch {
          // the server may stop reading early
        }
        const o = await c.finish({ deadlineMs: 15000, closeAfterMs: 3000 });
        t.notOk(o.hung, 'the session ended');
        t.notOk(o.crashed, 'no crash', { stderr: o.stderr.slice(0, 1000) });
        return o.exitCode;
      };
      await once(); // warm-up: lazily opened descriptors (native addon, hash modules) stay open
      await settle();
      const before = openFds();
      const codes = new Set<number | null>();
      for (let i = 0; i < rounds; i++) codes.add(await once());
      await settle();
      const after = openFds();
      t.notOk(codes.has(0), `every round failed (exit codes ${[...codes].join(', ')})`);
      t.ok(after <= before, `open descriptors: ${before} before ${rounds} failing pushes, ${after} after`);
    });
  }
});
