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

/**
 * An upper bound on what `payload` (one zstd frame, nothing after it) decodes to, or a reason it
 * cannot be one frame: several frames, trailing bytes, a reserved bit or block type, a truncated
 * header. Raw and RLE blocks count their exact size, compressed blocks the block maximum.
 */
export function zstdDecodedBound(payload: Buffer): { bound: number } | { invalid: string } {
  if (payload.length < 6 || payload.readUInt32LE(0) !== ZSTD_FRAME.MAGIC) return { invalid: 'not a zstd frame' };
  const descriptor = payload.readUInt8(4);
  const singleSegment = (descriptor & 0x20) !== 0;
  if ((descriptor & 0x08) !== 0) return { invalid: 'reserved bit set in the zstd frame header' };
  const hasChecksum = (descriptor & 0x04) !== 0;
  let at = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const windowDescriptor = payload.readUInt8(at++);
    const windowLog = 10 + (windowDescriptor >> 3);
    windowSize = 2 ** windowLog + (2 ** windowLog / 8) * (windowDescriptor & 7);
  }
  at += ZSTD_FRAME.DICTIONARY_ID_SIZES[descriptor & 3]!;
  const fcsFlag = descriptor >> 6;
  const contentSizeBytes = fcsFlag === 0 && singleSegment ? 1 : ZSTD_FRAME.CONTENT_SIZE_SIZES[fcsFlag]!;
  if (at + contentSizeBytes > payload.length) return { invalid: 'zstd frame header is truncated' };
  // A single-segment frame's window is its content size (§3.1.1.1.2); that declared size is not
  // trusted here, only the block bound (a frame may lie about it).
  at += contentSizeBytes;
  const blockMax = singleSegment ? ZSTD_FRAME.MAX_BLOCK_SIZE : Math.min(ZSTD_FRAME.MAX_BLOCK_SIZE, windowSize);
  let bound = 0;
  for (;;) {
    if (at + ZSTD_FRAME.BLOCK_HEADER_SIZE > payload.length) return { invalid: 'zstd block header is truncated' };
    const header = payload.readUIntLE(at, ZSTD_FRAME.BLOCK_HEADER_SIZE);
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
    if (at > payload.length) return { invalid: 'zstd block is truncated' };
    if (last) break;
  }
  if (hasChecksum) at += ZSTD_FRAME.CHECKSUM_SIZE;
  if (at !== payload.length) return { invalid: 'bytes after the zstd frame' };
  return { bound };
}
