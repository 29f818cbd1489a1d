/**
 * The generator's block sums of a basis are streamed (generator.c generate_and_send_sums): with a
 * client that does not read them, the generator waits with the basis open and its memory stays
 * flat (4 million sums, 32 MiB, are never held at once; a 1 MiB session budget suffices). What
 * stays in use meanwhile is a fixed set of buffers: the writer's frames (up to 16 × 384 KiB), the
 * client's unread input (4 MiB), the basis read buffer (1 MiB); hence the 20 MiB bound. A
 * basis that shrinks or grows while it is being read still gets exactly the announced number
 * of sums (the rest of a shrunk one as zeros, as rsync's map_ptr), so the stream stays in step
 * and the push completes.
 */
import t, { type Test } from 'tap';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, readlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { dirEntry, EXIT, fileEntry, type HostileClient, type TransferRequest } from './client.js';
import { PUSH, runCase } from './harness.js';
import { collectBlockSums } from '../helpers/block-sums.js';
import { noise } from '../interop/lib/interop.js';
import type { SumHead } from '../../src/protocol/sumhead.js';

const SIZE = 32 * 1024 * 1024;
/** -B8: 4 million blocks, 32 MiB of sums; -B12: 1 MiB reads end inside a block. */
const SMALL_BLOCK = 8;
const ODD_BLOCK = 12;
const MiB = 1024 * 1024;
const BASIS = noise(SIZE, 7);
const NEW = noise(SIZE, 8);

/** Whether this process has `path` open. */
function isOpen(path: string): boolean {
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** External memory (buffers) in use, after a full collection. */
function buffersInUse(): number {
  gc();
  return process.memoryUsage().arrayBuffers;
}

/**
 * Waits until the generator has the basis open, then watches it for `ms` while the client reads
 * nothing: whether the basis is still open then (the generator waits in the middle of its sums)
 * and the most external memory in use (after gc) seen above `baseline`.
 */
async function watchBlocked(path: string, baseline: number, ms: number): Promise<{ open: boolean; peak: number }> {
  const until = Date.now() + 60_000;
  while (!isOpen(path)) {
    if (Date.now() > until) throw new Error('the generator never opened the basis');
    await sleep(5);
  }
  let peak = 0;
  for (const end = Date.now() + ms; Date.now() < end; ) {
    await sleep(100);
    peak = Math.max(peak, buffersInUse() - baseline);
  }
  return { open: isOpen(path), peak };
}

/** The wire records (int32 sum1, s2length bytes of sum2) of every block of `data` under head. */
function records(c: HostileClient, head: SumHead, data: Buffer): Buffer {
  const sums = collectBlockSums(head, c.xferSum, [data]);
  const rec = 4 + head.s2length;
  const out = Buffer.alloc(head.count * rec);
  for (let i = 0; i < head.count; i++) {
    out.writeUInt32LE(sums.sum1[i], i * rec);
    sums.sum2.copy(out, i * rec + 4, i * head.s2length, (i + 1) * head.s2length);
  }
  return out;
}

/** The index of the first block whose record differs between a and b (count if none). */
function firstDiff(a: Buffer, b: Buffer, rec: number): number {
  for (let i = 0; i * rec < a.length; i++) if (a.compare(b, i * rec, (i + 1) * rec, i * rec, (i + 1) * rec) !== 0) return i;
  return a.length / rec;
}

interface Seen {
  req?: TransferRequest;
  open?: boolean;
  peak?: number;
  sums?: number;
}

/**
 * A push of `big` (new content) onto a basis of other content: blocks the generator by not
 * reading, calls `meanwhile` with the basis path, then serves the transfer as a real sender.
 */
function pushOntoBasis(label: string, version: number, block: number, meanwhile: (basis: string) => void, check: (t: Test, seen: Seen, c: HostileClient) => void): void {
  t.test(label, async (t) => {
    const seen: Seen = {};
    let client: HostileClient | undefined;
    await runCase(
      t,
      {
        args: [...PUSH.slice(0, 2), `-B${block}`, ...PUSH.slice(2)],
        handshake: { version },
        grant: { limits: { allowDevices: false, allowChown: false, memoryBytes: MiB } },
        prepare: (a) => {
          mkdirSync(join(a.root, 'dst'));
          writeFileSync(join(a.root, 'dst', 'big'), BASIS);
          utimesSync(join(a.root, 'dst', 'big'), 1000, 1000);
        },
        finish: { deadlineMs: 120_000 },
      },
      async (c, a) => {
        client = c;
        const basis = join(a.root, 'dst', 'big');
        const baseline = buffersInUse();
        c.sendWholeList([dirEntry('.'), fileEntry('big', SIZE)]);
        const w = await watchBlocked(basis, baseline, 600);
        seen.open = w.open;
        seen.peak = w.peak;
        meanwhile(basis);
        await c.serveRequests(() => NEW, {
          reply: (req) => {
            seen.req = req;
            seen.sums = req.sums.length / (4 + req.head.s2length);
            return false;
          },
        });
      },
      {
        code: EXIT.OK,
        maxMs: 120_000,
        verify: (t, a) => t.ok(readFileSync(join(a.root, 'dst', 'big')).equals(NEW), 'the pushed file arrived whole'),
      },
    );
    // Checked here, not in the script: a failing script only shows in runCase's diagnostics.
    if (seen.req && client) check(t, seen, client);
    else t.fail('the server sent no transfer request for big');
  });
}

pushOntoBasis('a client not reading: the generator waits with the basis open, memory flat', 32, SMALL_BLOCK, () => undefined, (t, seen, c) => {
  const head = seen.req!.head;
  t.equal(head.count, SIZE / SMALL_BLOCK, `${head.count} blocks`);
  t.equal(seen.open, true, 'the generator waits in the middle of the basis (its sums are written as they are made)');
  const total = head.count * (4 + head.s2length);
  t.ok(seen.peak! < 20 * MiB, `external memory grew by ${(seen.peak! / MiB).toFixed(1)} MiB while ${(total / MiB).toFixed(1)} MiB of sums were due (1 MiB session budget)`);
  t.equal(firstDiff(seen.req!.sums, records(c, head, BASIS), 4 + head.s2length), head.count, 'every sum is that of the basis block');
});

pushOntoBasis('the basis shrinks while the generator reads it', 32, ODD_BLOCK, (basis) => truncateSync(basis, 0), (t, seen, c) => {
  const head = seen.req!.head;
  const rec = 4 + head.s2length;
  t.equal(seen.open, true, 'the basis was truncated in the middle of the generator reading it');
  t.equal(seen.sums, head.count, 'exactly count sums follow the head');
  const got = seen.req!.sums;
  const k = firstDiff(got, records(c, head, BASIS), rec);
  t.ok(k > 0 && k < head.count, `blocks before ${k} are the original's, later ones not`);
  const zeros = records(c, head, Buffer.alloc(SIZE));
  // Block k may hold both (a read that ended inside it); every block after it reads as zeros.
  t.equal(k + 1 + firstDiff(got.subarray((k + 1) * rec), zeros.subarray((k + 1) * rec), rec), head.count, 'the rest are sums of zeros (map_ptr)');
});

pushOntoBasis('protocol 29: the basis grows while the generator reads it', 29, ODD_BLOCK, (basis) => appendFileSync(basis, noise(3 * MiB, 9)), (t, seen, c) => {
  const head = seen.req!.head;
  t.equal(seen.open, true, 'the basis grew in the middle of the generator reading it');
  t.equal(seen.sums, head.count, 'exactly count sums follow the head');
  t.equal(firstDiff(seen.req!.sums, records(c, head, BASIS), 4 + head.s2length), head.count, 'the sums are those of the basis as stat\'ed (what was added is not read)');
});

t.test('a redo (failed verification) gets the full-length sums of its basis, streamed the same way', async (t) => {
  const size = 4 * MiB + 5;
  const basis = noise(size, 11);
  const data = noise(size, 12);
  const heads: SumHead[] = [];
  let redoSums: Buffer | undefined;
  let expected: Buffer | undefined;
  await runCase(
    t,
    {
      args: [...PUSH.slice(0, 2), '-B64', ...PUSH.slice(2)],
      prepare: (a) => {
        mkdirSync(join(a.root, 'dst'));
        writeFileSync(join(a.root, 'dst', 'big'), basis);
        utimesSync(join(a.root, 'dst', 'big'), 1000, 1000);
      },
      finish: { deadlineMs: 60_000 },
    },
    async (c) => {
      c.sendWholeList([dirEntry('.'), fileEntry('big', size)]);
      await c.serveRequests(() => data, {
        reply: (req) => {
          heads.push(req.head);
          if (heads.length > 1) {
            redoSums = req.sums;
            expected = records(c, req.head, basis);
            return false;
          }
          // The whole file as literal data, with a wrong file checksum: the receiver asks again.
          c.replyHeader(req);
          const enc = c.tokenEncoder();
          enc.beginFile();
          enc.literal(data);
          enc.endFile();
          c.w.bytes(c.digest(data).map((b) => b ^ 0xff));
          return true;
        },
      });
    },
    {
      code: EXIT.OK,
      verify: (t, a) => t.ok(readFileSync(join(a.root, 'dst', 'big')).equals(data), 'the redo delivered the file'),
    },
  );
  t.equal(heads.length, 2, 'the file was requested twice');
  t.equal(heads[1]?.s2length, 16, 'the redo asks with full-length (16-byte) strong sums');
  t.equal(heads[1]?.count, heads[0]?.count, `both requests cover the ${heads[0]?.count} blocks`);
  t.ok(redoSums !== undefined && expected !== undefined && redoSums.equals(expected), 'the redo sums are those of the basis');
});
