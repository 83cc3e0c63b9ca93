import type { ChangedBlocks } from '../core/changed-blocks.js';
import { CairnError } from '../core/errors.js';

/** Xen's changed-block tracking granularity: VDI.list_changed_blocks marks 64 KiB blocks. */
export const XEN_CBT_BLOCK_SIZE = 64 * 1024;

/** Printable ASCII and whitespace: content that reads as text is held to be base64. */
const TEXT = /^[\x20-\x7e\t\r\n]*$/;
/** Strict base64 (RFC 4648 section 4): groups of four, padding only at the end. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/**
 * blktap keeps the bitmap in native `unsigned long` words (formats.md section 4), so XAPI's bitmap
 * may run up to the next 64-bit word past the disk's last block; longer is another disk's bitmap.
 */
const WORD_BYTES = 8;

/**
 * Parses a changed-block bitmap: one bit per block, bit n in byte n/8 counted from the least
 * significant bit. XAPI's `VDI.list_changed_blocks` returns it base64-encoded; raw bytes are accepted
 * too. Content that is text (printable ASCII and whitespace) must be valid base64 and is decoded;
 * anything else is taken as raw bytes.
 */
export function parseChangedBlockBitmap(content: Buffer, blockSize = XEN_CBT_BLOCK_SIZE): ChangedBlocks {
  if (!Number.isSafeInteger(blockSize) || blockSize < 512) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `changed-block size ${blockSize} must be at least 512 bytes`);
  }
  let bits = content;
  const text = content.toString('latin1');
  if (content.length > 0 && TEXT.test(text)) {
    const compact = text.replace(/\s+/g, '');
    if (!BASE64.test(compact)) {
      throw new CairnError(
        'ERR_INVALID_ARGUMENT',
        'changed-block bitmap is text but not valid base64 (as VDI.list_changed_blocks returns it)',
      );
    }
    bits = Buffer.from(compact, 'base64');
  }
  return bitmapOf(bits, blockSize);
}

export function bitmapOf(bits: Buffer, blockSize: number): ChangedBlocks {
  return {
    blockSize,
    blockCount: bits.length * 8,
    isChanged(blockIndex: number): boolean {
      if (blockIndex >= bits.length * 8) return true;
      return ((bits[blockIndex >> 3] ?? 0) & (1 << (blockIndex & 7))) !== 0;
    },
  };
}

/** Checks that a bitmap covers a disk of `size` bytes; a short bitmap is almost always the wrong file. */
export function assertBitmapCovers(bitmap: ChangedBlocks, size: number, name: string): void {
  const needed = Math.ceil(size / bitmap.blockSize);
  if (bitmap.blockCount < needed) {
    throw new CairnError(
      'ERR_INVALID_ARGUMENT',
      `changed-block bitmap for '${name}' covers ${bitmap.blockCount} blocks of ${bitmap.blockSize} bytes, the disk needs ${needed}`,
      { disk: name },
    );
  }
}

/** Checks that a bitmap is not longer than a disk of `size` bytes needs: a longer one is almost always another disk's. */
export function assertBitmapFits(bitmap: ChangedBlocks, size: number, name: string): void {
  const neededBytes = Math.ceil(Math.ceil(size / bitmap.blockSize) / 8);
  const allowedBytes = Math.ceil(neededBytes / WORD_BYTES) * WORD_BYTES;
  if (bitmap.blockCount / 8 > allowedBytes) {
    throw new CairnError(
      'ERR_INVALID_ARGUMENT',
      `changed-block bitmap for '${name}' covers ${bitmap.blockCount} blocks of ${bitmap.blockSize} bytes, more than the disk's ${Math.ceil(size / bitmap.blockSize)}`,
      { disk: name },
    );
  }
}
