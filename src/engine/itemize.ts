/**
 * TRANSITIONAL, delete at merge: src/engine/receiver.ts (split in another branch) still imports
 * from this path; the home is src/protocol/itemize.ts.
 */
export { ITEM, isSignificant } from '../protocol/itemize.js';
