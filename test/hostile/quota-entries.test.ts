/**
 * Quotas count every kind of entry the gateway makes, not only regular files: symlinks are
 * names (entry quota) and their targets are bytes (byte quota). Before the gateway charged them,
 * any number of symlinks with long targets fit under any quota.
 */
import t from 'tap';
import { dirEntry, EXIT, linkEntry } from './client.js';
import { snapshotTreeSync } from '../helpers/tree.js';
import { PUSH, runCase } from './harness.js';

const limits = (extra: Record<string, number>) => ({ limits: { allowDevices: false, allowChown: true, ...extra } });

function usage(root: string): { bytes: number; entries: number } {
  let bytes = 0;
  let entries = 0;
  for (const [rel, e] of snapshotTreeSync(root).entries) {
    if (rel === '' || rel === '.') continue; // the root itself is not charged
    entries++;
    if (e.type !== 'dir') bytes += e.size;
  }
  return { bytes, entries };
}

t.test('entry quota: 50 symlinks pushed against a quota of 20 entries', (t) =>
  runCase(
    t,
    { args: PUSH, grant: limits({ quotaFiles: 20 }) },
    (c) => {
      c.sendWholeList([dirEntry('.'), ...Array.from({ length: 50 }, (_, i) => linkEntry(`l${i}`, `target-${i}`))]);
    },
    { code: 11, error: /quota exceeded/, verify: (t, a) => t.ok(usage(a.root).entries <= 20, `root holds ${usage(a.root).entries} entries`) },
  ).then(() => undefined),
);

t.test('byte quota: 30 symlinks with 1000-byte targets against a quota of 10000 bytes', (t) =>
  runCase(
    t,
    { args: PUSH, grant: limits({ quotaBytes: 10_000 }) },
    (c) => {
      c.sendWholeList([dirEntry('.'), ...Array.from({ length: 30 }, (_, i) => linkEntry(`l${i}`, `${'t'.repeat(990)}-${String(i).padStart(4, '0')}`))]);
    },
    { code: 11, error: /quota exceeded/, verify: (t, a) => t.ok(usage(a.root).bytes <= 10_000, `root holds ${usage(a.root).bytes} bytes`) },
  ).then(() => undefined),
);

t.test('a push under the quota is not refused', (t) =>
  runCase(
    t,
    { args: PUSH, grant: limits({ quotaFiles: 20, quotaBytes: 10_000 }) },
    async (c) => {
      c.sendWholeList([dirEntry('.'), ...Array.from({ length: 5 }, (_, i) => linkEntry(`l${i}`, `target-${i}`))]);
      await c.serveRequests();
    },
    { code: EXIT.OK, present: ['dst/l0', 'dst/l4'] },
  ).then(() => undefined),
);
