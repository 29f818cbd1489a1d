/**
 * The places where rrsyncd reaches into ssh2's private modules and fields, written against one
 * exact ssh2 version (checked when the server starts: a different version refuses to start rather
 * than run with a patch that no longer fits).
 *
 * - Exec commands as bytes: ssh2 decodes the `exec` request's command as UTF-8, so a file name
 *   with a byte such as 0xff arrives as U+FFFD and can never be named again. The CHANNEL_REQUEST
 *   parser is wrapped so that an exec command reaches the server as one char per byte (latin1),
 *   which is how the rest of rrsyncd carries names.
 * - Host key algorithms: ssh2's server offers every algorithm of every loaded host key and ignores
 *   `algorithms.serverHostKey` except to order the RSA ones; for an RSA key it always adds `ssh-rsa`
 *   (SHA-1) last. Each connection's KEXINIT offer is rebuilt with only the configured algorithms
 *   before it is sent.
 * - server-sig-algs: ssh2 answers a client's `ext-info-c` with a fixed list that names `ssh-rsa`
 *   and `ssh-dss` whatever the server accepts, and lacks the comma before `rsa-sha2-512`, so a
 *   client limited to rsa-sha2-512 finds nothing to sign with. Its EXT_INFO is suppressed and one
 *   listing `algorithms.pubkey` is sent in its place (RFC 8308: right after the first NEWKEYS).
 */
import { createRequire } from 'node:module';
import type { Connection } from 'ssh2';

const require = createRequire(import.meta.url);

/** The ssh2 version whose internals this module was written against. */
const PATCHED_SSH2_VERSION = '1.17.0';

type MessageHandler = (proto: ProtocolInternals, payload: Buffer) => unknown;

interface ProtocolInternals {
  _handlers: { CHANNEL_REQUEST?: (proto: ProtocolInternals, recipient: number, type: string, wantReply: boolean, data: unknown) => void };
  _offer?: KexInitInternals;
}

interface KexListEntry {
  array: string[];
}

interface KexInitInternals {
  lists: {
    kex: KexListEntry;
    serverHostKey: KexListEntry;
    cs: Record<'cipher' | 'mac' | 'compress' | 'lang', KexListEntry>;
    sc: Record<'cipher' | 'mac' | 'compress' | 'lang', KexListEntry>;
  };
}

type KexInitClass = new (lists: unknown) => KexInitInternals;

const CHANNEL_REQUEST = 98;
let installed = false;

function installedSsh2Version(): string {
  return (require('ssh2/package.json') as { version: string }).version;
}

/**
 * Checks the ssh2 version and installs the exec-bytes patch (once per process). Throws when ssh2
 * is not the version these patches were written for.
 */
export function installSsh2Patches(): void {
  if (installed) return;
  const version = installedSsh2Version();
  if (version !== PATCHED_SSH2_VERSION) {
    throw new Error(
      `ssh2 ${version} is installed, but src/ssh/ssh2-internals.ts patches ssh2 ${PATCHED_SSH2_VERSION}'s internals; ` +
        'install that version or review the patches',
    );
  }
  const handlers = require('ssh2/lib/protocol/handlers.js') as MessageHandler[];
  const original = handlers[CHANNEL_REQUEST];
  if (typeof original !== 'function') throw new Error('ssh2 internals: no CHANNEL_REQUEST handler');
  handlers[CHANNEL_REQUEST] = (proto, payload) => {
    const exec = parseExecRequest(payload);
    if (!exec) return original(proto, payload);
    proto._handlers.CHANNEL_REQUEST?.(proto, exec.recipient, 'exec', exec.wantReply, exec.command);
    return undefined;
  };
  installed = true;
}

/**
 * RFC 4254 §6.5: byte 98, uint32 recipient, string "exec", boolean want-reply, string command.
 * Returns undefined for anything else (or anything malformed), which ssh2's parser then handles.
 * The command comes back as one char per byte.
 */
export function parseExecRequest(payload: Buffer): { recipient: number; wantReply: boolean; command: string } | undefined {
  if (payload.length < 1 + 4 + 4 + 4 + 1 + 4 || payload[0] !== CHANNEL_REQUEST) return undefined;
  const recipient = payload.readUInt32BE(1);
  const typeLen = payload.readUInt32BE(5);
  if (typeLen !== 4 || payload.toString('latin1', 9, 13) !== 'exec') return undefined;
  const wantReply = payload[13] !== 0;
  const cmdLen = payload.readUInt32BE(14);
  if (18 + cmdLen !== payload.length) return undefined;
  return { recipient, wantReply, command: payload.toString('latin1', 18, 18 + cmdLen) };
}

const restrictedOffers = new WeakMap<object, KexInitInternals>();

/**
 * Replaces this connection's KEXINIT offer by one whose host key algorithms are only those in
 * `allowed` (in ssh2's order). Must run in the server's 'connection' listener: ssh2 sends its
 * KEXINIT right after that event. Returns the algorithms now offered.
 */
export function restrictHostKeyOffer(client: Connection, allowed: readonly string[]): string[] {
  const proto = (client as unknown as { _protocol?: ProtocolInternals })._protocol;
  const offer = proto?._offer;
  if (!proto || !offer?.lists?.serverHostKey) throw new Error('ssh2 internals: no KEXINIT offer on the connection');
  let restricted = restrictedOffers.get(offer);
  if (!restricted) {
    const { KexInit } = require('ssh2/lib/protocol/kex.js') as { KexInit: KexInitClass };
    const l = offer.lists;
    const pick = (side: KexInitInternals['lists']['cs']) => ({
      cipher: side.cipher.array,
      mac: side.mac.array,
      compress: side.compress.array,
      lang: side.lang.array,
    });
    const hostKeys = l.serverHostKey.array.filter((a) => allowed.includes(a));
    restricted = new KexInit({ kex: l.kex.array, serverHostKey: hostKeys, cs: pick(l.cs), sc: pick(l.sc) });
    restrictedOffers.set(offer, restricted);
  }
  proto._offer = restricted;
  return restricted.lists.serverHostKey.array;
}

interface PacketWriterInternals {
  allocStart: number;
  allocStartKEX: number;
  alloc(len: number, forceNew?: boolean): Buffer;
  finalize(packet: Buffer, forceNew?: boolean): Buffer;
}

type SendPacket = (proto: unknown, packet: Buffer, bypass?: boolean) => void;

const EXT_INFO = 7;

/**
 * Replaces ssh2's EXT_INFO by one whose server-sig-algs is `accepted`. Must run in the server's
 * 'connection' listener. ssh2 sends its own EXT_INFO when the first key exchange's
 * `remoteExtInfoEnabled` is true; that flag now reads false (the client's wish is kept here) and
 * ours is sent from the 'handshake' event, which ssh2 emits right where it would have sent its own.
 */
export function advertiseSignatureAlgorithms(client: Connection, accepted: readonly string[]): void {
  const proto = (client as unknown as { _protocol?: { _kex?: object; _packetRW?: { write?: PacketWriterInternals } } })._protocol;
  if (!proto || !('_kex' in proto)) throw new Error('ssh2 internals: no key exchange state on the connection');
  let kex = proto._kex;
  let clientWantsExtInfo = false;
  Object.defineProperty(proto, '_kex', {
    configurable: true,
    enumerable: true,
    get: () => kex,
    set: (value: object | undefined) => {
      kex = value;
      if (!value) return;
      Object.defineProperty(value, 'remoteExtInfoEnabled', {
        configurable: true,
        get: () => false,
        set: (on: boolean) => {
          clientWantsExtInfo = on;
        },
      });
    },
  });
  client.once('handshake', () => {
    const writer = proto._packetRW?.write;
    if (!clientWantsExtInfo || !writer) return;
    const { sendPacket } = require('ssh2/lib/protocol/utils.js') as { sendPacket: SendPacket };
    const name = Buffer.from('server-sig-algs', 'latin1');
    const value = Buffer.from(accepted.join(','), 'latin1');
    let p = writer.allocStart;
    const packet = writer.alloc(1 + 4 + 4 + name.length + 4 + value.length);
    packet[p++] = EXT_INFO;
    p = packet.writeUInt32BE(1, p);
    p = packet.writeUInt32BE(name.length, p);
    p += name.copy(packet, p);
    p = packet.writeUInt32BE(value.length, p);
    value.copy(packet, p);
    sendPacket(proto, writer.finalize(packet));
  });
}

const DISCONNECT = 1;
const DISCONNECT_PROTOCOL_ERROR = 2;

/**
 * Sends SSH_MSG_DISCONNECT with a description the client prints (ssh2's own disconnect sends an
 * empty one), as sshd does for "Too many authentication failures", then ends the socket.
 */
export function disconnectWithMessage(client: Connection, description: string): void {
  const c = client as unknown as { _protocol?: { _packetRW?: { write?: PacketWriterInternals } }; _sock?: { end(): void; writable: boolean } };
  const proto = c._protocol;
  const writer = proto?._packetRW?.write;
  if (!proto || !writer || !c._sock?.writable) {
    client.end();
    return;
  }
  const { sendPacket } = require('ssh2/lib/protocol/utils.js') as { sendPacket: SendPacket };
  const text = Buffer.from(description, 'utf8');
  let p = writer.allocStartKEX;
  const packet = writer.alloc(1 + 4 + 4 + text.length + 4, true);
  packet[p++] = DISCONNECT;
  p = packet.writeUInt32BE(DISCONNECT_PROTOCOL_ERROR, p);
  p = packet.writeUInt32BE(text.length, p);
  p += text.copy(packet, p);
  packet.writeUInt32BE(0, p); // language tag
  sendPacket(proto, writer.finalize(packet, true), true);
  c._sock.end();
}
