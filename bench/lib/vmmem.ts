/**
 * This project's VMs hand freed guest memory back to the host at once (virtio-balloon free page
 * reporting; the guest kernel's page_reporting module). Touching such memory again costs ~3 s of
 * CPU per GiB, charged to whichever process allocates page cache next: a 1 GiB push then takes
 * 1.5 s or 4.5 s on either server, at random. For the bench's duration, freed memory is only
 * reported after 5 minutes (page_reporting.min_free_ms), so both servers reuse memory the guest
 * still has; the previous value is restored at the end. Machines without the knob are unaffected.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const KNOB = '/sys/module/page_reporting/parameters/min_free_ms';
const HOLD_MS = 300_000;

export interface MemoryHold {
  description: string;
  restore(): void;
}

export function holdFreedMemory(): MemoryHold | null {
  if (!existsSync(KNOB)) return null;
  let before: string;
  try {
    before = readFileSync(KNOB, 'utf8').trim();
    writeFileSync(KNOB, String(HOLD_MS));
  } catch {
    return null;
  }
  let restored = false;
  return {
    description: `free page reporting deferred: page_reporting.min_free_ms ${before} -> ${HOLD_MS} for the run (restored after)`,
    restore: () => {
      if (restored) return;
      restored = true;
      try {
        writeFileSync(KNOB, before);
      } catch {
        // left as it is; the next boot resets it
      }
    },
  };
}
