// Push interop: every deletion mode and its limits (lib/cases-options.ts deleteCases).
import t from 'tap';
import { engineTransport, type Transport } from './lib/interop.js';
import { deleteCases } from './lib/cases-options.js';

// Two cases at a time: each case mostly waits on rsync processes, and tap runs files one at a time
// on a 2-CPU machine.
t.jobs = 2;
let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});
deleteCases(t, 'push', () => tr);
