/** Decoded captures of real rsync sessions (and the command lines of each client version), kept as fixtures. */
import { fileURLToPath } from 'node:url';

export const CAPTURES = fileURLToPath(new URL('../fixtures/captures', import.meta.url));
