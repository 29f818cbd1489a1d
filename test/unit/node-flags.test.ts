import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

// The V8 heap flags that production starts use: each way of starting the server must pass the
// same ones, and node must accept them (a misspelt flag makes node refuse to start at all).
const repo = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const read = (rel: string): string => readFileSync(join(repo, rel), 'utf8');

function shebangFlags(): string[] {
  const m = /^#!\/usr\/bin\/env -S node((?: --[\w-]+=\w+)*)\n/.exec(read('bin/rrsyncd.js'));
  if (!m) throw new Error('bin/rrsyncd.js has no `#!/usr/bin/env -S node FLAGS` line');
  return m[1]!.trim().split(' ').filter(Boolean);
}

/** The node flags between `node` and the script in a command line. */
function flagsBefore(script: string, words: string[]): string[] {
  const at = words.findIndex((w) => w.endsWith(script));
  const node = words.findIndex((w) => w === 'node' || w.endsWith('/node'));
  if (at < 0 || node < 0 || node > at) throw new Error(`no "node … ${script}" in ${JSON.stringify(words)}`);
  return words.slice(node + 1, at);
}

t.test('the shebang, npm start, the systemd unit and the Dockerfile pass the same node flags', async (t) => {
  const flags = shebangFlags();
  t.ok(flags.some((f) => f.startsWith('--max-semi-space-size=')), `young generation capped: ${flags.join(' ')}`);
  t.ok(flags.some((f) => f.startsWith('--initial-old-space-size=')), 'old generation starts with room');

  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  t.same(flagsBefore('bin/rrsyncd.js', pkg.scripts.start!.split(' ')), flags, 'npm start');

  const execStart = /^ExecStart=(.*)$/m.exec(read('systemd/rrsyncd.service'));
  t.ok(execStart, 'the unit has an ExecStart');
  t.same(flagsBefore('bin/rrsyncd.js', execStart![1]!.split(' ')), flags, 'systemd ExecStart');

  const entry = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'));
  t.ok(entry, 'the Dockerfile has an exec-form ENTRYPOINT');
  t.same(flagsBefore('bin/rrsyncd.js', JSON.parse(entry![1]!) as string[]), flags, 'Dockerfile ENTRYPOINT');
});

t.test('node starts with those flags', async (t) => {
  const r = spawnSync(process.execPath, [...shebangFlags(), '-e', 'process.stdout.write("up")'], { encoding: 'utf8' });
  t.equal(r.stderr, '', 'no complaint about an option');
  t.equal(r.status, 0);
  t.equal(r.stdout, 'up');
});
