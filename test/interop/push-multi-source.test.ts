// Several sources that share directory names, in one push: with incremental recursion the sender
// numbers every directory it lists, duplicates included, and sends a sub-list for each.
import t from 'tap';
import { engineTransport, newCase, file, PROTOCOLS, type Transport } from './lib/interop.js';
import { compareRun as runAndCompare } from './push-opts.helpers.js';

let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});

const tree = () => [file('m1/x/a', 'a\n'), file('m1/x/y/deep', 'deep 1\n'), file('m2/x/b', 'b\n'), file('m2/x/y/deeper', 'deep 2\n'), file('m2/top', 't\n')];

for (const proto of PROTOCOLS) {
  t.test(`m1/ m2/ into one destination, protocol ${proto}`, async (t) => {
    const c = await newCase(t, tr, 'push', tree());
    await runAndCompare(t, c, ['-a', '-i', `--protocol=${proto}`], { srcs: ['src/m1/', 'src/m2/'] });
  });
}

t.test('-R of a directory and a file inside it', async (t) => {
  const c = await newCase(t, tr, 'push', tree());
  // with -R the destination dir itself is not in the list: its mtime is when each run made it
  await runAndCompare(t, c, ['-aR', '-i'], { srcs: ['src/./m1', 'src/./m1/x/a'], compare: { ignoreRootMtime: true } });
});

t.test('m1/ m2/ with --delete into an existing destination', async (t) => {
  const c = await newCase(t, tr, 'push', tree());
  await c.seedDst([file('x/a', 'old a\n'), file('x/stale', 's\n'), file('x/y/gone', 'g\n')]);
  await runAndCompare(t, c, ['-a', '-i', '--delete'], { srcs: ['src/m1/', 'src/m2/'] });
});
