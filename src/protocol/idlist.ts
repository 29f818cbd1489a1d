/**
 * uid/gid name lists that follow a non-incremental file list (rsync's uidlist.c send_id_lists /
 * recv_id_list), and the inline names of incremental lists. Names are byte strings (latin1).
 */
import { ProtocolError } from './errors.js';
import type { ProtocolReader } from './input.js';
import type { ProtocolWriter } from './output.js';

/** A user/group name is sent with a one-byte length. */
const MAX_ID_NAME = 255;
/** Upper bound on (id, name) pairs we accept in one list; the reference has none. */
const MAX_ID_LIST_ENTRIES = 1 << 20;
/** Upper bound on the name bytes of one list (a hostile peer could otherwise park ~256 MiB here). */
export const MAX_ID_LIST_NAME_BYTES = 8 << 20;

/** varint30: int32 before protocol 30, varint from 30 on. */
async function readVarint30(r: ProtocolReader, protocol: number): Promise<number> {
  return protocol < 30 ? r.readI32() : r.readVarint();
}

function writeVarint30(w: ProtocolWriter, protocol: number, v: number): void {
  if (protocol < 30) w.i32(v);
  else w.varint(v);
}

/** Reads a byte length and that many name bytes; '' for length 0. */
export async function readIdName(r: ProtocolReader): Promise<string> {
  const len = await r.readU8();
  if (len === 0) return '';
  return (await r.readBytes(len)).toString('latin1');
}

export function writeIdName(w: ProtocolWriter, name: string): void {
  const bytes = Buffer.from(name, 'latin1');
  const len = Math.min(bytes.length, MAX_ID_NAME);
  w.u8(len);
  if (len) w.bytes(bytes.subarray(0, len));
}

/**
 * One list: { varint30 id; byte len; name }* then varint30 0, and with CF_ID0_NAMES the name of
 * id 0 (byte len + name). Ids without a name and id 0 are not listed.
 */
export function writeIdList(w: ProtocolWriter, protocol: number, ids: Map<number, string>, id0Names: boolean): void {
  for (const [id, name] of ids) {
    if (id === 0 || !name) continue;
    writeVarint30(w, protocol, id);
    writeIdName(w, name);
  }
  writeVarint30(w, protocol, 0);
  if (id0Names) writeIdName(w, ids.get(0) ?? '');
}

export async function readIdList(
  r: ProtocolReader,
  protocol: number,
  id0Names: boolean,
  charge: (nameLength: number) => void = () => undefined,
): Promise<Map<number, string>> {
  const ids = new Map<number, string>();
  let nameBytes = 0;
  for (let count = 0; ; count++) {
    if (count > MAX_ID_LIST_ENTRIES) throw new ProtocolError('id list too long');
    const id = (await readVarint30(r, protocol)) >>> 0;
    if (id === 0) break;
    const name = await readIdName(r);
    nameBytes += name.length;
    if (nameBytes > MAX_ID_LIST_NAME_BYTES) throw new ProtocolError('id list too long (names)');
    charge(name.length);
    if (name) ids.set(id, name);
  }
  if (id0Names) {
    const name = await readIdName(r);
    if (name) ids.set(0, name);
  }
  return ids;
}
