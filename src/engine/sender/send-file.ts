/**
 * One requested file's data (rsync's sender.c send_files body with match.c): the token stream
 * against the client's block sums, or all literal data, then the whole-file checksum.
 */
import type { ServerOptions } from '../../policy/server-options.js';
import { createTransferHasher } from '../../protocol/checksum.js';
import { IOERR } from '../../protocol/errors.js';
import { MsgTag } from '../../protocol/mux.js';
import { writeSumHead, type BlockSums, type SumHead } from '../../protocol/sumhead.js';
import type { TokenEncoder } from '../../protocol/token.js';
import { printable } from '../../printable.js';
import { SandboxError, errorText } from '../../sandbox/errors.js';
import type { SessionContext } from '../context.js';
import { DeltaMatcher } from '../delta.js';
import { chunksOf, hashPrefix, READ_CHUNK } from '../file-hash.js';
import { sendTransferError, sendWarning } from '../messages.js';
import { yieldToLoop } from '../notifier.js';
import { physOf, type SEntry } from './entry.js';
import type { SenderWalker } from './walk.js';

/** How a request asks for --append: 0 none, 1 plain append, 2 append-verify (the prefix is hashed too). */
export type AppendMode = 0 | 1 | 2;

/** What one file's token stream carried: data sent as is, and data the client's basis had. */
interface SentData {
  literal: number;
  matched: number;
}

export class FileSender {
  /** Files whose data was sent, and their literal and matched bytes (the session's stats). */
  files = 0;
  literalBytes = 0;
  matchedBytes = 0;
  private readonly opts: ServerOptions;
  private readonly buf = Buffer.allocUnsafe(READ_CHUNK);

  constructor(
    private readonly ctx: SessionContext,
    private readonly encoder: TokenEncoder,
    private readonly walker: SenderWalker,
  ) {
    this.opts = ctx.opts;
  }

  /**
   * Sends `e` for request `ndx`; `echo` writes the request header back once the file is open.
   * Null when nothing was sent (the file could not be opened, or --append found it shorter).
   */
  async send(e: SEntry, ndx: number, head: SumHead, sums: BlockSums | null, append: AppendMode, echo: () => void): Promise<SentData | null> {
    const sandbox = this.ctx.sandbox;
    let fd: number;
    let size: number;
    try {
      const opened = sandbox.openRead(physOf(e), { dev: e.sdev, ino: e.sino });
      fd = opened.fd;
      size = opened.stat.size;
    } catch (err) {
      this.reportOpenFailure(e, ndx, err);
      return null;
    }
    try {
      if (append && size < e.size) {
        sendWarning(this.ctx, `skipped diminished file: "${printable(physOf(e))}"`);
        this.sendNoSend(ndx);
        return null;
      }
      echo();
      writeSumHead(this.ctx.writer, head);
      const sent = await this.sendData(e, fd, size, head, sums, append);
      this.files++;
      this.literalBytes += sent.literal;
      this.matchedBytes += sent.matched;
      return sent;
    } finally {
      sandbox.close(fd);
    }
  }

  private async sendData(e: SEntry, fd: number, size: number, head: SumHead, sums: BlockSums | null, append: AppendMode): Promise<SentData> {
    const w = this.ctx.writer;
    const hasher = createTransferHasher(this.ctx.xferSum);
    const enc = this.encoder;
    enc.beginFile({ level: this.levelFor(e) });
    let pos = 0;
    if (append) {
      pos = appendOffset(head, size);
      if (append === 2) hashPrefix(this.ctx.sandbox, fd, pos, hasher, this.buf);
    }
    const sent: SentData = { literal: 0, matched: 0 };
    const sink = {
      literal: (d: Buffer): void => {
        sent.literal += d.length;
        enc.literal(d);
      },
      match: (i: number, d: Buffer): void => {
        sent.matched += d.length;
        enc.match(i, d);
      },
    };
    const matcher = sums && head.count > 0 ? new DeltaMatcher(sums, this.ctx.xferSum, sink, { inplace: this.opts.inplace || this.opts.append > 0 }) : null;
    let lastYield = Date.now();
    for (const chunk of chunksOf(this.ctx.sandbox, fd, pos, size, this.buf)) {
      hasher.update(chunk);
      if (matcher) matcher.push(chunk);
      else sink.literal(chunk);
      pos += chunk.length;
      await w.writable();
      if (Date.now() - lastYield > 50) {
        await yieldToLoop();
        lastYield = Date.now();
      }
    }
    matcher?.finish();
    enc.endFile();
    w.bytes(hasher.digest());
    if (pos !== size) {
      this.walker.ioError |= IOERR.GENERAL;
      sendTransferError(this.ctx, `rsync: [sender] read errors mapping "${printable(e.name)}": file changed size during transfer`);
    }
    return sent;
  }

  private levelFor(e: SEntry): number | undefined {
    if (this.ctx.compress === 'none') return undefined;
    const base = e.name.slice(e.name.lastIndexOf('/') + 1);
    const dot = base.lastIndexOf('.');
    if (dot < 0) return undefined;
    const suffix = base.slice(dot + 1).toLowerCase();
    return skipCompressSuffixes(this.opts.skipCompress).has(suffix) ? 0 : undefined;
  }

  private reportOpenFailure(e: SEntry, ndx: number, err: unknown): void {
    const vanished = err instanceof SandboxError && (err.code === 'ENOENT' || err.code === 'ECHANGED');
    if (vanished) {
      this.walker.ioError |= IOERR.VANISHED;
      sendWarning(this.ctx, `file has vanished: "${printable(physOf(e))}"`);
    } else {
      this.walker.ioError |= IOERR.GENERAL;
      sendTransferError(this.ctx, `rsync: [sender] send_files failed to open "${printable(physOf(e))}": ${errorText(err)}`);
    }
    this.sendNoSend(ndx);
  }

  private sendNoSend(ndx: number): void {
    if (this.ctx.protocol < 30) return;
    const b = Buffer.alloc(4);
    b.writeInt32LE(ndx, 0);
    this.ctx.writer.message(MsgTag.NO_SEND, b);
  }
}

/** --append: only the data past what the client has (count * blength less the short block). */
function appendOffset(head: SumHead, size: number): number {
  let have = head.count * head.blength;
  if (head.remainder) have -= head.blength - head.remainder;
  return Math.max(0, Math.min(have, size));
}

const DEFAULT_SKIP_COMPRESS =
  '3g2/3gp/7z/aac/ace/apk/avi/bz2/deb/dmg/ear/f4v/flac/flv/gpg/gz/iso/jar/jpeg/jpg/lrz/lz/lz4/lzma/lzo/m1a/m1v/m2a/m2ts/m2v/m4a/m4b/m4p/m4r/m4v/mka/mkv/mov/mp1/mp2/mp3/mp4/mpa/mpeg/mpg/mpv/mts/odb/odf/odg/odi/odm/odp/ods/odt/oga/ogg/ogm/ogv/ogx/opus/otg/oth/otp/ots/ott/oxt/png/qt/rar/rpm/rz/rzip/spx/squashfs/sxc/sxd/sxg/sxm/sxw/sz/tbz/tbz2/tgz/tlz/ts/txz/tzo/vob/war/webm/webp/xz/z/zip/zst';
const skipCache = new Map<string, Set<string>>();

/** --skip-compress's suffix set (rsync's default list when none is given). */
function skipCompressSuffixes(option: string | undefined): Set<string> {
  const key = option ?? DEFAULT_SKIP_COMPRESS;
  let set = skipCache.get(key);
  if (!set) {
    set = new Set(key.split('/').filter(Boolean).map((s) => s.toLowerCase()));
    skipCache.set(key, set);
  }
  return set;
}
