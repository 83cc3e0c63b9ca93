/**
 * The most a zstd payload can decode to, read from its frame and block headers without decoding
 * (RFC 8878 §3.1.1). The zstd binding decodes into a buffer it grows as needed: a chunk file of a
 * few kilobytes can declare nothing and decode to gigabytes, so a chunk reader asks this first.
 *
 * Frame (§3.1.1): magic (4, LE), Frame_Header_Descriptor (1), Window_Descriptor (0-1),
 * Dictionary_ID (0-4), Frame_Content_Size (0-8), blocks, Content_Checksum (0-4).
 * Block header (§3.1.1.2, 3 bytes LE): bit 0 Last_Block, bits 1-2 Block_Type, bits 3-23 Block_Size.
 */
export const ZSTD_FRAME = {
  MAGIC: 0xfd2fb528,
  BLOCK_HEADER_SIZE: 3,
  BLOCK_RAW: 0,
  BLOCK_RLE: 1,
  BLOCK_COMPRESSED: 2,
  /** §3.1.1.2.3: Block_Maximum_Size is the smaller of Window_Size and 128 KiB. */
  MAX_BLOCK_SIZE: 128 * 1024,
  CHECKSUM_SIZE: 4,
  /** §3.1.1.1.1: bytes of Dictionary_ID per Dictionary_ID_flag, and of Frame_Content_Size per FCS_Field_Size flag. */
  DICTIONARY_ID_SIZES: [0, 1, 2, 4],
  CONTENT_SIZE_SIZES: [0, 2, 4, 8],
} as const;

/** What one frame's headers say, read without decoding it. */
export interface ZstdFrameOutline {
  /** Bytes from the magic to the end of the frame (checksum included). */
  frameLength: number;
  /** The content size the header declares, if it declares one (not trusted: a frame may lie). */
  contentSize: number | undefined;
  /** The most its blocks can decode to: raw and RLE blocks their exact size, compressed blocks the block maximum. */
  bound: number;
}

/**
 * Outlines the zstd frame at the start of `data` (bytes may follow it: qcow2 packs compressed
 * clusters back to back), or gives the reason it is not one: a reserved bit or block type, a header
 * or block cut short.
 */
export function outlineZstdFrame(data: Buffer): ZstdFrameOutline | { invalid: string } {
  if (data.length < 6 || data.readUInt32LE(0) !== ZSTD_FRAME.MAGIC) return { invalid: 'not a zstd frame' };
  const descriptor = data.readUInt8(4);
  const singleSegment = (descriptor & 0x20) !== 0;
  if ((descriptor & 0x08) !== 0) return { invalid: 'reserved bit set in the zstd frame header' };
  const hasChecksum = (descriptor & 0x04) !== 0;
  let at = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const windowDescriptor = data.readUInt8(at++);
    const windowLog = 10 + (windowDescriptor >> 3);
    windowSize = 2 ** windowLog + (2 ** windowLog / 8) * (windowDescriptor & 7);
  }
  at += ZSTD_FRAME.DICTIONARY_ID_SIZES[descriptor & 3]!;
  const fcsFlag = descriptor >> 6;
  const contentSizeBytes = fcsFlag === 0 && singleSegment ? 1 : ZSTD_FRAME.CONTENT_SIZE_SIZES[fcsFlag]!;
  if (at + contentSizeBytes > data.length) return { invalid: 'zstd frame header is truncated' };
  let contentSize: number | undefined;
  if (contentSizeBytes === 1) contentSize = data[at]!;
  else if (contentSizeBytes === 2) contentSize = data.readUInt16LE(at) + 256;
  else if (contentSizeBytes === 4) contentSize = data.readUInt32LE(at);
  else if (contentSizeBytes === 8) {
    const value = data.readBigUInt64LE(at);
    contentSize = value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
  }
  at += contentSizeBytes;
  // A single-segment frame's window is its content size (§3.1.1.1.2), which is not trusted here.
  const blockMax = singleSegment ? ZSTD_FRAME.MAX_BLOCK_SIZE : Math.min(ZSTD_FRAME.MAX_BLOCK_SIZE, windowSize);
  let bound = 0;
  for (;;) {
    if (at + ZSTD_FRAME.BLOCK_HEADER_SIZE > data.length) return { invalid: 'zstd block header is truncated' };
    const header = data.readUIntLE(at, ZSTD_FRAME.BLOCK_HEADER_SIZE);
    at += ZSTD_FRAME.BLOCK_HEADER_SIZE;
    const last = (header & 1) !== 0;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === ZSTD_FRAME.BLOCK_RAW) {
      at += size;
      bound += size;
    } else if (type === ZSTD_FRAME.BLOCK_RLE) {
      at += 1;
      bound += size;
    } else if (type === ZSTD_FRAME.BLOCK_COMPRESSED) {
      at += size;
      bound += blockMax;
    } else {
      return { invalid: 'reserved zstd block type' };
    }
    if (at > data.length) return { invalid: 'zstd block is truncated' };
    if (last) break;
  }
  if (hasChecksum) at += ZSTD_FRAME.CHECKSUM_SIZE;
  if (at > data.length) return { invalid: 'zstd frame checksum is truncated' };
  return { frameLength: at, contentSize, bound };
}

/**
 * An upper bound on what `payload` (zstd frames back to back, nothing else) decodes to, or a reason
 * it cannot be: trailing bytes, a reserved bit or block type, a truncated header.
 */
export function zstdDecodedBound(
  payload: Buffer,
  options: { frames?: 'one' | 'many' } = {},
): { bound: number; frames: number } | { invalid: string } {
  let at = 0;
  let bound = 0;
  let frames = 0;
  do {
    if (at > 0 && (payload.length - at < 4 || payload.readUInt32LE(at) !== ZSTD_FRAME.MAGIC))
      return { invalid: 'bytes after the zstd frame' };
    const frame = outlineZstdFrame(payload.subarray(at));
    if ('invalid' in frame) return frame;
    at += frame.frameLength;
    bound += frame.bound;
    frames++;
    if (options.frames !== 'many' && at !== payload.length) return { invalid: 'bytes after the zstd frame' };
  } while (at < payload.length);
  return { bound, frames };
}
