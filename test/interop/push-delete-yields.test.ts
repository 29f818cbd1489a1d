// A push that deletes a directory of 20 000 files (--delete, or --force where a file takes the
// directory's name) lets the event loop run while it deletes: other sessions in the process are
// served meanwhile. The server runs in this process (test/helpers/inproc-server.ts); every turn
// of the loop looks whether the deletion is under way (its first victim gone, its last still there).
import t from 'tap';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startInprocServer } from '../helpers/inproc-server.js';
import { countTurns } from '../unit/sandbox-helpers.js';
import { defaultGrant } from '../../src/policy/grant.js';

const FILES = 20_000;
const name = (i: number): string => `f${String(i).padStart(5, '0')}`;

// `told`: the "deleting" lines the client prints (before protocol 29 they are MSG_INFO text, of
// which a session shows 10 000); a directory removed to make room is not itself told.
const cases = [
  { title: '--delete of a directory, protocol 32 (during)', args: ['--delete', '--protocol=32'], asFile: false, told: FILES + 1 },
  { title: '--delete-after of a directory, protocol 28', args: ['--delete-after', '--protocol=28'], asFile: false, told: 10_000 },
  { title: '--force: a file replaces a full directory', args: ['--force'], asFile: true, told: FILES },
];

for (const c of cases) {
  t.test(c.title, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rrsyncd-delyield-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const root = join(dir, 'root');
    const src = join(dir, 'src');
    const victim = join(root, 'dst', 'gone');
    mkdirSync(victim, { recursive: true });
    for (let i = 0; i < FILES; i++) writeFileSync(join(victim, name(i)), '');
    mkdirSync(src);
    writeFileSync(join(src, 'kept'), 'kept\n');
    if (c.asFile) writeFileSync(join(src, 'gone'), 'now a file\n');
    const srv = await startInprocServer(dir, { ...defaultGrant(root), noLock: true });
    t.teardown(() => srv.close());

    // delete_dir_contents goes in reverse order: the last name goes first, the first name last.
    const [first, last] = [join(victim, name(FILES - 1)), join(victim, name(0))];
    let result: Awaited<ReturnType<typeof srv.rsync>> | undefined;
    const { probed } = await countTurns(
      async () => {
        result = await srv.rsync(['-rv', ...c.args, `${src}/`, 'x:dst/'], { timeoutMs: 300_000 });
      },
      () => !existsSync(first) && existsSync(last),
    );
    const r = result!;
    t.equal(r.code, 0, r.stderr);
    const deleting = r.stdout.split('\n').filter((l) => l.startsWith('deleting '));
    t.equal(srv.results[0]?.deletions, c.asFile ? FILES : FILES + 1, 'every entry counted as deleted');
    t.equal(deleting.length, c.told, 'deletions told to the client');
    t.equal(deleting[0], `deleting gone/${name(FILES - 1)}`, 'depth first, in reverse order');
    if (c.told > FILES) t.equal(deleting.at(-1), 'deleting gone/', 'the directory last');
    else t.equal(deleting.at(-1), `deleting gone/${name(FILES - c.told)}`, 'in reverse order to the last one told');
    if (c.asFile) t.ok(lstatSync(victim).isFile(), 'a file took its name');
    else t.notOk(existsSync(victim), 'the directory is gone');
    t.ok(existsSync(join(root, 'dst', 'kept')), 'the pushed file landed');
    t.ok(probed >= 20, `the event loop ran ${probed} times while the directory was being deleted`);
  });
}
