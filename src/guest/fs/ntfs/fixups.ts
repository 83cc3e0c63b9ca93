import { MULTI_SECTOR } from './layout.js';

/**
 * Applies the multi-sector fixups of one MFT record or index block in place (ntfs-3g mst.c
 * ntfs_mst_post_read_fixup): the update sequence array at usa_ofs holds the update sequence number
 * then one saved u16 per 512-byte stride; the last u16 of every stride must equal the number (else
 * the write was torn or the bytes are not what they claim) and is replaced by the saved value.
 * Returns undefined when the record checks out, else what is wrong with it.
 */
export function applyFixups(record: Buffer, minHeaderSize: number): string | undefined {
  const size = record.length;
  const usaOffset = record.readUInt16LE(MULTI_SECTOR.usa_ofs);
  const usaCount = record.readUInt16LE(MULTI_SECTOR.usa_count);
  const strides = size / MULTI_SECTOR.STRIDE;
  if (!Number.isInteger(strides) || usaCount !== strides + 1) {
    return `update sequence array has ${usaCount} entries for ${size} bytes (expected ${strides + 1})`;
  }
  // The array must lie in the header's first stride, even-aligned, clear of the fields before it.
  if (usaOffset < minHeaderSize || usaOffset % 2 !== 0 || usaOffset + usaCount * 2 > MULTI_SECTOR.STRIDE - 2) {
    return `update sequence array at byte ${usaOffset} is misplaced`;
  }
  const usn = record.readUInt16LE(usaOffset);
  for (let i = 0; i < strides; i++) {
    const tail = (i + 1) * MULTI_SECTOR.STRIDE - 2;
    if (record.readUInt16LE(tail) !== usn) {
      return `update sequence mismatch in stride ${i} (found 0x${record.readUInt16LE(tail).toString(16)}, expected 0x${usn.toString(16)}): a torn or damaged write`;
    }
  }
  for (let i = 0; i < strides; i++) {
    const tail = (i + 1) * MULTI_SECTOR.STRIDE - 2;
    record.writeUInt16LE(record.readUInt16LE(usaOffset + 2 + i * 2), tail);
  }
  return undefined;
}
