// Push interop, basic matrix (see lib/cases-basic.ts): rsync <args> -e <engine> src/ x:dst/,
// compared with the same command against a stock rsync server (lib/interop.ts).
import t from 'tap';
import { engineTransport, type Transport } from './lib/interop.js';
import { basicCases } from './lib/cases-basic.js';

// Two cases at a time: each case mostly waits on rsync processes, and tap runs files one at a time
// on a 2-CPU machine.
t.jobs = 2;
let tr: Transport;
t.before(async () => {
  tr = await engineTransport(t);
});
basicCases(t, 'push', () => tr);
