import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateHostKey } from '../../src/ssh/host-keys.js';
import { tmpDir } from './sandbox-helpers.js';

// ssh2's key generator drops a public key's leading zero byte (mscdex/ssh2#1390): one key in 256
// came out unusable, and `rrsyncd keygen` (or a first start) failed with "Malformed OpenSSH
// private key". 1500 keys make about six such draws: all must come out whole.
t.test('every generated host key is a whole ed25519 key', async (t) => {
  const dir = tmpDir(t, 'hostkeys-');
  const KEYS = 1500;
  let whole = 0;
  for (let i = 0; i < KEYS; i++) {
    const path = join(dir, `k${i}`);
    const hk = generateHostKey(path);
    // "ssh-ed25519 BASE64 comment": string "ssh-ed25519" (4 + 11) then string key (4 + 32).
    const blob = Buffer.from(readFileSync(`${path}.pub`, 'utf8').split(' ')[1]!, 'base64');
    if (blob.length === 51 && blob.readUInt32BE(15) === 32 && hk.key.getPublicSSH().equals(blob)) whole++;
  }
  t.equal(whole, KEYS, 'each .pub holds a 32-byte key, the same as the private key file');
  const last = join(dir, `k${KEYS - 1}`);
  const r = spawnSync('ssh-keygen', ['-y', '-f', last], { encoding: 'utf8' });
  t.equal(r.status, 0, `ssh-keygen reads the private key: ${r.stderr}`);
  t.equal(r.stdout.split(' ').slice(0, 2).join(' '), readFileSync(`${last}.pub`, 'utf8').split(' ').slice(0, 2).join(' '), 'and derives the same public key');
});
