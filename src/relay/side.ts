/**
 * One end of the relay: a remote `rsync --server` reached through the remote shell, with the
 * client's half of the handshake (version, compat flags, name lists, seed). The relay drives the
 * handshake of both sides in lock-step (relay.ts) so it can choose what both must agree on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { ProtocolReader } from '../protocol/input.js';
import { ProtocolWriter } from '../protocol/output.js';
import { ExitCode, ProtocolError, RsyncError } from '../protocol/errors.js';
import { CF } from '../protocol/compat.js';
import type { SideRole } from './args.js';

const MAX_NEGOTIATION_STRING = 255;
export const RELAY_MAX_PROTOCOL = 32;
const RELAY_MIN_PROTOCOL = 27;

export interface SideExit {
  code: number;
  signal: NodeJS.Signals | null;
}

export class Side {
  readonly proc: ChildProcess;
  readonly reader: ProtocolReader;
  readonly writer: ProtocolWriter;
  readonly exited: Promise<SideExit>;
  /** All of the side's output was read (or its streams were destroyed). */
  private readonly closed: Promise<void>;
  /** The version the server announced (capped to ours). */
  remoteVersion = 0;
  protocol = 0;
  compatFlags = 0;
  /** The server's checksum / compression lists (protocol >= 30 with name negotiation). */
  checksumList: string[] | undefined;
  compressList: string[] | undefined;
  seed = 0;
  /** Set once the side failed or exited early (reported once, by name). */
  failure: string | undefined;
  private stdinClosed = false;

  constructor(
    readonly role: SideRole,
    command: string[],
    stderr: (chunk: Buffer) => void,
  ) {
    this.proc = spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.proc.once('error', (err) => {
        this.failure ??= `${this.role}: cannot run ${command[0]}: ${err.message}`;
        resolve({ code: 127, signal: null });
      });
      this.proc.once('exit', (code, signal) => resolve({ code: code ?? 255, signal }));
    });
    this.closed = new Promise((resolve) => this.proc.once('close', () => resolve()));
    this.proc.stdin!.on('error', () => {
      this.stdinClosed = true;
    });
    this.proc.stderr!.on('data', stderr);
    this.reader = new ProtocolReader(this.proc.stdout!);
    this.writer = new ProtocolWriter(this.proc.stdin!);
    this.reader.onStarve = () => this.writer.flush();
  }

  get name(): string {
    return this.role;
  }

  get negotiatesNames(): boolean {
    return this.protocol >= 30 && (this.compatFlags & CF.VARINT_FLIST_FLAGS) !== 0;
  }

  /** The server writes its version first; we read it before answering with ours. */
  async readVersion(): Promise<number> {
    const remote = await this.reader.readI32();
    if (remote < 20 || remote > 40) {
      throw new ProtocolError(`protocol version mismatch -- is your shell clean? (${this.role} sent ${remote})`);
    }
    if (remote < RELAY_MIN_PROTOCOL) {
      throw new RsyncError(`rrsyncd relay: the ${this.role} speaks protocol ${remote}; the relay needs ${RELAY_MIN_PROTOCOL} or newer`, ExitCode.PROTOCOL);
    }
    this.remoteVersion = Math.min(remote, RELAY_MAX_PROTOCOL);
    return this.remoteVersion;
  }

  /** Answers with `offer`; reads the compat flags and the server's name lists. */
  async sendVersion(offer: number, wantCompress: boolean): Promise<void> {
    this.writer.i32(offer);
    this.writer.flush();
    this.protocol = Math.min(offer, this.remoteVersion);
    this.reader.protocol = this.writer.protocol = this.protocol;
    if (this.protocol < 30) return;
    this.compatFlags = await this.reader.readVarint();
    if (this.compatFlags & CF.INC_RECURSE) {
      throw new ProtocolError(`the ${this.role} chose incremental recursion, which the relay did not offer`);
    }
    if (!this.negotiatesNames) return;
    this.checksumList = await this.readList();
    if (wantCompress) this.compressList = await this.readList();
  }

  private async readList(): Promise<string[]> {
    const s = (await this.reader.readVstring(MAX_NEGOTIATION_STRING)).toString('latin1');
    return s.split(/\s+/).filter((w) => w !== '');
  }

  /** Writes our (single-name) choices and reads the checksum seed. */
  async finishHandshake(checksum: string | undefined, compress: string | undefined): Promise<void> {
    if (this.negotiatesNames) {
      if (checksum !== undefined) this.writer.vstring(Buffer.from(checksum, 'latin1'));
      if (compress !== undefined) this.writer.vstring(Buffer.from(compress, 'latin1'));
      this.writer.flush();
    }
    this.seed = await this.reader.readI32();
  }

  /** Our end of the connection: no more input for the server (it sees EOF). */
  closeInput(): void {
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    this.writer.flush();
    this.proc.stdin!.end();
  }

  /** Ends the side: EOF first, then SIGTERM if it has not gone after `graceMs`, then SIGKILL. */
  async shutdown(graceMs: number): Promise<SideExit> {
    this.closeInput();
    // Keep reading (and discarding) so a side blocked writing to us can see the EOF and exit.
    void this.reader.drainUntilEof(graceMs).catch(() => undefined);
    let exit: SideExit | null = null;
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      exit = await within(this.exited, graceMs);
      if (exit) break;
      this.proc.kill(signal);
    }
    exit ??= await this.exited;
    // Its last stderr lines may still be in the pipe; then the fds go, whatever is left.
    await within(this.closed, 1000);
    this.proc.stdout!.destroy();
    this.proc.stderr!.destroy();
    return exit;
  }
}

async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((r) => {
    timer = setTimeout(() => r(null), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
