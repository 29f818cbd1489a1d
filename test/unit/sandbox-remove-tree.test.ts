// Removing whole trees (staging, old revisions, pruned ones): the event loop keeps running during
// the removal, symlinks inside are removed and never followed, deep trees hold few descriptors.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { Sandbox } from '../../src/sandbox/sandbox.js';
import { discardStaging, openStaging } from '../../src/revisions/staging.js';
import { countTurns, tmpDir } from './sandbox-helpers.js';

const silent = pino({ level: 'silent' });
const DIRS = 40;
const FILES_PER_DIR = 500;

/** Files outside the root that a followed symlink would reach. */
function outsideTree(t: Parameters<typeof tmpDir>[0]): { dir: string; files: string[] } {
  const dir = tmpDir(t, 'sbx-outside-');
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'keep'), 'outside');
  fs.writeFileSync(path.join(dir, 'sub', 'keep2'), 'outside');
  return { dir, files: ['keep', 'sub/keep2'] };
}

function descriptorCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

t.test('discarding a big staging revision lets the event loop run, follows no symlink', async (t) => {
  const root = tmpDir(t);
  const outside = outsideTree(t);
  const sandbox = Sandbox.open(root);
  t.teardown(() => sandbox.close());
  const staged = openStaging(sandbox, 'snapshot', new Date(Date.UTC(2026, 11, 7, 12, 0, 0)));
  const top = path.join(root, staged.stagingRel);
  for (let d = 0; d < DIRS; d++) {
    const dir = path.join(top, `d${d}`);
    fs.mkdirSync(dir);
    for (let f = 0; f < FILES_PER_DIR; f++) fs.writeFileSync(path.join(dir, `f${f}`), '');
  }
  fs.symlinkSync(outside.dir, path.join(top, 'abs-link'));
  fs.symlinkSync(path.join(outside.dir, 'sub'), path.join(top, 'd0', 'abs-sub-link'));
  fs.symlinkSync('../../../../' + path.basename(outside.dir), path.join(top, 'd1', 'rel-link'));
  const entries = DIRS * (FILES_PER_DIR + 1) + 3;

  const { turns, probed } = await countTurns(
    () => discardStaging(sandbox, staged, silent),
    () => fs.existsSync(top),
  );
  t.comment(`${entries} entries removed over ${turns} event-loop turns (${probed} of them with the tree still there)`);
  t.notOk(fs.existsSync(top), 'the staging tree is gone');
  t.ok(turns >= 40, `the event loop ran ${turns} times during the removal`);
  t.ok(probed >= 40, `other work ran ${probed} times while the tree was being removed`);
  for (const f of outside.files) t.equal(fs.readFileSync(path.join(outside.dir, f), 'utf8'), 'outside', `outside ${f} survives`);
  t.same(fs.readdirSync(path.join(root, '.rrsyncd-staging')), [], 'nothing else left in the staging place');
});

for (const dirCacheSize of [64, 0]) {
  t.test(`a tree deeper than the directory cache (cache ${dirCacheSize}), sync and yielding`, async (t) => {
    const root = tmpDir(t);
    const outside = outsideTree(t);
    const sandbox = Sandbox.open(root, { dirCacheSize });
    t.teardown(() => sandbox.close());
    const depth = 200;
    for (const name of ['sync', 'yielding']) {
      let dir = path.join(root, name);
      for (let i = 0; i < depth; i++) {
        fs.mkdirSync(dir);
        fs.writeFileSync(path.join(dir, 'f'), 'x');
        dir = path.join(dir, 'd');
      }
      fs.symlinkSync(outside.dir, dir);
    }
    const before = descriptorCount();
    sandbox.removeTree('sync');
    t.notOk(fs.existsSync(path.join(root, 'sync')), 'sync: gone');
    let most = 0;
    const { turns } = await countTurns(
      () => sandbox.removeTreeYielding('yielding'),
      () => {
        most = Math.max(most, descriptorCount());
        return true;
      },
    );
    t.notOk(fs.existsSync(path.join(root, 'yielding')), 'yielding: gone');
    t.ok(turns >= 1, 'it yielded');
    // the directory cache, plus at most 16 open listings
    t.ok(most - before <= dirCacheSize + 20, `descriptors held while removing ${depth} levels: ${most - before} more`);
    t.ok(descriptorCount() <= before + dirCacheSize, 'descriptors given back (the cache keeps at most its size)');
    for (const f of outside.files) t.equal(fs.readFileSync(path.join(outside.dir, f), 'utf8'), 'outside', `outside ${f} survives`);
  });
}

t.test('removeTreeYielding: a missing path, a file, a symlink; never the root; a closed sandbox refuses', async (t) => {
  const root = tmpDir(t);
  const outside = outsideTree(t);
  const sandbox = Sandbox.open(root);
  fs.writeFileSync(path.join(root, 'file'), 'x');
  fs.symlinkSync(outside.dir, path.join(root, 'link'));
  fs.mkdirSync(path.join(root, 'dir'));
  await sandbox.removeTreeYielding('missing/deeper');
  await sandbox.removeTreeYielding('file/x');
  await sandbox.removeTreeYielding('file');
  await sandbox.removeTreeYielding('link');
  t.same(fs.readdirSync(root), ['dir']);
  t.ok(fs.existsSync(path.join(outside.dir, 'keep')), 'the symlink went, not its target');
  fs.symlinkSync(outside.dir, path.join(root, 'link2'));
  await t.rejects(sandbox.removeTreeYielding('link2/sub'), { code: 'ELOOP' }, 'a symlink in the parent chain is not followed');
  t.ok(fs.existsSync(path.join(outside.dir, 'sub', 'keep2')));
  fs.unlinkSync(path.join(root, 'link2'));
  await t.rejects(sandbox.removeTreeYielding(''), { code: 'EINVAL' });
  sandbox.close();
  await t.rejects(sandbox.removeTreeYielding('dir'), { code: 'EBADF' });
  t.ok(fs.existsSync(path.join(root, 'dir')));
});
