/**
 * TRANSITIONAL, delete at merge: src/engine/session.ts (owned by the receiver split) still imports
 * from this path; the sending role lives in src/engine/sender/.
 */
export { allowIncRecurseForSender, runSender } from './sender/sender.js';
