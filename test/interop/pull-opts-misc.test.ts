// Pull options on the sending side, each compared with a stock `rsync --server --sender` where a
// reference is possible: -x/-xx, --files-from (protocols 29-32, with and without --from0), -R,
// --append/--append-verify/--inplace against existing data, -z with --skip-compress, --checksum,
// --dry-run, --max-size/--min-size; vanished files (sandbox stub, exit 24); and keep-alives
// (--timeout, the protocol-29 fake request) with a scripted client.
import t from 'tap';
import { rmSync } from 'node:fs';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { engineTransport, newCase, runAndCompare, file, dir, noise, text, stats, PIPE_RSH, REAL_RSH, type Transport, type Case } from './lib/interop.js';
import { run } from '../helpers/server.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { runRsyncSession } from '../../src/engine/session.js';
import { defaultGrant } from '../../src/policy/grant.js';
import { tmpDir } from '../unit/sandbox-helpers.js';

const D = 'pull';
let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const tree = () => [
  file('a.txt', 'hello\n'),
  file('b.gz', noise(20_000, 3)),
  file('c.txt', text(400)),
  file('d1/e.txt', 'e\n'),
  file('d1/d2/f.txt', 'f\n'),
  file('d1/d2/g.bin', noise(3000, 9)),
  file('h/i j.txt', 'spaces\n'),
  file('big.bin', noise(300_000, 5)),
  dir('emptydir'),
];

async function sideFile(c: Case, name: string, data: string | Buffer): Promise<void> {
  await writeFile(join(c.dir, name), data);
  await writeFile(join(c.localBase, name), data);
}

// ---- --files-from --------------------------------------------------------------------------

for (const p of [29, 30, 31, 32]) {
  t.test(`--files-from --protocol=${p}: newline list, --from0 list, -r with a dir name`, async (t) => {
    const c = await newCase(t, tr, D, tree());
    const names = ['a.txt', 'd1/d2/f.txt', 'h/', '/c.txt', 'b.gz', 'missing.txt', 'emptydir', 'd1/./e.txt'];
    await sideFile(c, 'list.txt', `${names.join('\n')}\n`);
    await sideFile(c, 'list0.txt', `${names.join('\0')}\0`);
    await sideFile(c, 'dirs.txt', 'd1\nh/i j.txt\n');
    const compare = { ignoreRoot: true };
    await runAndCompare(t, c, ['-a', '-i', '--files-from=list.txt', `--protocol=${p}`], { dst: 'f1/', expectCode: 23, compare });
    await runAndCompare(t, c, ['-a', '-i', '--from0', '--files-from=list0.txt', `--protocol=${p}`], { dst: 'f2/', expectCode: 23, compare });
    await runAndCompare(t, c, ['-a', '-i', '-r', '--files-from=dirs.txt', `--protocol=${p}`], { dst: 'f3/', expectCode: 0, compare });
    await runAndCompare(t, c, ['-a', '-i', '--no-R', '--files-from=dirs.txt', `--protocol=${p}`], { dst: 'f4/', expectCode: 0, compare });
  });
}

// ---- -R ------------------------------------------------------------------------------------

for (const extra of [[], ['--no-i-r'], ['--protocol=29'], ['--protocol=30']]) {
  t.test(`-R ${extra.join(' ')}: /./ anchors, implied dirs shared between args`, async (t) => {
    const c = await newCase(t, tr, D, tree());
    await runAndCompare(t, c, ['-a', '-i', '-R', ...extra], { srcs: ['src/./d1/d2/f.txt', 'src/./d1/e.txt', 'src/h', 'src/./d1/d2/g.bin'], dst: 'r1/', expectCode: 0 });
    await runAndCompare(t, c, ['-a', '-i', '-R', ...extra], { srcs: ['src/d1/./d2', 'src/./emptydir'], dst: 'r2/', expectCode: 0 });
    const l = await c.run(['-r', '-R', '--list-only', ...extra], { srcs: ['src/./d1/d2'], dst: null });
    c.sameExit(t, l, 0);
    t.same(l.remote.stdout.split('\n'), l.local.stdout.split('\n'), '-R --list-only output identical');
  });
}

// ---- transfer options against existing destination data ----------------------------------

t.test('--append / --append-verify / --inplace against existing data (protocols 29 and 32)', async (t) => {
  const base = noise(200_000, 11);
  const c = await newCase(t, tr, D, [file('grow.bin', base), file('same-prefix.txt', text(300)), file('changed.bin', base), file('shrunk.txt', 'short\n'), file('new.txt', 'new\n')]);
  const seed = [
    file('grow.bin', base.subarray(0, 120_000)),
    file('same-prefix.txt', text(100)),
    file('changed.bin', Buffer.concat([Buffer.from('DIFFERENT HEAD'), base.subarray(14, 90_000)])),
    file('shrunk.txt', 'a much longer destination file\n'),
  ];
  for (const p of [29, 32]) {
    for (const [name, args] of [
      ['append', ['--append']],
      ['append-verify', ['--append-verify']],
      ['inplace', ['--inplace', '--no-W']],
    ] as const) {
      const dst = `${name}-${p}`;
      await c.seedDst(seed, dst);
      const r = await runAndCompare(t, c, ['-a', '-i', '--stats', ...args, `--protocol=${p}`], { dst: `${dst}/`, expectCode: 0 });
      const s = stats(r.remote.stdout);
      const ls = stats(r.local.stdout);
      t.equal(s['Literal data'], ls['Literal data'], `${name} p${p}: literal data as from a stock server`);
      t.equal(s['Matched data'], ls['Matched data'], `${name} p${p}: matched data as from a stock server`);
    }
  }
});

t.test('-z with --skip-compress, --compress-choice, --checksum, --dry-run, --max-size/--min-size', async (t) => {
  const c = await newCase(t, tr, D, tree());
  await c.seedDst([file('a.txt', 'HELLO\n', { mtime: null }), file('c.txt', text(400))]);
  const sets: string[][] = [
    ['-z'],
    ['-z', '--skip-compress=txt/bin'],
    ['--compress-choice=zstd', '--skip-compress=gz'],
    ['--compress-choice=zlibx', '--protocol=30'],
    ['-c'],
    ['-c', '--protocol=28'],
    ['-n'],
    ['-n', '--protocol=29'],
    ['--max-size=5K', '--min-size=3'],
  ];
  for (const [i, args] of sets.entries()) {
    const dst = `o${i}`;
    await c.seedDst([file('a.txt', 'HELLO\n', { mtime: { sec: 1_600_000_000 } }), file('c.txt', text(399), { mtime: { sec: 1_600_000_000 } })], dst);
    const r = await runAndCompare(t, c, ['-a', '-i', '--stats', ...args], { dst: `${dst}/`, expectCode: 0 });
    const s = stats(r.remote.stdout);
    const ls = stats(r.local.stdout);
    t.equal(s['Number of regular files transferred'], ls['Number of regular files transferred'], `${args.join(' ')}: same files transferred`);
  }
});

// exclude.c parse_filter_file(): the 33rd nested merge file is refused where it was named, by
// where (never by its name or content), and the sender exits with 11 (RERR_FILEIO) while it
// builds its file list, with nothing of it written: a stock client over a remote shell reports
// 12 (connection closed) at every protocol, and so does ours (no MSG_ERROR_EXIT).
for (const p of [29, 31, 32]) {
  t.test(`a merge file nested past the depth limit: rsync's words, exit 12 (--protocol=${p})`, async (t) => {
    const c = await newCase(t, tr, D, [file('file.txt', 'hello\n'), file('.merge', '. .merge\n')]);
    const r = await c.run(['-a', '--filter=: .merge', `--protocol=${p}`]);
    t.equal(r.remote.code, 12, c.describe(r));
    t.not(r.local.code, 0, 'the reference fails too');
    const nesting = (s: string): string | undefined =>
      /\[sender\] merge-file include depth limit \(32\) exceeded at <rule from ((?:a file named at ){31})\S*\.merge line 1>/.exec(s)?.[1];
    t.ok(nesting(r.remote.stderr), 'the message and where', c.describe(r));
    t.equal(nesting(r.remote.stderr), nesting(r.local.stderr), 'as the reference says it');
    t.notOk(r.remote.stderr.includes(c.dir), 'no server path shown');
  });
}

t.test('--checksum picks a same-size, same-mtime file whose content differs', async (t) => {
  const when = { sec: 1_600_000_000, nsec: 0 };
  const c = await newCase(t, tr, D, [file('x.txt', 'content A\n', { mtime: when }), file('y.txt', 'same\n', { mtime: when })]);
  await c.seedDst([file('x.txt', 'content B\n', { mtime: when }), file('y.txt', 'same\n', { mtime: when })]);
  const plain = await runAndCompare(t, c, ['-a', '-i'], { keepSources: false, expectCode: 0, dst: 'dst/' });
  t.notMatch(plain.remote.stdout, /x\.txt/, 'quick check: same size and time, not sent');
  const r = await runAndCompare(t, c, ['-a', '-i', '-c'], { expectCode: 0 });
  t.match(r.remote.stdout, />fc.* x\.txt/, '-c: sent because the flist checksum differs');
});

// Sandbox stubs need the engine in this process (not RRSYNCD_IT_TRANSPORT=pipe).
const ENGINE_ONLY = { skip: process.env.RRSYNCD_IT_TRANSPORT === 'pipe' ? 'needs the in-process engine' : false };

// ---- -x / --one-file-system ------------------------------------------------------------------

const canUnshare = (await run('unshare', ['-rm', 'true'])).code === 0;
t.test('-x / -xx: a tmpfs mounted inside the source (in a private mount namespace)', { skip: canUnshare ? false : 'unshare -rm is not available here' }, async (t) => {
  const c = await newCase(t, tr, D, tree());
  const script = join(c.dir, 'xtest.sh');
  await writeFile(
    script,
    `#!/bin/bash
set -u
cd '${c.dir}'
mkdir -p root/src/d1/mnt l/src/d1/mnt
for s in root/src l/src; do
  cp -a src/. $s/
  mount -t tmpfs none $s/d1/mnt
  mkdir $s/d1/mnt/inner; echo m > $s/d1/mnt/inner/m; echo m2 > $s/d1/mnt/m2
  touch -d @1600000000 $s/d1/mnt/inner/m $s/d1/mnt/m2 $s/d1/mnt/inner $s/d1/mnt $s/d1
done
for args in "-aix" "-aixx" "-aix --no-i-r" "-aixx --protocol=29" "-aix --protocol=30" "-ai"; do
  rm -rf dst l/dst
  RRSYNCD_TEST_ROOT='${c.dir}/root' rsync $args -e '${PIPE_RSH}' x:src/ dst/ > out.txt 2>&1; rc=$?
  (cd l && rsync $args -e '${REAL_RSH}' x:src/ dst/ > ../ref.txt 2>&1); rrc=$?
  echo "args=$args rc=$rc ref=$rrc"
  diff <(cd dst && find . -mindepth 1 -printf '%p %y %m %s %T@\\n' | sort) <(cd l/dst && find . -mindepth 1 -printf '%p %y %m %s %T@\\n' | sort) >/dev/null && echo "tree=same" || echo "tree=DIFFERENT"
  diff <(grep '^[.ch>c][fdL]' out.txt | sort) <(grep '^[.ch>c][fdL]' ref.txt | sort) >/dev/null && echo "itemize=same" || echo "itemize=DIFFERENT"
  grep -c 'mnt/m2' out.txt | sed 's/^/m2lines=/'
done
umount root/src/d1/mnt l/src/d1/mnt
`,
  );
  await chmod(script, 0o755);
  const r = await run('unshare', ['-rm', 'bash', script], { timeoutMs: 120_000 });
  t.equal(r.code, 0, 'script ran', { stderr: r.stderr });
  const blocks = r.stdout.split('args=').slice(1);
  t.equal(blocks.length, 6, 'six runs', { stdout: r.stdout });
  for (const b of blocks) {
    const name = b.split(' rc=')[0];
    t.match(b, /rc=0 ref=0/, `${name}: exit 0 like the reference`);
    t.match(b, /tree=same/, `${name}: same tree as the reference`, { out: b });
    t.match(b, /itemize=same/, `${name}: same itemized output`);
    if (name.includes('x')) t.match(b, /m2lines=0/, `${name}: nothing from inside the mount`);
    else t.match(b, /m2lines=1/, `${name}: without -x the mount's contents come along`);
  }
});

// ---- vanished files (sandbox stub; engine in this process) ----------------------------------

t.test('files vanishing during the walk or before the transfer: warning, exit 24, the rest transferred', ENGINE_ONLY, async (t) => {
  const origOpen = Sandbox.prototype.openRead;
  const origLstat = Sandbox.prototype.lstat;
  const origLstatChildren = Sandbox.prototype.lstatChildren;
  t.teardown(() => {
    Sandbox.prototype.openRead = origOpen;
    Sandbox.prototype.lstat = origLstat;
    Sandbox.prototype.lstatChildren = origLstatChildren;
  });
  Sandbox.prototype.openRead = function (this: Sandbox, rel: string, expect?: { dev: number; ino: number }) {
    if (rel.endsWith('vanish-at-open')) rmSync(join(this.rootPath, rel), { force: true });
    return origOpen.call(this, rel, expect);
  };
  // Gone between readdir and lstat: the walk lstats a directory's entries in one batch.
  Sandbox.prototype.lstat = function (this: Sandbox, rel: string) {
    if (rel.endsWith('vanish-at-walk')) rmSync(join(this.rootPath, rel), { force: true });
    return origLstat.call(this, rel);
  };
  Sandbox.prototype.lstatChildren = function (this: Sandbox, relDir: string, names: readonly string[]) {
    if (names.includes('vanish-at-walk')) rmSync(join(this.rootPath, relDir, 'vanish-at-walk'), { force: true });
    return origLstatChildren.call(this, relDir, names);
  };
  const nodes = [...tree(), file('vanish-at-open', 'gone\n'), file('d1/d2/vanish-at-walk', 'gone\n'), file('d1/vanish-at-open', 'gone\n')];
  for (const args of [['-a', '-i'], ['-a', '-i', '--protocol=29'], ['-a', '-i', '--no-i-r'], ['-a', '-i', '--protocol=30']]) {
    const c = await newCase(t, tr, D, nodes);
    const remote = await c.runRemote(args);
    t.equal(remote.code, 24, `${args.join(' ')}: exit 24`, { stdout: remote.stdout, stderr: remote.stderr });
    const all = remote.stdout + remote.stderr;
    t.match(all, /file has vanished: "src\/vanish-at-open"/, 'vanished before the transfer');
    t.match(all, /file has vanished: "src\/d1\/vanish-at-open"/, 'vanished before the transfer, in a sub-list');
    t.match(all, /file has vanished: "src\/d1\/d2\/vanish-at-walk"/, 'vanished during the walk');
    // The reference, run on a source without those files, ends with the same tree.
    for (const rel of ['vanish-at-open', 'd1/d2/vanish-at-walk', 'd1/vanish-at-open']) await rm(join(c.src, rel));
    const local = await c.runLocal(args);
    t.equal(local.code, 0, 'reference ran');
    // (removing the files touched the reference's source dirs; our dirs keep their listed times)
    await c.compare(t, { ignoreDirMtimes: true });
  }
});

t.test('an unreadable directory in a sub-list: error, io_error on the list end, no deletions, exit 23', ENGINE_ONLY, async (t) => {
  const { SandboxError } = await import('../../src/sandbox/errors.js');
  const orig = Sandbox.prototype.readdir;
  t.teardown(() => {
    Sandbox.prototype.readdir = orig;
  });
  Sandbox.prototype.readdir = function (this: Sandbox, rel: string) {
    if (rel.endsWith('d1/d2')) throw new SandboxError('EACCES', rel, 'readdir failed: EACCES');
    return orig.call(this, rel);
  };
  for (const args of [['-a', '-i', '--delete'], ['-a', '-i', '--delete', '--protocol=30'], ['-a', '-i', '--delete', '--protocol=29']]) {
    const c = await newCase(t, tr, D, tree());
    await c.seedDst([file('stale.txt', 'old\n'), file('d1/d2/stale2', 'old\n')]);
    const r = await c.runRemote(args);
    t.equal(r.code, 23, `${args.join(' ')}: exit 23`, { stdout: r.stdout, stderr: r.stderr });
    t.match(r.stdout + r.stderr, /opendir "src\/d1\/d2" failed: Permission denied \(13\)/, 'the error is reported');
    t.match(r.stdout + r.stderr, /IO error encountered -- skipping file deletion/, 'the client saw the io_error and deleted nothing');
    const snap = await c.snapshot();
    t.ok(snap.entries.has('d1/d2/stale2'), 'stale file in the unreadable dir kept');
    // With incremental recursion "." was handled (and cleaned) before d1/d2's list reported the error.
    if (args.includes('--protocol=29')) t.ok(snap.entries.has('stale.txt'), 'one list: nothing deleted anywhere');
    t.ok(snap.entries.has('big.bin') && snap.entries.has('d1/e.txt'), 'everything else transferred');
  }
});

// ---- keep-alives with a scripted client -------------------------------------------------------

interface Scripted {
  write(b: Buffer): void;
  /** Server output frames so far: [tag, payload]. */
  frames(): Array<[number, Buffer]>;
  /** Raw (pre-multiplex) bytes consumed so far. */
  raw: number;
  done: Promise<number>;
}

function scriptedSession(root: string, argv: string[]): Scripted {
  const input = new PassThrough();
  const output = new PassThrough();
  const stderr = new PassThrough();
  const chunks: Buffer[] = [];
  output.on('data', (b: Buffer) => chunks.push(b));
  stderr.resume();
  const done = runRsyncSession({ input, output, stderr }, { argv, grant: defaultGrant(root), log: pino({ level: 'silent' }) }).then((r) => r.exitCode);
  const s: Scripted = {
    raw: 0,
    write: (b) => input.write(b),
    frames: () => {
      const all = Buffer.concat(chunks).subarray(s.raw);
      const out: Array<[number, Buffer]> = [];
      for (let p = 0; p + 4 <= all.length; ) {
        const h = all.readUInt32LE(p);
        const len = h & 0xffffff;
        if (p + 4 + len > all.length) break;
        out.push([(h >>> 24) - 7, all.subarray(p + 4, p + 4 + len)]);
        p += 4 + len;
      }
      return out;
    },
    done,
  };
  return s;
}

const i32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
};
const u16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v, 0);
  return b;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const emptyData = (f: Array<[number, Buffer]>) => f.filter(([tag, p]) => tag === 0 && p.length === 0).length;

t.test('protocol 29: the fake keep-alive request is answered; --timeout=4 sends keep-alives while idle', async (t) => {
  const root = tmpDir(t, 'rrsyncd-ka-');
  await writeFile(join(root, 'a'), 'a\n');
  const s = scriptedSession(root, ['rsync', '--server', '--sender', '-r', '--timeout=4', '.', '.']);
  s.write(i32(29)); // protocol version
  s.raw = 8; // server: version + checksum seed (no compat flags below 30)
  s.write(i32(0)); // empty filter list
  await sleep(300);
  const before = emptyData(s.frames());
  // list: "." and "a" (count 2): ndx 2 with ITEM_IS_NEW is the keep-alive
  s.write(Buffer.concat([i32(2), u16(0x2000)]));
  await sleep(200);
  t.equal(emptyData(s.frames()), before + 1, 'fake request answered with one empty MSG_DATA');
  await sleep(2600);
  t.ok(emptyData(s.frames()) >= before + 2, `idle: a keep-alive after timeout/2 (${emptyData(s.frames()) - before - 1})`);
  for (let i = 0; i < 4; i++) s.write(i32(-1)); // phase 1, phase 2, end, goodbye
  t.equal(await s.done, 0, 'session ends normally');
});

t.test('--timeout=2: a client that goes silent is dropped with exit 30 (io timeout)', async (t) => {
  const root = tmpDir(t, 'rrsyncd-to-');
  await writeFile(join(root, 'a'), 'a\n');
  const s = scriptedSession(root, ['rsync', '--server', '--sender', '-r', '--timeout=2', '.', '.']);
  s.write(i32(29));
  s.raw = 8;
  s.write(i32(0));
  const t0 = Date.now();
  t.equal(await s.done, 30, 'exit 30');
  // Loose: only a hang (no timeout at all) must fail, never a loaded machine.
  t.ok(Date.now() - t0 < 30_000, 'ends long before the test would time out');
});

t.test('protocol 31: --timeout keep-alives, MSG_NOOP from a 3.0-style client is accepted', async (t) => {
  const root = tmpDir(t, 'rrsyncd-ka31-');
  await writeFile(join(root, 'a'), 'a\n');
  const s = scriptedSession(root, ['rsync', '--server', '--sender', '-r', '--timeout=4', '.', '.']);
  const frame = (tag: number, p: Buffer) => {
    const h = Buffer.alloc(4);
    h.writeUInt32LE((((tag + 7) << 24) | p.length) >>> 0, 0);
    return Buffer.concat([h, p]);
  };
  s.write(i32(31));
  s.raw = 4 + 1 + 4; // version, compat flags varint (one byte without the 'e' letters), seed
  s.write(frame(0, i32(0))); // filter list end, multiplexed from 30
  await sleep(300);
  t.ok(s.frames().some(([tag, p]) => tag === 0 && p.length > 0), 'file list sent');
  s.write(frame(42, Buffer.alloc(0))); // MSG_NOOP
  const before = emptyData(s.frames());
  await sleep(2600);
  t.ok(emptyData(s.frames()) >= before + 1, 'idle sender: empty MSG_DATA keep-alive');
  // phase 1, phase 2, end of requests, goodbye, final goodbye (proto >= 31)
  s.write(frame(0, Buffer.from([0, 0, 0])));
  await sleep(100);
  s.write(frame(0, Buffer.from([0])));
  await sleep(100);
  s.write(frame(0, Buffer.from([0])));
  t.equal(await s.done, 0, 'session ends normally');
});
