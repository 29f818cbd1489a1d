/**
 * Multiplexed framing: each frame is a uint32 LE header ((7 + tag) << 24 | length) + payload.
 */
export const MsgTag = {
  DATA: 0,
  ERROR_XFER: 1,
  INFO: 2,
  ERROR: 3, // proto >= 30
  WARNING: 4, // proto >= 30
  IO_ERROR: 22, // proto >= 30
  IO_TIMEOUT: 33,
  NOOP: 42, // proto >= 30
  ERROR_EXIT: 86, // proto >= 31
  SUCCESS: 100,
  DELETED: 101, // proto >= 29
  NO_SEND: 102, // proto >= 30
} as const;

/** Outgoing data frames are cut like the reference does (IO_BUFFER_SIZE 32 KiB including the header). */
export const DATA_FRAME_MAX = 32 * 1024 - 4;

export function frameHeader(tag: number, length: number): number {
  return (((7 + tag) << 24) | (length & 0xffffff)) >>> 0;
}

/**
 * Maps a message tag to what a peer of `protocol` understands: 2.6.9 / proto < 30 peers abort on
 * MSG_ERROR / MSG_WARNING, so those become MSG_ERROR_XFER / MSG_INFO (as the reference does).
 */
export function tagForProtocol(tag: number, protocol: number): number {
  if (protocol >= 30) return tag;
  if (tag === MsgTag.ERROR) return MsgTag.ERROR_XFER;
  if (tag === MsgTag.WARNING) return MsgTag.INFO;
  return tag;
}
