/**
 * Received names: rsync's clean_fname (util1.c) and the sender-name checks of recv_file_entry.
 */
import { ExitCode, ProtocolError } from '../errors.js';

export function unsafePath(name: string): ProtocolError {
  const shown = name.length > 200 ? `${name.slice(0, 200)}...` : name;
  return new ProtocolError(`ABORTING due to unsafe pathname from sender: ${shown}`, ExitCode.UNSUPPORTED);
}

/**
 * rsync's clean_fname(CFN_REFUSE_DOT_DOT_DIRS): drops duplicate slashes, interior "." components
 * and a trailing slash; returns null when a ".." component is present. A leading '/' is kept.
 */
function cleanFileName(name: string): string | null {
  if (isAlreadyClean(name)) return name;
  const anchored = name.charCodeAt(0) === 0x2f;
  const parts: string[] = [];
  const comps = name.split('/');
  for (let i = 0; i < comps.length; i++) {
    const c = comps[i];
    if (c === '') continue;
    if (c === '..') return null;
    // interior "." dirs are discarded; a final "." is kept (the reference only drops "./")
    if (c === '.' && i < comps.length - 1) continue;
    parts.push(c);
  }
  const body = parts.join('/');
  if (anchored) return `/${body}`;
  return body === '' ? '.' : body;
}

/** True when no component is empty, "." (except a lone "." name) or "..": the common case. */
function isAlreadyClean(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  let start = 0;
  for (let i = 0; i <= n; i++) {
    if (i < n && name.charCodeAt(i) !== 0x2f) continue;
    const len = i - start;
    if (len === 0 && !(i === 0 && n > 1)) return false; // "//", trailing '/' (a leading '/' is fine)
    if (len === 1 && name.charCodeAt(start) === 0x2e && n > 1) return false;
    if (len === 2 && name.charCodeAt(start) === 0x2e && name.charCodeAt(start + 1) === 0x2e) return false;
    start = i + 1;
  }
  return true;
}

/** Validates and normalises one received name: returns [name without leading '/', hadSlash]. */
export function checkReceivedName(raw: string, relative: boolean): [string, boolean] {
  if (raw.length === 0) throw unsafePath(raw);
  const cleaned = cleanFileName(raw);
  if (cleaned === null) throw unsafePath(raw);
  let name = cleaned;
  let slash = false;
  if (name.charCodeAt(0) === 0x2f) {
    if (!relative) throw unsafePath(raw);
    slash = true;
    name = name.replace(/^\/+/, '');
    if (name === '') throw unsafePath(raw);
  }
  // A "." component survives cleaning only at the end ("a/."); only the root may be ".".
  if (name !== '.' && (name.endsWith('/.') || name.includes('\0'))) throw unsafePath(raw);
  return [name, slash];
}
