import { SandboxError } from './errors.js';
import { quoted } from '../printable.js';

const PATH_MAX = 4096;
const NAME_MAX = 255;

// NUL or anything that is not a byte (a caller forgot the latin1 byte-string convention).
const FORBIDDEN_CHARS = /[\x00\u0100-\uffff]/;

function unsafe(rel: string, why: string): SandboxError {
  return new SandboxError('EUNSAFE', rel, `unsafe path ${quoted(rel)}: ${why}`);
}

/**
 * Validates a root-relative byte-string path and returns its components.
 * '' and '.' are the root (no components); '.' components are dropped; a trailing '/' is tolerated.
 */
export function splitRel(rel: string): string[] {
  if (typeof rel !== 'string') throw unsafe(String(rel), 'not a string');
  if (rel.length > PATH_MAX) throw unsafe(rel.slice(0, 64) + '…', `longer than ${PATH_MAX} bytes`);
  if (FORBIDDEN_CHARS.test(rel)) throw unsafe(rel, 'NUL byte or non-byte character');
  if (rel.startsWith('/')) throw unsafe(rel, 'absolute');
  if (rel === '' || rel === '.') return [];
  const body = rel.endsWith('/') ? rel.slice(0, -1) : rel;
  const parts = body.split('/');
  const out: string[] = [];
  for (const part of parts) {
    if (part === '') throw unsafe(rel, 'empty component');
    if (part === '..') throw unsafe(rel, "'..' component");
    if (part.length > NAME_MAX) throw unsafe(rel, `component longer than ${NAME_MAX} bytes`);
    if (part !== '.') out.push(part);
  }
  return out;
}

/** Validates a single directory-entry name (no '/', not '.' or '..'). */
export function checkName(name: string, rel: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.length > NAME_MAX) {
    throw unsafe(rel, `bad name ${quoted(name)}`);
  }
  if (FORBIDDEN_CHARS.test(name)) throw unsafe(rel, 'NUL byte or non-byte character');
}

/** The inverse of splitRel. */
export function joinParts(parts: readonly string[]): string {
  return parts.join('/');
}

/** Validates a symlink target as stored bytes (content is not interpreted). */
export function checkLinkTarget(target: string, rel: string): void {
  if (target === '') throw new SandboxError('EUNSAFE', rel, `empty symlink target for ${quoted(rel)}`);
  if (target.length >= PATH_MAX) throw new SandboxError('EUNSAFE', rel, `symlink target too long for ${quoted(rel)}`);
  if (FORBIDDEN_CHARS.test(target)) {
    throw new SandboxError('EUNSAFE', rel, `symlink target of ${quoted(rel)} has a NUL or non-byte character`);
  }
}

const TMPNAME_SUFFIX_LEN = 7; // ".XXXXXX"

/**
 * rsync's get_tmpname() name part: `.<name>` (a leading '.' of name is not doubled; with
 * noLeadingDot, as for --temp-dir, none is added), truncated so that name + ".XXXXXX" fits
 * NAME_MAX, without cutting into a multi-byte sequence and without a dot before the suffix dot.
 * Returns the prefix; the caller appends "." + 6 unique characters.
 */
export function tempNamePrefix(baseName: string, noLeadingDot = false): string {
  let f = baseName;
  let prefix = '';
  if (!noLeadingDot) {
    if (f.startsWith('.')) f = f.slice(1);
    prefix = '.';
  }
  const maxname = NAME_MAX - 1 - TMPNAME_SUFFIX_LEN; // includes rsync's room for '\0'
  let added = Math.min(f.length, maxname - 1);
  if (added < f.length && f.charCodeAt(added) & 0x80) {
    while (added > 0 && f.charCodeAt(added - 1) & 0x80) added--;
  }
  let kept = prefix + f.slice(0, added);
  if (kept.endsWith('.')) kept = kept.slice(0, -1);
  return kept;
}

/**
 * rsync's unsafe_symlink(): true if `target` (the link's contents) is absolute or empty, has a
 * '/../' after the leading run of '../' or ends in '/..' (CVE-2024-12088), or climbs above the
 * transfer root given where the link lives (`linkRel`, the link's own root-relative name).
 */
export function isUnsafeSymlink(target: string, linkRel: string): boolean {
  if (target === '' || target.startsWith('/')) return true;
  let rest = target;
  while (rest.startsWith('../')) {
    rest = rest.slice(3);
    while (rest.startsWith('/')) rest = rest.slice(1);
  }
  if (rest.includes('/../')) return true;
  if (target.length > 3 && target.endsWith('/..')) return true;

  let depth = 0;
  const srcParts = linkRel.split('/');
  for (let i = 0; i < srcParts.length - 1; i++) {
    const part = srcParts[i];
    if (part === '') continue; // "a//b"
    if (part === '..') depth = 0;
    else if (part !== '.') depth++;
  }
  if (srcParts[srcParts.length - 1] === '..') depth = 0;

  const destParts = target.split('/');
  for (let i = 0; i < destParts.length - 1; i++) {
    const part = destParts[i];
    if (part === '') continue;
    if (part === '..') {
      if (--depth < 0) return true;
    } else if (part !== '.') {
      depth++;
    }
  }
  if (destParts[destParts.length - 1] === '..') depth--;
  return depth < 0;
}

const SYMLINK_PREFIX = '/rsyncd-munged/';

/** rsync --munge-links: every received symlink target gets the prefix (making it inert). */
export function mungeSymlink(target: string): string {
  return SYMLINK_PREFIX + target;
}

/** Reverse of mungeSymlink for the sending side; targets without the prefix are returned as is. */
export function unmungeSymlink(target: string): string {
  if (target.length > SYMLINK_PREFIX.length && target.startsWith(SYMLINK_PREFIX)) {
    return target.slice(SYMLINK_PREFIX.length);
  }
  return target;
}
