/** The compatibility-flag bits the server sends after the version exchange (protocol >= 30; rsync's compat.c CF_*). */
export const CF = {
  INC_RECURSE: 0x001,
  SYMLINK_TIMES: 0x002,
  SYMLINK_ICONV: 0x004,
  SAFE_FLIST: 0x008,
  AVOID_XATTR_OPTIM: 0x010,
  CHKSUM_SEED_FIX: 0x020,
  INPLACE_PARTIAL_DIR: 0x040,
  VARINT_FLIST_FLAGS: 0x080,
  ID0_NAMES: 0x100,
} as const;
