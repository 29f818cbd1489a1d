/**
 * What one authenticated key may do: its root and rrsync-style restrictions, plus per-tenant limits
 * from the config. Built by ssh/ (authorized_keys `command="rrsync ..."` lines) or config/ (tenants),
 * enforced by policy/ (options) and the engine/sandbox (paths, quotas).
 */
import type { RevisionsConfig } from '../revisions/layout.js';

export interface Grant {
  /** Absolute path of the directory this key is confined to. */
  root: string;
  /** -ro: pulls only (implies noDelete, noLock). */
  readOnly: boolean;
  /** -wo: pushes only. */
  writeOnly: boolean;
  /** -no-del: refuse --delete*, --remove-source-files, --remove-sent-files. */
  noDelete: boolean;
  /** -no-overwrite: existing files are never replaced (forces --ignore-existing). */
  noOverwrite: boolean;
  /**
   * -append-only: nothing that exists is deleted, replaced, written or changed (mode, owner);
   * new entries may be added (implies noDelete and noOverwrite; gateway/append-only.ts).
   */
  appendOnly?: boolean;
  /** -munge: symlinks are stored munged (--munge-links). */
  munge: boolean;
  /** -no-lock: no per-root single-run lock. */
  noLock: boolean;
  /** -absolute: args may name the root by its absolute server path. */
  absolute: boolean;
  /** Long options allowed beyond the default allow-list (names without dashes). */
  extraAllowedOptions?: string[];
  /** Long options refused even though the default allow-list has them. */
  deniedOptions?: string[];
  limits: GrantLimits;
  /** -snapshot / -publish, or a tenant's `revisions`: every push builds a new revision (docs/revisions.md). */
  revisions?: RevisionsConfig;
}

export interface GrantLimits {
  /** Largest single file a push may write, in bytes. */
  maxFileSize?: number;
  /** Byte quota for everything under the root. */
  quotaBytes?: number;
  /** File-count quota for everything under the root. */
  quotaFiles?: number;
  /** Concurrent sessions for this grant. */
  maxSessions?: number;
  /** Memory one session may hold for block sums, file lists and id lists (default 256 MiB). */
  memoryBytes?: number;
  /** Upload bandwidth limit, bytes per second. */
  uploadBytesPerSecond?: number;
  /** Devices and specials may be created (also requires running as root for devices). */
  allowDevices: boolean;
  /**
   * Ownership may be changed (also requires running as root). Off by default; without it incoming
   * set-uid/set-gid bits are stripped (policy/modes.ts).
   */
  allowChown: boolean;
  /** Forced permission masks applied to incoming files, rsyncd "incoming chmod" syntax. */
  incomingChmod?: string;
}

export function defaultGrant(root: string): Grant {
  return {
    root,
    readOnly: false,
    writeOnly: false,
    noDelete: false,
    noOverwrite: false,
    munge: false,
    noLock: false,
    absolute: false,
    limits: { allowDevices: false, allowChown: false },
  };
}
