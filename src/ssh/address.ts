/** Client addresses as bytes, for CIDR checks and per-source counting. */
import { isIP } from 'node:net';

/** An address's bytes (4 for IPv4, 16 for IPv6, IPv4-in-IPv6 tails included); undefined when not an address. */
export function addressBytes(ip: string): number[] | undefined {
  const family = isIP(ip);
  if (family === 4) return ip.split('.').map(Number);
  if (family !== 6) return undefined;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  const text = v4 ? ip.slice(0, -v4[1]!.length) + '0:0' : ip;
  const [head, tail] = text.split('::') as [string, string | undefined];
  const groups = (part: string | undefined) => (part ? part.split(':').filter((g) => g !== '') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const bytes = all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
  if (v4) bytes.splice(12, 4, ...v4[1]!.split('.').map(Number));
  return bytes;
}

/** `::ffff:a.b.c.d` as `a.b.c.d`; other addresses unchanged. */
export function normalizeAddress(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}
