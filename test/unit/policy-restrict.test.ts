import t from 'tap';
import { applyGrant } from '../../src/policy/restrict.js';
import { parseProtectedArgs, parseServerArgs } from '../../src/policy/options.js';
import { defaultGrant, type Grant } from '../../src/policy/grant.js';
import type { ServerOptions } from '../../src/policy/server-options.js';

const sub = defaultGrant('/srv/alice');
const slash = defaultGrant('/');

function grantWith(extra: Partial<Grant>): Grant {
  return { ...sub, ...extra };
}

function run(command: string, grant: Grant = sub): ServerOptions {
  return applyGrant(parseServerArgs(command.split(' ')), grant);
}

function refused(option: string): { name: string; code: number; message: string } {
  return { name: 'RsyncError', code: 1, message: `rrsyncd: option --${option} is not allowed here` };
}

const PUSH = 'rsync --server -vlogDtpre.iLsfxCIvu';
const PULL = 'rsync --server --sender -vlogDtpre.iLsfxCIvu';

t.test('ordinary pushes and pulls pass the default allow-list', async (t) => {
  const push = run(`${PUSH} --delete-after --partial-dir .rsync-partial --link-dest /snap --compress-level=9 --info=SKIP2 --log-format=%i . dst/`);
  t.equal(push.deleteTiming, 'after');
  t.notOk(push.mungeLinks);
  const pull = run(`${PULL} --files-from=- --from0 . src/`);
  t.equal(pull.filesFrom, '-');
  t.ok(run('rsync --server -g -l -o -p -D -r -t -v --dirs --relative --ignore-non-existing --backup --suffix .old . /p').dirs);
  t.ok(run(`${PUSH} -B4096 -@-1 -yC --no-W --inplace --no-implied-dirs . /`).inplace);
  t.same(run(`${PULL} . /`).args, ['/'], 'args are checked but not rewritten');
});

t.test('-ro and -wo direction checks', async (t) => {
  const ro = grantWith({ readOnly: true });
  t.ok(run(`${PULL} . src/`, ro).sender);
  t.throws(() => run(`${PUSH} . dst/`, ro), { code: 1, message: /read-only/ });
  t.throws(() => run('rsync --server --sender -g -l -r --delete-before . src/', ro), refused('delete-before'));
  const wo = grantWith({ writeOnly: true });
  t.ok(run(`${PUSH} . dst/`, wo));
  t.throws(() => run(`${PULL} . src/`, wo), { code: 1, message: /write-only/ });
  t.throws(() => run(`${PUSH} --sender . dst/`, wo), { code: 1, message: /write-only/ });
});

t.test('-no-del refuses every delete and remove option', async (t) => {
  const noDel = grantWith({ noDelete: true });
  t.ok(run(`${PUSH} . dst/`, noDel));
  for (const opt of ['delete', 'delete-before', 'delete-during', 'delete-delay', 'delete-after', 'delete-excluded',
    'delete-missing-args', 'remove-source-files', 'remove-sent-files']) {
    t.throws(() => run(`${PUSH} --${opt} . dst/`, noDel), refused(opt));
  }
  t.throws(() => run(`${PUSH} --del . dst/`, noDel), refused('delete'));
  t.ok(run(`${PUSH} --delete . dst/`).deleteMode, 'allowed without -no-del');
});

t.test('-no-overwrite forces --ignore-existing and refuses options that replace files', async (t) => {
  const g = grantWith({ noOverwrite: true });
  const o = run(`${PUSH} . dst/`, g);
  t.ok(o.ignoreExisting);
  t.throws(() => run(`${PUSH} --partial-dir .p . dst/`, g), refused('partial-dir'));
  t.throws(() => run(`${PUSH} --delay-updates . dst/`, g), refused('delay-updates'));
  t.throws(() => run(`${PUSH} --backup-dir bak . dst/`, g), refused('backup-dir'));
  t.throws(() => run('rsync --server -blogDtpr . dst/', g), refused('backup'), 'short -b uses the long name');
  t.notOk(run(`${PUSH} . dst/`).ignoreExisting);
});

t.test('-munge forces --munge-links; --no-munge-links is always refused', async (t) => {
  t.ok(run(`${PUSH} . dst/`, grantWith({ munge: true })).mungeLinks);
  t.throws(() => run(`${PUSH} --no-munge-links . dst/`, slash), refused('no-munge-links'));
});

t.test('symlink-following options are refused below a subdirectory root', async (t) => {
  t.throws(() => run('rsync --server --sender -lLogDtpr . src/'), refused('copy-links'));
  t.throws(() => run('rsync --server --sender -lkogDtpr . src/'), refused('copy-dirlinks'));
  t.throws(() => run('rsync --server -lKogDtpr . dst/'), refused('keep-dirlinks'));
  t.throws(() => run(`${PUSH} --copy-unsafe-links . dst/`), refused('copy-unsafe-links'));
  t.ok(run('rsync --server --sender -lLogDtpr . src/', slash).copyLinks);
  t.ok(run('rsync --server -lKogDtpr . dst/', defaultGrant('//')).keepDirlinks);
});

t.test('always-refused options', async (t) => {
  for (const [cmd, name] of [
    ['rsync --server --daemon .', 'daemon'],
    [`${PULL} --copy-devices . src/`, 'copy-devices'],
    [`${PUSH} --inplace --write-devices . dst/`, 'write-devices'],
    [`${PUSH} --debug=FILTER . dst/`, 'debug'],
    [`${PUSH} --only-write-batch=x . dst/`, 'only-write-batch'],
    [`${PUSH} --read-batch=x . dst/`, 'read-batch'],
    [`${PUSH} --write-batch=x . dst/`, 'write-batch'],
    [`${PUSH} --log-file=/tmp/x . dst/`, 'log-file'],
  ] as const) {
    t.throws(() => run(cmd, slash), refused(name), name);
    t.throws(() => run(cmd, grantWith({ extraAllowedOptions: [name] })), refused(name), `${name} even if extra-allowed`);
  }
  t.throws(() => run(`${PUSH} --files-from /remote/ff.txt . dst/`), { code: 1, message: /--files-from is not allowed/ });
});

t.test('options outside rrsync\'s table are refused unless extra-allowed', async (t) => {
  t.throws(() => run('rsync --server -ar . dst/'), refused('archive'));
  t.throws(() => run(`${PUSH} --no-perms . dst/`), refused('no-perms'));
  t.ok(run(`${PUSH} --no-perms . dst/`, grantWith({ extraAllowedOptions: ['no-perms'] })));
  t.throws(() => run(`${PUSH} --inplace . dst/`, grantWith({ deniedOptions: ['inplace'] })), refused('inplace'));
  t.throws(() => run('rsync --server -vlogDtpre.iLsfxCIvu . dst/', grantWith({ deniedOptions: ['owner'] })), refused('owner'));
});

t.test('unsupported features: ACLs, xattrs, iconv', async (t) => {
  t.throws(() => run('rsync --server -logDtpAre.iLsfxCIvu . dst/', slash), { code: 1, message: 'rsync: ACLs are not supported on this server' });
  t.throws(() => run('rsync --server -logDtpXre.iLsfxCIvu . dst/', slash), {
    code: 1,
    message: 'rsync: extended attributes are not supported on this server',
  });
  t.throws(() => run(`${PUSH} --iconv=latin1 . dst/`, slash), { code: 1, message: /iconv is not supported/ });
});

t.test('--fake-super (e.g. from -M--fake-super) is refused like -X, in both directions', async (t) => {
  const message = 'rsync: --fake-super requires an rsync with extended attributes enabled';
  t.throws(() => run(`${PUSH} --fake-super . dst/`, slash), { code: 1, message });
  t.throws(() => run(`${PULL} --fake-super . src/`, slash), { code: 1, message });
});

t.test('client-named paths are confined', async (t) => {
  t.throws(() => run(`${PUSH} . ../x`), { code: 1, message: 'rrsyncd: path "../x" is outside the allowed directory (argument)' });
  t.throws(() => run(`${PULL} . a/../../b`), { code: 1, message: /outside the allowed directory \(argument\)/ });
  t.throws(() => run(`${PUSH} --partial-dir ../p . dst/`), { code: 1, message: /\(--partial-dir\)/ });
  t.throws(() => run(`${PUSH} --backup-dir=x/../.. . dst/`), { code: 1, message: /\(--backup-dir\)/ });
  t.throws(() => run(`${PUSH} --temp-dir /../tmp . dst/`), { code: 1, message: /\(--temp-dir\)/ });
  t.throws(() => run(`${PUSH} --link-dest=../snap . dst/`), { code: 1, message: /\(--link-dest\)/ });
  t.throws(() => run(`${PUSH} --compare-dest=.. . dst/`), { code: 1, message: /\(--compare-dest\)/ });
  t.throws(() => run(`${PUSH} --copy-dest=../c . dst/`), { code: 1, message: /\(--copy-dest\)/ });
  t.same(run(`${PULL} . /etc/passwd`).args, ['/etc/passwd'], 'absolute args stay; the engine maps them root-relative');
});

t.test('protected args are re-checked after they are read', async (t) => {
  const base = applyGrant(parseServerArgs(['rsync', '--server', '-slogDtpre.iLsfxCIvu']), sub);
  t.ok(base.protectArgs);
  const ok = applyGrant(parseProtectedArgs(base, ['rsync', '--delete', '.', 'dst with space/']), sub);
  t.same(ok.args, ['dst with space/']);
  t.throws(() => applyGrant(parseProtectedArgs(base, ['rsync', '--delete', '.', 'x']), grantWith({ noDelete: true })), refused('delete'));
  t.throws(() => applyGrant(parseProtectedArgs(base, ['rsync', '.', '../x']), sub), { code: 1, message: /outside/ });
  t.throws(() => applyGrant(parseProtectedArgs(base, ['rsync', '--log-file=/x', '.', 'x']), sub), refused('log-file'));
});

t.test('link-following options below a root need an explicit opt-in', async (t) => {
  const pull = parseServerArgs(['rsync', '--server', '--sender', '-Llogtpre.iLsfxCIvu', '.', 'src/']);
  t.throws(() => applyGrant(pull, sub), /option --copy-links is not allowed here/);
  const optedIn = grantWith({ extraAllowedOptions: ['copy-links'] });
  t.equal(applyGrant(pull, optedIn).copyLinks, true, 'extraAllowedOptions re-enables --copy-links');
  const k = parseServerArgs(['rsync', '--server', '--sender', '-klogtpre.iLsfxCIvu', '.', 'src/']);
  t.throws(() => applyGrant(k, optedIn), /--copy-dirlinks/, 'only the named option is re-enabled');
});
