import type { ChangedBlocks } from '../core/changed-blocks.js';
import { CairnError } from '../core/errors.js';

/** Xen's changed-block tracking granularity: VDI.list_changed_blocks marks 64 KiB blocks. */
export const XEN_CBT_BLOCK_SIZE = 64 * 1024;

const BASE64_TEXT = /^[A-Za-z0-9+/=\s]*$/;

/**
 * Parses a changed-block bitmap: one bit per block, bit n in byte n/8 counted from the least
 * significant bit. XAPI's `VDI.list_changed_blocks` returns it base64-encoded; raw bytes are accepted
 * too. Text that is valid base64 is decoded; anything else is taken as raw bytes.
 */
export function parseChangedBlockBitmap(content: Buffer, blockSize = XEN_CBT_BLOCK_SIZE): ChangedBlocks {
  if (!Number.isSafeInteger(blockSize) || blockSize < 512) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `changed-block size ${blockSize} must be at least 512 bytes`);
  }
  let bits = content;
  const text = content.toString('latin1');
  if (content.length > 0 && BASE64_TEXT.test(text)) {
    const compact = text.replace(/\s+/g, '');
    if (compact.length % 4 !== 0) {
      throw new CairnError('ERR_FORMAT_INVALID', 'changed-block bitmap looks like base64 but its length is not a multiple of 4');
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
