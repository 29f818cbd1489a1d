/**
 * The zstd frame header (magic, descriptor, window descriptor, dictionary id, content size), read
 * only for the window size it declares: a decoder reserves that much history (plus two blocks of
 * buffers) as soon as the header is complete, so a session's budget must see it first. Pure parsing.
 */

const ZSTD_MAGIC = Buffer.of(0x28, 0xb5, 0x2f, 0xfd);
const MAX_BLOCK = 128 * 1024;
const DICT_ID_BYTES = [0, 1, 2, 4];
const CONTENT_SIZE_BYTES = [0, 2, 4, 8];

/** What the start of a frame says: more bytes needed, no window (not a zstd frame), or the window. */
export type FrameStart = { need: number } | { window: number | null };

/**
 * `prefix` is the start of a frame. Returns how many bytes the header needs when `prefix` is
 * shorter, else the window size in bytes (null for skippable or unknown frames: the decoder
 * skips or rejects those without reserving anything).
 */
export function readFrameStart(prefix: Buffer): FrameStart {
  // Skippable frames (magic 0x184D2A5x) hold nothing; other magics are refused by the decoder,
  // which (like this) looks at each byte of the magic as soon as it arrives.
  const seen = Math.min(prefix.length, 4);
  if (!prefix.subarray(0, seen).equals(ZSTD_MAGIC.subarray(0, seen))) return { window: null };
  if (prefix.length < 5) return { need: 5 };
  const fhd = prefix[4];
  const singleSegment = (fhd & 0x20) !== 0;
  const fcsFlag = fhd >> 6;
  const fcsBytes = fcsFlag === 0 && singleSegment ? 1 : CONTENT_SIZE_BYTES[fcsFlag];
  const dictBytes = DICT_ID_BYTES[fhd & 3];
  const size = 5 + (singleSegment ? 0 : 1) + dictBytes + fcsBytes;
  if (prefix.length < size) return { need: size };
  if (!singleSegment) {
    const exponent = prefix[5] >> 3;
    const base = 2 ** (10 + exponent);
    return { window: base + (base / 8) * (prefix[5] & 7) };
  }
  // A single-segment frame's window is its content size.
  return { window: contentSize(prefix.subarray(5 + dictBytes, size)) };
}

function contentSize(field: Buffer): number {
  switch (field.length) {
    case 1:
      return field[0];
    case 2:
      return field.readUInt16LE(0) + 256;
    case 4:
      return field.readUInt32LE(0);
    default:
      return Number(field.readBigUInt64LE(0));
  }
}

/** What a streaming decoder holds for a window: the history, an input block, an output block. */
export function decoderBytes(window: number): number {
  return window + 2 * Math.min(window, MAX_BLOCK);
}
