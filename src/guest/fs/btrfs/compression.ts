// Decoding of compressed extents (the kernel's fs/btrfs/{zlib,lzo,zstd}.c). Each extent decodes to
// at most its ram_bytes, which the extent parser bounds by 128 KiB (BTRFS_MAX_UNCOMPRESSED): no
// decoder allocates more than that whatever the compressed bytes say. A stream that does not
// decode, or yields more, is ERR_FORMAT_INVALID naming the extent; one that yields less is
// zero-filled to ram_bytes, as the kernel's page-filling leaves it.
import { constants, inflateRawSync } from 'node:zlib';
import { CairnError } from '../../../core/errors.js';
import { zstdDecompress } from '../../../util/zstd.js';
import { FILE_EXTENT } from './layout.js';
import { lzo1xDecompress } from './lzo1x.js';

/** btrfs's lzo framing: a u32 total length, then per-segment u32 lengths (lzo.c "LZO_LEN"). */
const LZO_LEN = 4;
/** zlib's CMF/FLG header: compression method 8 (deflate), and the FDICT flag. */
const ZLIB_DEFLATED = 8;
const ZLIB_PRESET_DICT = 0x20;

export class DecodeError extends Error {}

/** Decodes one extent's compressed bytes (`input`, possibly zero-padded to a sector) into `ramBytes` bytes. */
export async function decodeExtent(compression: number, input: Buffer, ramBytes: number, sectorSize: number): Promise<Buffer> {
  let plain: Buffer;
  switch (compression) {
    case FILE_EXTENT.COMPRESS_ZLIB:
      plain = inflate(input, ramBytes);
      break;
    case FILE_EXTENT.COMPRESS_LZO:
      plain = lzoDecode(input, ramBytes, sectorSize);
      break;
    case FILE_EXTENT.COMPRESS_ZSTD:
      try {
        plain = await zstdDecompress(input.subarray(0, zstdFrameLength(input)), ramBytes);
      } catch (err) {
        if (err instanceof CairnError) throw new DecodeError(err.message);
        throw err;
      }
      break;
    default:
      throw new DecodeError(`compression type ${compression} is unknown`);
  }
  if (plain.length === ramBytes) return plain;
  const out = Buffer.alloc(ramBytes);
  plain.copy(out);
  return out;
}

/**
 * zlib.c zlib_decompress_bio: the stream is zlib-wrapped, but the kernel skips the 2-byte header
 * and inflates raw (no Adler-32 check), so do the same; trailing padding after the stream is ignored.
 */
function inflate(input: Buffer, ramBytes: number): Buffer {
  let raw = input;
  if (
    input.length > 2 &&
    (input[0]! & 0x0f) === ZLIB_DEFLATED &&
    !(input[1]! & ZLIB_PRESET_DICT) &&
    ((input[0]! << 8) + input[1]!) % 31 === 0
  ) {
    raw = input.subarray(2);
  }
  try {
    return inflateRawSync(raw, { maxOutputLength: Math.max(1, ramBytes), finishFlush: constants.Z_FINISH });
  } catch (err) {
    throw new DecodeError(`zlib stream does not decode within ${ramBytes} bytes: ${(err as Error).message}`);
  }
}

/**
 * lzo.c lzo_decompress_bio: a u32 total length, then segments of (u32 length, LZO1X data), each
 * decoding to at most one sector; a segment header never straddles a sector, so fewer than 4
 * bytes left in a sector are padding.
 */
function lzoDecode(input: Buffer, ramBytes: number, sectorSize: number): Buffer {
  if (input.length < LZO_LEN) throw new DecodeError('lzo extent is shorter than its header');
  const total = input.readUInt32LE(0);
  if (total > input.length || total < LZO_LEN) throw new DecodeError(`lzo extent claims ${total} bytes, holds ${input.length}`);
  const out = Buffer.alloc(ramBytes);
  let inAt = LZO_LEN;
  let outAt = 0;
  while (inAt < total) {
    if (inAt + LZO_LEN > total) throw new DecodeError(`lzo segment header at ${inAt} is truncated`);
    const segment = input.readUInt32LE(inAt);
    inAt += LZO_LEN;
    if (segment === 0 || inAt + segment > total) throw new DecodeError(`lzo segment of ${segment} bytes at ${inAt} overruns the extent`);
    if (outAt >= ramBytes) throw new DecodeError(`lzo segments decode to more than ${ramBytes} bytes`);
    let plain: Buffer;
    try {
      plain = lzo1xDecompress(input.subarray(inAt, inAt + segment), Math.min(sectorSize, ramBytes - outAt));
    } catch (err) {
      throw new DecodeError(`lzo segment at ${inAt}: ${(err as Error).message}`);
    }
    plain.copy(out, outAt);
    outAt += plain.length;
    inAt += segment;
    const left = sectorSize - (inAt % sectorSize);
    if (left < LZO_LEN) inAt += left;
  }
  return out;
}

/** zstd's Block_Maximum_Size (RFC 8878 §3.1.1.2.4): no block regenerates more. */
const ZSTD_BLOCK_MAX = 128 * 1024;
/**
 * The most a frame for one extent may regenerate by its block headers before it is refused: the
 * kernel's frames for at most 128 KiB have a block or two, so twice that and a margin is plenty,
 * and the decoder never grows its output past it whatever the frame declares (or leaves out).
 */
const ZSTD_FRAME_REGENERATED_MAX = 4 * FILE_EXTENT.MAX_UNCOMPRESSED;

/**
 * The length of the zstd frame at the start of `input` (RFC 8878 §3.1.1): btrfs zero-pads extents
 * to a sector, and the decoder refuses bytes after the frame that are not another frame. Walking
 * the block headers also bounds what the frame can regenerate (raw and RLE blocks say their size,
 * compressed ones are at most min(window, 128 KiB)), so a frame without a declared content size
 * cannot make the decoder allocate more than ZSTD_FRAME_REGENERATED_MAX.
 */
export function zstdFrameLength(input: Buffer): number {
  if (input.length < 6 || input.readUInt32LE(0) !== 0xfd2fb528) throw new DecodeError('not a zstd frame');
  const descriptor = input[4]!;
  const singleSegment = (descriptor >> 5) & 1;
  const hasChecksum = (descriptor >> 2) & 1;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6]!;
  let blockMax = ZSTD_BLOCK_MAX;
  if (!singleSegment) {
    const window = input[5]!;
    const log = 10 + (window >> 3);
    const size = 2 ** log + (2 ** log / 8) * (window & 7);
    blockMax = Math.min(blockMax, size);
  }
  let at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][descriptor & 3]! + fcsBytes;
  let regenerated = 0;
  for (;;) {
    if (at + 3 > input.length) throw new DecodeError('zstd frame is truncated');
    const header = input[at]! | (input[at + 1]! << 8) | (input[at + 2]! << 16);
    at += 3;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw new DecodeError('zstd block of reserved type');
    if (size > ZSTD_BLOCK_MAX) throw new DecodeError(`zstd block of ${size} bytes exceeds the block maximum`);
    // Raw and RLE blocks regenerate `size` bytes; a compressed one at most a block.
    regenerated += type === 2 ? blockMax : size;
    if (regenerated > ZSTD_FRAME_REGENERATED_MAX)
      throw new DecodeError(`zstd frame may regenerate more than ${ZSTD_FRAME_REGENERATED_MAX} bytes`);
    at += type === 1 ? 1 : size;
    if (header & 1) break;
  }
  at += hasChecksum ? 4 : 0;
  if (at > input.length) throw new DecodeError('zstd frame is truncated');
  return at;
}
