/**
 * ssh2 allocates every packet it sends as a new Buffer: 32 768 allocations of ~32 KiB per GiB
 * pulled. V8 counts them as external memory and answers with a mark-compact every few MiB
 * (`--trace-gc`: "GC in old space requested"). For the two ciphers that encrypt in place and write
 * the packet as one buffer (ssh2's chacha20-poly1305 and AES-GCM bindings), packets come from a
 * small per-connection pool instead; a buffer goes back when the socket's write of it completed.
 * Other ciphers (and packets larger than a slab) keep ssh2's own allocation.
 *
 * The random padding of a pooled packet (4 to 19 bytes) comes from a pool of CSPRNG bytes
 * refilled 64 KiB at a time, every byte handed out once and then cleared: a randomFillSync call
 * per packet costs ~6 ms of CPU per 1 000 packets (~200 ms per GiB sent), the pool ~0.1 ms.
 */
import crypto from 'node:crypto';
import type { Socket } from 'node:net';
import type { Connection } from 'ssh2';

/** Room for 32 KiB of channel data (the OpenSSH client's maximum packet) plus headers, padding and tag. */
const SLAB_BYTES = 32 * 1024 + 512;
/** Slabs kept for reuse per connection; more in flight at once are allocated and left to the GC. */
const MAX_FREE = 16;
const TAG_BYTES = 16;

/** ssh2's outbound cipher classes whose encrypt() works in place and writes the packet whole. */
const IN_PLACE_BLOCK: Record<string, number> = { ChaChaPolyCipherBinding: 8, AESGCMCipherBinding: 16 };

interface OutboundCipher {
  allocPacket(payloadLen: number): Buffer;
}

interface ProtocolInternals {
  _cipher?: OutboundCipher;
}

type SocketWrite = Socket['write'];

const RANDOM_POOL_BYTES = 64 * 1024;
const randomPool = Buffer.alloc(RANDOM_POOL_BYTES);
let randomUsed = RANDOM_POOL_BYTES;

/** Fills buf[offset, offset + n) (n at most 256) with CSPRNG bytes no one else was given. */
export function fillPadding(buf: Uint8Array, offset: number, n: number): void {
  if (n > 256) {
    crypto.randomFillSync(buf, offset, n);
    return;
  }
  if (randomUsed + n > RANDOM_POOL_BYTES) {
    crypto.randomFillSync(randomPool);
    randomUsed = 0;
  }
  buf.set(randomPool.subarray(randomUsed, randomUsed + n), offset);
  randomPool.fill(0, randomUsed, randomUsed + n);
  randomUsed += n;
}

/** Installs the pool on one connection; false when ssh2's internals are not as expected. */
export function poolOutgoingPackets(client: Connection, socket: Socket): boolean {
  const protocol = (client as unknown as { _protocol?: ProtocolInternals })._protocol;
  if (!protocol || !('_cipher' in protocol)) return false;
  const free: ArrayBuffer[] = [];
  const owned = new WeakSet<ArrayBuffer>();
  const wrapped = new WeakSet<OutboundCipher>();

  const takeSlab = (): ArrayBuffer => {
    const reused = free.pop();
    if (reused) return reused;
    const slab = new ArrayBuffer(SLAB_BYTES);
    owned.add(slab);
    return slab;
  };

  const poolCipher = (cipher: OutboundCipher | undefined): void => {
    if (!cipher || wrapped.has(cipher)) return;
    const block = IN_PLACE_BLOCK[cipher.constructor.name];
    if (!block) return;
    wrapped.add(cipher);
    const allocate = cipher.allocPacket.bind(cipher);
    // The same layout as ssh2's allocPacket for these ciphers (RFC 4253 §6 with AEAD, RFC 5647):
    // uint32 length, padding length, payload, 4+ random bytes of padding, 16-byte tag.
    cipher.allocPacket = (payloadLen: number): Buffer => {
      let packetLen = 4 + 1 + payloadLen;
      let padLen = block - ((packetLen - 4) & (block - 1));
      if (padLen < 4) padLen += block;
      packetLen += padLen;
      const size = packetLen + TAG_BYTES;
      if (size > SLAB_BYTES) return allocate(payloadLen);
      const packet = Buffer.from(takeSlab(), 0, size);
      packet.writeUInt32BE(packetLen - 4, 0);
      packet[4] = padLen;
      fillPadding(packet, 5 + payloadLen, padLen);
      return packet;
    };
  };

  let current = protocol._cipher;
  poolCipher(current);
  Object.defineProperty(protocol, '_cipher', {
    configurable: true,
    enumerable: true,
    get: () => current,
    set: (cipher: OutboundCipher | undefined) => {
      current = cipher;
      poolCipher(cipher);
    },
  });

  const write = socket.write;
  socket.write = function pooledWrite(this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
    if (rest.length === 0 && chunk instanceof Uint8Array && chunk.byteOffset === 0) {
      const slab = chunk.buffer;
      if (slab instanceof ArrayBuffer && owned.has(slab)) {
        return (write as (chunk: Uint8Array, cb: () => void) => boolean).call(this, chunk, () => {
          if (free.length < MAX_FREE) free.push(slab);
        });
      }
    }
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as SocketWrite;
  return true;
}
