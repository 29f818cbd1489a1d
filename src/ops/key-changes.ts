/**
 * On reload, a connection stays open only while its key still logs in the same way: same
 * decision under the new key ring, with the same grant, tenant, from= and expiry.
 */
import type { KeyEntry, KeyRing } from '../ssh/authorized-keys.js';

export function keyStillGranted(old: KeyEntry, ring: KeyRing, user: string, address: string): boolean {
  const decision = ring.decide(old.blob, user, address);
  if (!decision.ok) return false;
  return sameAccess(old, decision.entry);
}

function sameAccess(a: KeyEntry, b: KeyEntry): boolean {
  return (
    a.tenant === b.tenant &&
    a.from === b.from &&
    a.expiresAt?.getTime() === b.expiresAt?.getTime() &&
    stableJson(a.users) === stableJson(b.users) &&
    stableJson(a.grant) === stableJson(b.grant)
  );
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : 1)))
      : val,
  ) ?? 'undefined';
}
