/**
 * Host keys: generate (ed25519, OpenSSH format, mode 0600), load, fingerprint.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import ssh2, { type ParsedKey } from 'ssh2';

const { utils } = ssh2;

export interface HostKey {
  path: string;
  key: ParsedKey;
  /** The private key file's text (what ssh2's Server wants). */
  text: string;
  /** SHA256:base64 of the public key blob, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/** `SHA256:…` fingerprint of an SSH public key blob (no base64 padding, like OpenSSH). */
export function fingerprintOf(publicBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(publicBlob).digest('base64').replace(/=+$/, '');
}

export function loadHostKey(path: string): HostKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read host key ${path}: ${(err as Error).message}`);
  }
  const parsed = utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error(`host key ${path}: ${key ? key.message : 'no key found'}`);
  if (!key.isPrivateKey()) throw new Error(`host key ${path}: not a private key`);
  return { path, key, text, fingerprint: fingerprintOf(key.getPublicSSH()) };
}

/**
 * Creates an ed25519 host key at `path` (and `path.pub`) unless the file exists. The private key is
 * written with O_EXCL and mode 0600; the directory is created 0700 when missing.
 */
export function generateHostKey(path: string, comment = 'rrsyncd host key'): HostKey {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const pair = generateEd25519(comment);
  writeFileSync(path, pair.private, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600); // the umask may have narrowed it further; make it exact
  writeFileSync(`${path}.pub`, `${pair.public.trim()}\n`, { mode: 0o644 });
  return loadHostKey(path);
}

/** Attempts before giving up; each fails with probability 1/256 (see generateEd25519). */
const KEYGEN_ATTEMPTS = 8;

/**
 * An ed25519 key pair in OpenSSH format. ssh2 (1.17.0, mscdex/ssh2#1390) strips every leading zero
 * byte of the public key, so one key in 256 (public key starting with 0x00) comes out 31 bytes
 * long and unusable; such a pair is thrown away and another one made.
 */
export function generateEd25519(comment = ''): { private: string; public: string } {
  for (let i = 0; i < KEYGEN_ATTEMPTS; i++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    if (!(utils.parseKey(pair.private) instanceof Error)) return pair;
  }
  throw new Error(`could not generate a usable ed25519 key in ${KEYGEN_ATTEMPTS} attempts`);
}

/** Loads the host key at `path`, generating it first when the file does not exist. */
export function ensureHostKey(path: string): { hostKey: HostKey; created: boolean } {
  if (fileExists(path)) return { hostKey: loadHostKey(path), created: false };
  try {
    return { hostKey: generateHostKey(path), created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { hostKey: loadHostKey(path), created: false };
    throw err;
  }
}

function fileExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
