// Pull interop: options, filters (applied by our sender while walking) and the client's deletions
// (lib/cases-options.ts).
import t from 'tap';
import { engineTransport, type Transport } from './lib/interop.js';
import { deleteCases, filterCases, optionCases } from './lib/cases-options.js';

// Two cases at a time: each case mostly waits on rsync processes, and tap runs files one at a time
// on a 2-CPU machine.
t.jobs = 2;
let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});
optionCases(t, 'pull', () => tr);
filterCases(t, 'pull', () => tr);
deleteCases(t, 'pull', () => tr, [29, 32]);
