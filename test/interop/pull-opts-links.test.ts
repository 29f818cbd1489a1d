// Symlink options on the sending side: -l, -L/--copy-links, -k/--copy-dirlinks,
// --copy-unsafe-links, --safe-links, -K.
//
// 1. Against a stock server: policy refuses -L/-k/--copy-unsafe-links unless the grant root is
//    '/', so these cases use a '/' grant and pull the case dir by its path below '/'.
// 2. Confinement below a real root (engine level, the walker directly): following resolves the
//    target with sandbox calls only; targets outside the root are never followed (-L/-k: the link
//    is sent as a link; --copy-unsafe-links: skipped with an error, exit 23); loops are bounded.
import t, { type Test } from 'tap';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { run } from '../helpers/server.js';
import { engineTransport, newCase, file, dir, slink, setTime, type Transport, type Case, type Runs } from './lib/interop.js';
import { defaultServerOptions } from '../../src/policy/options.js';
import { defaultGrant } from '../../src/policy/grant.js';
import { ProtocolWriter } from '../../src/protocol/output.js';
import { ProtocolReader } from '../../src/protocol/input.js';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { isDir, isRegular, isSymlink } from '../../src/protocol/flist/entry.js';
import { SenderWalker } from '../../src/engine/sender/walk.js';
import { resolveInRoot } from '../../src/engine/sender/resolve.js';
import { physOf, type SEntry } from '../../src/engine/sender/entry.js';
import type { SessionContext } from '../../src/engine/context.js';
import { SessionResources } from '../../src/engine/resources.js';
import { DEFAULT_SESSION_MEMORY, MemoryBudget } from '../../src/engine/budget.js';
import type { ServerOptions } from '../../src/policy/server-options.js';
import { PassThrough } from 'node:stream';
import { tmpDir } from '../unit/sandbox-helpers.js';

const D = 'pull';
let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

// ---------------------------------------------------------------------------------------------
// 1. Compared with a stock server (grant root '/')

const linkTree = () => [
  file('real.txt', 'real\n'),
  file('realdir/inner.txt', 'inner\n'),
  dir('realdir/sub'),
  file('realdir/sub/deep.txt', 'deep\n'),
  slink('in-link', 'real.txt'),
  slink('dir-link', 'realdir'),
  slink('sub/up-in', '../real.txt'),
  slink('sub/up-dir', '../realdir/sub'),
  slink('chain1', 'chain2'),
  slink('chain2', 'realdir/inner.txt'),
  slink('dangling', 'nothing-here'),
  slink('up-out', '../outside.txt'),
  slink('sub/up-out-dir', '../../outside-dir'),
];

/** Absolute links to a file outside the tree, and the outside files both copies' links reach. */
async function addOutside(c: Case): Promise<void> {
  const when = { sec: 1_600_000_000, nsec: 0 };
  for (const base of [c.remoteRoot, c.localBase]) {
    await writeFile(join(base, 'outside.txt'), 'outside\n');
    await setTime(Buffer.from(join(base, 'outside.txt')), when);
    await mkdir(join(base, 'outside-dir'), { recursive: true });
    await writeFile(join(base, 'outside-dir', 'o.txt'), 'o\n');
    await setTime(Buffer.from(join(base, 'outside-dir', 'o.txt')), when);
    await setTime(Buffer.from(join(base, 'outside-dir')), when);
  }
  await writeFile(join(c.dir, 'abs-target.txt'), 'absolute\n');
  await setTime(Buffer.from(join(c.dir, 'abs-target.txt')), when);
  await symlink(join(c.dir, 'abs-target.txt'), join(c.src, 'abs-link'));
  for (const p of [join(c.src, 'abs-link'), c.src]) await run('touch', ['-h', '-d', '@1600000000', p]);
}

async function runSlash(t: Tap, c: Case, args: string[], dst: string, expectCode?: number, cmp: object = {}): Promise<Runs> {
  const remoteSrc = `${c.remoteRoot.replace(/^\/+/, '')}/src/`;
  await c.syncSources();
  const remote = await c.runRemote(args, { srcs: [remoteSrc], dst, grant: { root: '/' }, keepSources: true });
  const local = await c.runLocal(args, { dst, keepSources: true });
  const r: Runs = { remote, local, remoteArgs: remote.args, localArgs: local.args };
  c.sameExit(t, r, expectCode);
  const norm = (s: string) =>
    s
      .split('\n')
      .filter((l) => /^[<>ch.*][fdLDS]/.test(l))
      .sort();
  t.same(norm(remote.stdout), norm(local.stdout), `${args.join(' ')}: itemized changes match`, c.describe(r));
  const times = args.includes('-a') || args.includes('-t');
  await c.compare(t, times ? cmp : { ignoreMtimes: true }, dst.replace(/\/$/, ''));
  return r;
}

type Tap = Test;

const SETS: Array<[string[], number]> = [
  [['-a', '-i'], 0],
  [['-a', '-i', '-L'], 23],
  [['-a', '-i', '-L', '--no-i-r'], 23],
  [['-a', '-i', '-k'], 0],
  [['-a', '-i', '--copy-unsafe-links'], 0],
  [['-a', '-i', '--copy-unsafe-links', '--protocol=29'], 0],
  [['-a', '-i', '--safe-links'], 0],
  [['-r', '-i', '-L', '--protocol=30'], 23],
  [['-a', '-i', '--no-l'], 0],
];

t.test('grant root "/": symlink options behave like a stock server', async (t) => {
  const c = await newCase(t, tr, D, linkTree());
  await addOutside(c);
  for (const [i, [args, code]] of SETS.entries()) {
    await runSlash(t, c, args, `dst${i}/`, code);
  }
  // -K keeps a receiver-side symlinked dir (the receiver's business; the sender just sends the dir)
  await c.seedDst([dir('elsewhere'), slink('realdir', 'elsewhere')], 'dstK');
  await runSlash(t, c, ['-a', '-i', '-K'], 'dstK/', 0, { ignoreDirMtimes: true });
});

t.test('grant root "/": -L / --copy-unsafe-links with -R and implied dirs through a symlinked dir', async (t) => {
  const c = await newCase(t, tr, D, linkTree());
  await addOutside(c);
  const remoteSrc = `${c.remoteRoot.replace(/^\/+/, '')}/src/./dir-link/sub`;
  await c.syncSources();
  for (const [i, args] of [['-a', '-i', '-R'], ['-a', '-i', '-R', '-L'], ['-a', '-i', '-R', '--no-i-r']].entries()) {
    const dst = `rel${i}/`;
    const remote = await c.runRemote(args, { srcs: [remoteSrc], dst, grant: { root: '/' }, keepSources: true });
    const local = await c.runLocal(args, { srcs: ['src/./dir-link/sub'], dst, keepSources: true });
    c.sameExit(t, { remote, local, remoteArgs: remote.args, localArgs: local.args });
    await c.compare(t, { ignoreRoot: true }, dst.replace(/\/$/, ''));
  }
});

// ---------------------------------------------------------------------------------------------
// 2. Confinement below a real root: the walker, directly

interface Harness {
  root: string;
  walker: SenderWalker;
  messages: () => string;
}

function harness(t: Tap, root: string, opts: Partial<ServerOptions>, inc = false): Harness {
  const sandbox = Sandbox.open(root);
  t.teardown(() => sandbox.close());
  const out: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (b: Buffer) => out.push(b));
  const writer = new ProtocolWriter(sink);
  writer.protocol = 32;
  writer.setMultiplexed(true);
  const o: ServerOptions = { ...defaultServerOptions(), sender: true, recursive: true, links: true, ...opts };
  const ctx: SessionContext = {
    protocol: 32,
    compatFlags: 0,
    seed: 1,
    xferSum: { name: 'md5', protocol: 32, seed: 1, seedFix: true, negotiated: true } as never,
    fileSum: { name: 'md5', protocol: 32, seed: 1, seedFix: true, negotiated: true } as never,
    compress: 'none',
    compressLevel: undefined,
    opts: o,
    grant: defaultGrant(root),
    sandbox,
    gateway: new Gateway(sandbox),
    reader: new ProtocolReader(new PassThrough()),
    writer,
    log: pino({ level: 'silent' }),
    resources: new SessionResources(),
    budget: new MemoryBudget(DEFAULT_SESSION_MEMORY),
    ioError: 0,
    hadTransferError: false,
  };
  const walker = new SenderWalker(ctx, { inc, filters: undefined, setMergeDir: () => {} });
  return {
    root,
    walker,
    messages: () => {
      writer.flush();
      const all = Buffer.concat(out);
      const texts: string[] = [];
      for (let p = 0; p + 4 <= all.length; ) {
        const h = all.readUInt32LE(p);
        const len = h & 0xffffff;
        texts.push(all.subarray(p + 4, p + 4 + len).toString('latin1'));
        p += 4 + len;
      }
      return texts.join('');
    },
  };
}

async function confinedTree(t: Tap): Promise<string> {
  const top = tmpDir(t, 'rrsyncd-links-');
  const root = join(top, 'root');
  await mkdir(join(root, 'src/realdir/sub'), { recursive: true });
  await mkdir(join(top, 'outside-dir'), { recursive: true });
  await writeFile(join(top, 'secret.txt'), 'secret\n');
  await writeFile(join(top, 'outside-dir/o.txt'), 'o\n');
  await writeFile(join(root, 'src/real.txt'), 'real\n');
  await writeFile(join(root, 'src/realdir/inner.txt'), 'inner\n');
  await writeFile(join(root, 'other.txt'), 'in root, outside the transfer\n');
  await symlink('real.txt', join(root, 'src/in-link'));
  await symlink('realdir', join(root, 'src/dir-link'));
  await symlink('../other.txt', join(root, 'src/up-in-root')); // unsafe for the transfer, inside the root
  await symlink('../../secret.txt', join(root, 'src/escape-rel'));
  await symlink(join(top, 'secret.txt'), join(root, 'src/escape-abs'));
  await symlink('../../outside-dir', join(root, 'src/escape-dir'));
  await symlink('realdir/../../../secret.txt', join(root, 'src/escape-sneaky'));
  await symlink('.', join(root, 'src/realdir/loop'));
  await symlink('loop2', join(root, 'src/loop1'));
  await symlink('loop1', join(root, 'src/loop2'));
  return root;
}

const byName = (list: SEntry[]) => new Map(list.map((e) => [e.name, e]));

t.test('resolveInRoot: in-root targets resolve; escapes, absolute targets and loops do not', async (t) => {
  const root = await confinedTree(t);
  const sb = Sandbox.open(root);
  t.teardown(() => sb.close());
  const ok = (rel: string) => {
    const r = resolveInRoot(sb, rel, false);
    return r.kind === 'ok' ? r.rel : r.kind;
  };
  t.equal(ok('src/in-link'), 'src/real.txt');
  t.equal(ok('src/dir-link'), 'src/realdir');
  t.equal(ok('src/dir-link/inner.txt'), 'src/realdir/inner.txt');
  t.equal(ok('src/up-in-root'), 'other.txt');
  t.equal(ok('src/realdir/loop/loop/loop/inner.txt'), 'src/realdir/inner.txt');
  t.equal(ok('src/escape-rel'), 'escape');
  t.equal(ok('src/escape-abs'), 'escape');
  t.equal(ok('src/escape-dir'), 'escape');
  t.equal(ok('src/escape-sneaky'), 'escape');
  t.equal(ok('src/loop1'), 'loop');
  t.equal(ok('src/nothing'), 'missing');
  t.equal(ok('src/real.txt/x'), 'missing');
});

t.test('-L below a root: in-root links followed, escaping links sent as links, loops bounded', async (t) => {
  const root = await confinedTree(t);
  for (const inc of [false, true]) {
    const h = harness(t, root, { copyLinks: true }, inc);
    let list = h.walker.buildFirstList(['src/'], null);
    if (inc) {
      // walk every sub-list too (register each list's dirs, then take the next directory)
      const all = [...list];
      h.walker.registerList(list, null);
      let guard = 0;
      for (let node = h.walker.nextDir(); node && guard < 100; node = h.walker.nextDir(), guard++) {
        const sub = h.walker.buildSubList(node);
        all.push(...sub);
        h.walker.registerList(sub, node);
      }
      t.ok(guard < 100, 'the walk ends');
      list = all;
    }
    const m = byName(list);
    t.ok(isRegular(m.get('in-link')!), `inc=${inc}: in-link is sent as the file`);
    t.equal(physOf(m.get('in-link')!), 'src/real.txt', 'its data is read from the target');
    t.ok(isDir(m.get('dir-link')!), 'dir-link is sent as a directory');
    t.ok(m.has('dir-link/inner.txt'), 'and its contents are listed');
    t.equal(physOf(m.get('dir-link/inner.txt')!), 'src/realdir/inner.txt');
    t.ok(isRegular(m.get('up-in-root')!), 'a link leaving the transfer but not the root is followed');
    for (const n of ['escape-rel', 'escape-abs', 'escape-dir', 'escape-sneaky']) {
      t.ok(isSymlink(m.get(n)!), `${n}: not followed, sent as a symlink`);
    }
    t.notOk([...m.keys()].some((n) => n.includes('o.txt') || n.includes('secret')), 'nothing outside the root is listed');
    const loops = [...m.keys()].filter((n) => n.includes('loop/loop/loop/loop'));
    t.same(loops, [], 'a directory loop is not descended forever');
    t.match(h.messages(), /symlink loop|Too many levels|no referent/, 'loops are reported');
  }
});

t.test('--copy-unsafe-links below a root: unsafe in-root links copied, escaping ones skipped with an error', async (t) => {
  const root = await confinedTree(t);
  const h = harness(t, root, { copyUnsafeLinks: true });
  const m = byName(h.walker.buildFirstList(['src/'], null));
  t.ok(isSymlink(m.get('in-link')!), 'a safe link stays a link');
  t.ok(isSymlink(m.get('dir-link')!), 'a safe dir link stays a link');
  t.ok(isRegular(m.get('up-in-root')!), 'an unsafe link inside the root is copied as its file');
  t.equal(physOf(m.get('up-in-root')!), 'other.txt');
  for (const n of ['escape-rel', 'escape-abs', 'escape-dir', 'escape-sneaky']) t.notOk(m.has(n), `${n}: skipped`);
  t.match(h.messages(), /cannot copy unsafe symlink "escape-abs"/, 'each skip is reported');
  t.equal(h.walker.ioError & 1, 1, 'io_error GENERAL (exit 23, no deletions on the client)');
});

t.test('-k below a root: in-root dir links become dirs; file links and escaping dir links stay links', async (t) => {
  const root = await confinedTree(t);
  const h = harness(t, root, { copyDirlinks: true });
  const m = byName(h.walker.buildFirstList(['src/'], null));
  t.ok(isDir(m.get('dir-link')!), 'dir-link is a directory');
  t.ok(isSymlink(m.get('in-link')!), 'a link to a file stays a link');
  t.ok(isSymlink(m.get('escape-dir')!), 'a dir link leaving the root stays a link');
  t.notOk([...m.keys()].some((n) => n.startsWith('escape-dir/')), 'nothing listed through it');
  t.match(h.messages(), /not descending into "realdir\/loop": symlink loop/, "realdir/loop -> . is reported as a loop, not descended");
});

t.test('plain -l and the default: no link is ever followed; a `dir/` arg through an in-root link is', async (t) => {
  const root = await confinedTree(t);
  const h = harness(t, root, {});
  const m = byName(h.walker.buildFirstList(['src/'], null));
  for (const n of ['in-link', 'dir-link', 'escape-abs', 'escape-dir', 'loop1']) t.ok(isSymlink(m.get(n)!), `${n} is a link`);
  const viaLink = harness(t, root, {});
  const m2 = byName(viaLink.walker.buildFirstList(['src/dir-link/'], null));
  t.ok(m2.has('inner.txt'), 'src/dir-link/ lists the linked dir (rsync follows a dir/ arg)');
  t.equal(physOf(m2.get('inner.txt')!), 'src/realdir/inner.txt');
  const escaping = harness(t, root, {});
  const m3 = escaping.walker.buildFirstList(['src/escape-dir/'], null);
  t.same(m3.filter((e) => e.name !== '.').map((e) => e.name), [], 'src/escape-dir/ lists nothing outside the root');
});
