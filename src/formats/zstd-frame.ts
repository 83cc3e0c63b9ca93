import { CairnError } from '../core/errors.js';

/**
 * The outline of one Zstandard frame (RFC 8878 section 3.1.1), read without decoding it: where it
 * ends and what content size its header declares. qcow2 packs compressed clusters back to back
 * with no length field, so the frame must be cut out of the bytes that follow it, and its declared
 * size checked before a decoder allocates by it.
 *
 *   0  4  magic 0xFD2FB528 (little-endian)
 *   4  1  frame header descriptor: bits 7-6 FCS field size, 5 single segment, 3 reserved,
 *         2 content checksum, 1-0 dictionary id size
 *      …  window descriptor (1, absent with single segment), dictionary id (0/1/2/4),
 *         frame content size (0/1/2/4/8; the 2-byte form adds 256)
 *      …  blocks: 3-byte little-endian header (bit 0 last, bits 1-2 type, bits 3-23 size)
 *      …  content checksum (4) if flagged
 */
export const ZSTD_FRAME = {
  MAGIC: 0xfd2fb528,
  BLOCK_HEADER_SIZE: 3,
  BLOCK_TYPE_RAW: 0,
  BLOCK_TYPE_RLE: 1,
  BLOCK_TYPE_COMPRESSED: 2,
  CHECKSUM_SIZE: 4,
} as const;

const DICTIONARY_ID_SIZES = [0, 1, 2, 4] as const;
const CONTENT_SIZE_SIZES = [0, 2, 4, 8] as const;

export interface ZstdFrameOutline {
  /** Bytes from the magic to the end of the frame (checksum included). */
  frameLength: number;
  /** The frame content size the header declares, if it declares one. */
  contentSize: number | undefined;
}

function invalid(message: string): CairnError {
  return new CairnError('ERR_FORMAT_INVALID', `zstd frame: ${message}`);
}

/** Outlines the zstd frame at the start of `data`; an error if it is not one or is cut short. */
export function outlineZstdFrame(data: Buffer): ZstdFrameOutline {
  if (data.length < 5 || data.readUInt32LE(0) !== ZSTD_FRAME.MAGIC) throw invalid('bad magic');
  const descriptor = data[4]!;
  if ((descriptor & 0x08) !== 0) throw invalid('reserved bit set');
  const singleSegment = (descriptor & 0x20) !== 0;
  const contentSizeFlag = descriptor >> 6;
  const contentSizeBytes = contentSizeFlag === 0 && singleSegment ? 1 : CONTENT_SIZE_SIZES[contentSizeFlag]!;
  let at = 5 + (singleSegment ? 0 : 1) + DICTIONARY_ID_SIZES[descriptor & 3]!;
  if (at + contentSizeBytes > data.length) throw invalid('header cut short');
  let contentSize: number | undefined;
  if (contentSizeBytes === 1) contentSize = data[at]!;
  else if (contentSizeBytes === 2) contentSize = data.readUInt16LE(at) + 256;
  else if (contentSizeBytes === 4) contentSize = data.readUInt32LE(at);
  else if (contentSizeBytes === 8) {
    const value = data.readBigUInt64LE(at);
    // Any size a caller could accept fits far below 2^53; a larger one is refused by the caller anyway.
    contentSize = value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  }
  at += contentSizeBytes;
  for (;;) {
    if (at + ZSTD_FRAME.BLOCK_HEADER_SIZE > data.length) throw invalid('block header cut short');
    const header = data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16);
    at += ZSTD_FRAME.BLOCK_HEADER_SIZE;
    const last = (header & 1) !== 0;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw invalid('reserved block type');
    at += type === ZSTD_FRAME.BLOCK_TYPE_RLE ? 1 : size;
    if (at > data.length) throw invalid('block cut short');
    if (last) break;
  }
  if ((descriptor & 0x04) !== 0) at += ZSTD_FRAME.CHECKSUM_SIZE;
  if (at > data.length) throw invalid('checksum cut short');
  return { frameLength: at, contentSize };
}
