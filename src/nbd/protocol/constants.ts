/**
 * Wire constants of the NBD protocol, spelled as in NetworkBlockDevice/nbd doc/proto.md.
 * Names printed in logs come from these objects (see `nbdName`).
 */

export const NBD_MAGIC = {
  /** Server greeting, first 8 bytes ("NBDMAGIC"). */
  NBDMAGIC: 0x4e42444d41474943n,
  /** Newstyle greeting word 2 and the prefix of every client option ("IHAVEOPT"). */
  IHAVEOPT: 0x49484156454f5054n,
  /** Prefix of every option reply. */
  NBD_REP_MAGIC: 0x0003e889045565a9n,
  NBD_REQUEST_MAGIC: 0x25609513,
  NBD_SIMPLE_REPLY_MAGIC: 0x67446698,
  NBD_STRUCTURED_REPLY_MAGIC: 0x668e33ef,
  NBD_EXTENDED_REQUEST_MAGIC: 0x21e41c71,
  NBD_EXTENDED_REPLY_MAGIC: 0x6e8a278c,
} as const;

/** Handshake flags the server sends in its greeting (16 bits). */
export const NBD_HANDSHAKE_FLAG = {
  NBD_FLAG_FIXED_NEWSTYLE: 1 << 0,
  NBD_FLAG_NO_ZEROES: 1 << 1,
} as const;

/** Client flags sent right after the greeting (32 bits). */
export const NBD_CLIENT_FLAG = {
  NBD_FLAG_C_FIXED_NEWSTYLE: 1 << 0,
  NBD_FLAG_C_NO_ZEROES: 1 << 1,
} as const;

/** Transmission flags (16 bits), sent with the export size. */
export const NBD_TRANSMISSION_FLAG = {
  NBD_FLAG_HAS_FLAGS: 1 << 0,
  NBD_FLAG_READ_ONLY: 1 << 1,
  NBD_FLAG_SEND_FLUSH: 1 << 2,
  NBD_FLAG_SEND_FUA: 1 << 3,
  NBD_FLAG_ROTATIONAL: 1 << 4,
  NBD_FLAG_SEND_TRIM: 1 << 5,
  NBD_FLAG_SEND_WRITE_ZEROES: 1 << 6,
  NBD_FLAG_SEND_DF: 1 << 7,
  NBD_FLAG_CAN_MULTI_CONN: 1 << 8,
  NBD_FLAG_SEND_RESIZE: 1 << 9,
  NBD_FLAG_SEND_CACHE: 1 << 10,
  NBD_FLAG_SEND_FAST_ZERO: 1 << 11,
  NBD_FLAG_BLOCK_STAT_PAYLOAD: 1 << 12,
} as const;

/** Option types a client sends during haggling. */
export const NBD_OPT = {
  NBD_OPT_EXPORT_NAME: 1,
  NBD_OPT_ABORT: 2,
  NBD_OPT_LIST: 3,
  NBD_OPT_PEEK_EXPORT: 4,
  NBD_OPT_STARTTLS: 5,
  NBD_OPT_INFO: 6,
  NBD_OPT_GO: 7,
  NBD_OPT_STRUCTURED_REPLY: 8,
  NBD_OPT_LIST_META_CONTEXT: 9,
  NBD_OPT_SET_META_CONTEXT: 10,
  NBD_OPT_EXTENDED_HEADERS: 11,
} as const;

/** Option reply types; errors have bit 31 set. */
export const NBD_REP = {
  NBD_REP_ACK: 1,
  NBD_REP_SERVER: 2,
  NBD_REP_INFO: 3,
  NBD_REP_META_CONTEXT: 4,
  NBD_REP_ERR_UNSUP: 0x80000001,
  NBD_REP_ERR_POLICY: 0x80000002,
  NBD_REP_ERR_INVALID: 0x80000003,
  NBD_REP_ERR_PLATFORM: 0x80000004,
  NBD_REP_ERR_TLS_REQD: 0x80000005,
  NBD_REP_ERR_UNKNOWN: 0x80000006,
  NBD_REP_ERR_SHUTDOWN: 0x80000007,
  NBD_REP_ERR_BLOCK_SIZE_REQD: 0x80000008,
  NBD_REP_ERR_TOO_BIG: 0x80000009,
  NBD_REP_ERR_EXT_HEADER_REQD: 0x8000000a,
} as const;

export const NBD_REP_FLAG_ERROR = 0x80000000;

/** Information types in NBD_REP_INFO replies and in INFO/GO requests. */
export const NBD_INFO = {
  NBD_INFO_EXPORT: 0,
  NBD_INFO_NAME: 1,
  NBD_INFO_DESCRIPTION: 2,
  NBD_INFO_BLOCK_SIZE: 3,
} as const;

/** Request types in the transmission phase. */
export const NBD_CMD = {
  NBD_CMD_READ: 0,
  NBD_CMD_WRITE: 1,
  NBD_CMD_DISC: 2,
  NBD_CMD_FLUSH: 3,
  NBD_CMD_TRIM: 4,
  NBD_CMD_CACHE: 5,
  NBD_CMD_WRITE_ZEROES: 6,
  NBD_CMD_BLOCK_STATUS: 7,
  NBD_CMD_RESIZE: 8,
} as const;

/** Command flags (16 bits) of a request. */
export const NBD_CMD_FLAG = {
  NBD_CMD_FLAG_FUA: 1 << 0,
  NBD_CMD_FLAG_NO_HOLE: 1 << 1,
  NBD_CMD_FLAG_DF: 1 << 2,
  NBD_CMD_FLAG_REQ_ONE: 1 << 3,
  NBD_CMD_FLAG_FAST_ZERO: 1 << 4,
  NBD_CMD_FLAG_PAYLOAD_LEN: 1 << 5,
} as const;

/** Flags of a structured reply chunk. */
export const NBD_REPLY_FLAG = {
  NBD_REPLY_FLAG_DONE: 1 << 0,
} as const;

/** Structured reply chunk types; bit 15 marks an error chunk. */
export const NBD_REPLY_TYPE = {
  NBD_REPLY_TYPE_NONE: 0,
  NBD_REPLY_TYPE_OFFSET_DATA: 1,
  NBD_REPLY_TYPE_OFFSET_HOLE: 2,
  NBD_REPLY_TYPE_BLOCK_STATUS: 5,
  NBD_REPLY_TYPE_BLOCK_STATUS_EXT: 6,
  NBD_REPLY_TYPE_ERROR: 0x8001,
  NBD_REPLY_TYPE_ERROR_OFFSET: 0x8002,
} as const;

export const NBD_REPLY_TYPE_ERROR_BIT = 0x8000;

/** Error values carried in replies (not the host's errno numbering). */
export const NBD_ERROR = {
  NBD_SUCCESS: 0,
  NBD_EPERM: 1,
  NBD_EIO: 5,
  NBD_ENOMEM: 12,
  NBD_EINVAL: 22,
  NBD_ENOSPC: 28,
  NBD_EOVERFLOW: 75,
  NBD_ENOTSUP: 95,
  NBD_ESHUTDOWN: 108,
} as const;

/** Flags of the `base:allocation` meta context. */
export const NBD_STATE = {
  NBD_STATE_HOLE: 1 << 0,
  NBD_STATE_ZERO: 1 << 1,
} as const;

/** Flag of `qemu:dirty-bitmap:*` contexts (and Cairn's `cairn:changed:*`). */
export const NBD_STATE_DIRTY = 1 << 0;

/** Fixed sizes of headers and limits from the spec. */
export const NBD_SIZE = {
  /** NBDMAGIC + IHAVEOPT + u16 handshake flags. */
  SERVER_GREETING: 18,
  CLIENT_FLAGS: 4,
  /** IHAVEOPT + u32 option + u32 length. */
  OPTION_HEADER: 16,
  /** magic + u32 option + u32 reply type + u32 length. */
  OPTION_REPLY_HEADER: 20,
  /** u64 size + u16 flags (+ 124 zero bytes unless NO_ZEROES). */
  EXPORT_NAME_REPLY: 10,
  EXPORT_NAME_PADDING: 124,
  REQUEST: 28,
  SIMPLE_REPLY: 16,
  STRUCTURED_REPLY_HEADER: 20,
  /** Strings SHOULD be <= 256 bytes and MUST be <= 4096 bytes. */
  MAX_STRING: 4096,
  /** Payloads up to 32 MiB must be accepted; larger ones may be treated as abuse. */
  MAX_PAYLOAD: 32 * 1024 * 1024,
} as const;

export const NBD_DEFAULT_PORT = 10809;

/** The meta context every server of block status offers. */
export const NBD_BASE_ALLOCATION = 'base:allocation';

type ConstTable = Readonly<Record<string, number | bigint>>;

/** Spec name of a wire value, for logs: `nbdName(NBD_CMD, 0)` is `NBD_CMD_READ`. */
export function nbdName(table: ConstTable, value: number | bigint): string {
  for (const [name, v] of Object.entries(table)) {
    if (v === value) return name;
  }
  return `unknown(${typeof value === 'bigint' ? '0x' + value.toString(16) : value})`;
}

/** True for option reply types that signal an error (bit 31). */
export function isOptionReplyError(type: number): boolean {
  return (type & NBD_REP_FLAG_ERROR) !== 0;
}
