/**
 * The live-session registry: every running exec, as `rrsyncd sessions` lists it, and the handle
 * `rrsyncd kick` ends it through. The ssh layer adds and removes entries; nothing here touches a
 * channel or the engine.
 */

interface LiveSessionInfo {
  /** `<connection>.<exec>`, e.g. "3.1". */
  id: string;
  tenant?: string;
  fingerprint: string;
  comment: string;
  user?: string;
  address: string;
  role: 'sender' | 'receiver' | 'none';
  argv: string[];
  startedAt: number;
}

export interface LiveSession extends LiveSessionInfo {
  /** Bytes received and sent so far on the session's connection. */
  bytes(): { in: number; out: number };
  /** Ends the session: the client gets `reason` on stderr and a non-zero exit. */
  kick(reason: string): void;
}

/** What `sessions --json` prints for one session. */
export interface SessionView extends LiveSessionInfo {
  bytesIn: number;
  bytesOut: number;
  ageMs: number;
}

export interface KickSelector {
  id?: string;
  fingerprint?: string;
  tenant?: string;
}

export class SessionRegistry {
  private readonly live = new Map<string, LiveSession>();

  add(s: LiveSession): void {
    this.live.set(s.id, s);
  }

  remove(id: string): void {
    this.live.delete(id);
  }

  get size(): number {
    return this.live.size;
  }

  list(now = Date.now()): SessionView[] {
    return [...this.live.values()].map((s) => {
      const { bytes, kick, ...info } = s;
      void kick;
      const b = bytes();
      return { ...info, bytesIn: b.in, bytesOut: b.out, ageMs: now - s.startedAt };
    });
  }

  /** Kicks every session the selector matches; returns their ids. */
  kick(sel: KickSelector, reason: string): string[] {
    const hit = [...this.live.values()].filter((s) => matches(s, sel));
    for (const s of hit) s.kick(reason);
    return hit.map((s) => s.id);
  }

  countByTenant(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.live.values()) out.set(s.tenant ?? '', (out.get(s.tenant ?? '') ?? 0) + 1);
    return out;
  }
}

function matches(s: LiveSessionInfo, sel: KickSelector): boolean {
  if (sel.id === undefined && sel.fingerprint === undefined && sel.tenant === undefined) return false;
  if (sel.id !== undefined && s.id !== sel.id) return false;
  if (sel.fingerprint !== undefined && s.fingerprint !== normaliseFingerprint(sel.fingerprint)) return false;
  if (sel.tenant !== undefined && s.tenant !== sel.tenant) return false;
  return true;
}

/** Accepts a fingerprint with or without its `SHA256:` prefix. */
function normaliseFingerprint(fp: string): string {
  return fp.startsWith('SHA256:') ? fp : `SHA256:${fp}`;
}

/** The role an argv will run as, before the engine parsed it. */
export function roleOfArgv(argv: string[]): 'sender' | 'receiver' {
  return argv.includes('--sender') ? 'sender' : 'receiver';
}

/** The table `rrsyncd sessions` prints. */
export function formatSessions(list: SessionView[]): string {
  if (list.length === 0) return 'no sessions\n';
  const rows = list.map((s) => [
    s.id,
    s.tenant ?? '-',
    `${s.fingerprint} ${s.comment}`.trim(),
    s.address,
    s.role,
    `${s.bytesIn}/${s.bytesOut}`,
    `${Math.round(s.ageMs / 1000)}s`,
    s.argv.join(' '),
  ]);
  const head = ['ID', 'TENANT', 'KEY', 'ADDRESS', 'ROLE', 'IN/OUT', 'AGE', 'ARGV'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}
