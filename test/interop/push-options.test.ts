// Push interop: options against an existing destination, and filters (lib/cases-options.ts).
import t from 'tap';
import { engineTransport, type Transport } from './lib/interop.js';
import { filterCases, optionCases } from './lib/cases-options.js';

// Two cases at a time: each case mostly waits on rsync processes, and tap runs files one at a time
// on a 2-CPU machine.
t.jobs = 2;
let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});
optionCases(t, 'push', () => tr);
filterCases(t, 'push', () => tr);
