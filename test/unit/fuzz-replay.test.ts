/**
 * Replays every fuzz corpus entry and every saved crash (fuzz/corpus/<target>/,
 * fuzz/crashes/<target>/) through its target: each must end normally or with a clean rsync-style
 * rejection, quickly, with no allocation over the fuzz limit. Crashes kept for bugs not fixed yet
 * are listed in fuzz/crashes/open.json and reported as todo.
 */
import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { listInputs } from '../../fuzz/engine.js';
import { installAllocationGuard, isCleanRejection } from '../../fuzz/harness.js';
import { TARGETS } from '../../fuzz/targets/index.js';
import { initChecksums } from '../../src/protocol/checksum.js';
import { initCompression } from '../../src/protocol/token.js';
import { hashWasmBinaries } from '../../src/patches/hash-wasm.js';

const FUZZ = new URL('../../fuzz/', import.meta.url);
const OPEN = new URL('crashes/open.json', FUZZ);
const open: Record<string, string> = existsSync(OPEN) ? (JSON.parse(readFileSync(OPEN, 'utf8')) as Record<string, string>) : {};
/** Generous: the slowest corpus input takes a few ms; a loaded CI machine gets 100x. */
const MAX_MS_PER_INPUT = 2000;

await Promise.all([initChecksums(hashWasmBinaries()), initCompression()]);
installAllocationGuard();

for (const target of TARGETS) {
  t.test(target.name, async (t) => {
    let replayed = 0;
    for (const kind of ['corpus', 'crashes'] as const) {
      const dir = new URL(`${kind}/${target.name}/`, FUZZ);
      for (const file of listInputs(dir.pathname)) {
        const data = readFileSync(new URL(file, dir));
        const known = open[`${target.name}/${file}`];
        const started = performance.now();
        let failure: unknown = null;
        try {
          await target.run(data);
        } catch (err) {
          if (!isCleanRejection(err)) failure = err;
        }
        const ms = performance.now() - started;
        replayed++;
        if (known) {
          t.ok(failure === null, `${kind}/${file} (open: ${known})`, { todo: known });
          continue;
        }
        if (failure !== null) t.fail(`${kind}/${file}: ${(failure as Error).stack ?? String(failure)}`);
        if (ms > MAX_MS_PER_INPUT) t.fail(`${kind}/${file} took ${ms.toFixed(0)} ms`);
      }
    }
    t.ok(replayed > 0, `${replayed} inputs replayed`);
  });
}
