/** Which SSH algorithms a server with these host keys and settings actually uses. */
import type { HostKey } from './host-keys.js';

/** The host key algorithms a key of this type can sign with. */
function algorithmsForKeyType(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

/**
 * Throws when a loaded host key has no algorithm in `algorithms.serverHostKey` (it could never be
 * offered: a DSA key with the defaults), rather than starting with a key the admin thinks is used.
 */
export function checkHostKeyAlgorithms(hostKeys: readonly HostKey[], allowed: readonly string[]): void {
  for (const h of hostKeys) {
    if (!algorithmsForKeyType(h.key.type).some((a) => allowed.includes(a))) {
      throw new Error(`host key ${h.path} (${h.key.type}) has no algorithm in algorithms.serverHostKey (${allowed.join(', ')})`);
    }
  }
}

/** The signature algorithm of a publickey request as ssh2 reports it (rsa-sha2-* arrive as ssh-rsa + hash). */
export function signatureAlgorithm(keyAlgo: string, hashAlgo: string | undefined): string {
  if (keyAlgo === 'ssh-rsa' && (hashAlgo === 'sha256' || hashAlgo === 'sha512')) return `rsa-sha2-${hashAlgo.slice(3)}`;
  return keyAlgo;
}
