/**
 * --files-from=- on a pulling client: the names the client sends after its filter list, and their
 * sanitising (rsync's io.c read_filesfrom_line and util1.c sanitize_path).
 */
import { ExitCode, ProtocolError, RsyncError } from '../../protocol/errors.js';
import type { SessionContext } from '../context.js';

const MAX_FILES_FROM_NAME = 4096;
const MAX_FILES_FROM_NAMES = 1_000_000;
const MAX_FILES_FROM_BYTES = 64 << 20;

/**
 * --files-from=- : NUL-terminated names follow the filter list, ended by an empty name; raw (not
 * multiplexed) for protocol < 31.
 */
export async function readFilesFrom(ctx: SessionContext): Promise<string[]> {
  if (ctx.opts.filesFrom !== '-') {
    throw new RsyncError('rrsyncd: --files-from must name a client-side file here', ExitCode.SYNTAX);
  }
  const r = ctx.reader;
  const raw = ctx.protocol < 31 && r.isMultiplexed;
  if (raw) r.setMultiplexed(false);
  const names: string[] = [];
  let nameBytes = 0;
  let cur: number[] = [];
  const eol = ctx.opts.from0 ? 0 : 0x0a;
  for (;;) {
    const b = await r.readU8();
    if (b === eol || b === 0 || (!ctx.opts.from0 && b === 0x0d)) {
      if (cur.length === 0) {
        if (b === 0 || ctx.opts.from0) break;
        continue;
      }
      names.push(Buffer.from(cur).toString('latin1'));
      nameBytes += cur.length + 1;
      cur = [];
      // All names are held until the list is built: bound them (a flood of millions of names
      // otherwise costs ~1 GiB and minutes of lstat work).
      if (names.length > MAX_FILES_FROM_NAMES || nameBytes > MAX_FILES_FROM_BYTES) {
        throw new ProtocolError(`too many --files-from names (limit ${MAX_FILES_FROM_NAMES} names, ${MAX_FILES_FROM_BYTES >> 20} MiB)`);
      }
      continue;
    }
    if (cur.length >= MAX_FILES_FROM_NAME) throw new ProtocolError('--files-from name too long');
    cur.push(b);
  }
  if (raw) r.setMultiplexed(true);
  return names;
}

/** rsync's sanitize_path(…, SP_KEEP_DOT_DIRS) for --files-from names: no leading '/', '..' collapsed. */
export function sanitizeFilesFromName(name: string, keepDots: boolean): string {
  const out: string[] = [];
  const parts = name.split('/');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (p === '') continue;
    if (p === '.' && !keepDots) continue;
    if (p === '..') {
      out.pop();
      continue;
    }
    out.push(p);
  }
  let s = out.join('/');
  if (s === '') return '.';
  if (name.endsWith('/') && s !== '.') s += '/';
  return s;
}
