/**
 * ssh2 runs its ciphers through an optional native binding (built by its install script). Without
 * it, bulk transfers are 2-3x slower, so the server warns at start.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface NativeCryptoStatus {
  loaded: boolean;
  error?: string;
}

export function nativeCryptoStatus(): NativeCryptoStatus {
  try {
    const crypto = require('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean };
    if (crypto.bindingAvailable) return { loaded: true };
    require('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
    return { loaded: true };
  } catch (err) {
    return { loaded: false, error: (err as Error).message.split('\n')[0] };
  }
}
