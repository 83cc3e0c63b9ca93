import type { BTree, TreeRoot } from './btree.js';
import { formatInvalid, unsupported } from './errors.js';
import { key } from './keys.js';
import { COMPRESSION_NAMES, FILE_EXTENT, KEY_TYPE } from './layout.js';
import type { TreeNode } from './tree-block.js';

/**
 * One file extent item ("EXTENT_DATA" in the on-disk format), checked as the kernel's tree-checker
 * does: the file range it covers and where its bytes come from.
 */
export type FileExtent =
  | {
      readonly kind: 'inline';
      readonly fileOffset: number;
      /** Bytes the extent yields (ram_bytes). */
      readonly length: number;
      readonly compression: number;
      /** The stored (possibly compressed) bytes, copied out of the leaf. */
      readonly data: Buffer;
    }
  | {
      readonly kind: 'regular' | 'prealloc';
      readonly fileOffset: number;
      /** num_bytes: the file bytes this item covers. */
      readonly length: number;
      readonly compression: number;
      /** Logical address of the on-disk extent, 0 for an explicit hole. */
      readonly diskBytenr: number;
      readonly diskNumBytes: number;
      /** Where in the (decoded) on-disk extent this item's bytes start. */
      readonly extentOffset: number;
      readonly ramBytes: number;
    };

/** Largest file offset an extent may reach (the kernel's MAX_LFS_FILESIZE is 2^63 - 1; numbers stop at 2^53). */
const MAX_FILE_OFFSET = Number.MAX_SAFE_INTEGER;

/**
 * The extents of one inode that overlap [from, to), in file order: the item at or before `from`
 * and every later one below `to`. Overlapping or out-of-order items are refused (check_extent_data_item).
 */
export async function* fileExtents(
  btree: BTree,
  tree: TreeRoot,
  ino: bigint,
  from: number,
  to: number,
  sectorSize: number,
  volume: string,
): AsyncGenerator<FileExtent> {
  const where = `${tree.what} inode ${ino}`;
  const before = await btree.lastKeyAtOrBefore(tree, key(ino, KEY_TYPE.EXTENT_DATA, BigInt(from)));
  const start = before && before.objectid === ino && before.type === KEY_TYPE.EXTENT_DATA ? before.offset : 0n;
  let previousEnd = -1;
  for await (const span of btree.range(
    tree,
    key(ino, KEY_TYPE.EXTENT_DATA, start),
    key(ino, KEY_TYPE.EXTENT_DATA, BigInt(Math.max(0, to - 1))),
  )) {
    for (let slot = span.start; slot < span.end; slot++) {
      const extent = decodeFileExtent(span.leaf, slot, sectorSize, volume, where);
      if (extent.fileOffset < previousEnd) {
        throw formatInvalid(
          volume,
          `${where} extent at ${extent.fileOffset}`,
          `overlaps the previous extent, which ends at ${previousEnd}`,
        );
      }
      previousEnd = extent.fileOffset + extent.length;
      if (previousEnd > from) yield extent;
    }
  }
}

function decodeFileExtent(leaf: TreeNode, slot: number, sectorSize: number, volume: string, inode: string): FileExtent {
  const offset = leaf.offsets[slot]!;
  const where = `${inode} extent at ${offset}`;
  const bad = (problem: string): Error => formatInvalid(volume, where, problem);
  const size = leaf.dataSize[slot]!;
  const bytes = leaf.raw.subarray(leaf.dataStart[slot], leaf.dataStart[slot]! + size);
  if (size < FILE_EXTENT.INLINE_DATA) throw bad(`item of ${size} bytes is truncated`);
  if (offset > BigInt(MAX_FILE_OFFSET) || Number(offset) % sectorSize !== 0) throw bad('file offset is not sector-aligned or out of range');
  const fileOffset = Number(offset);
  const type = bytes[FILE_EXTENT.type]!;
  const compression = bytes[FILE_EXTENT.compression]!;
  if (bytes[FILE_EXTENT.encryption] !== 0) throw unsupported(volume, 'encryption', `${where} is encrypted`);
  if (bytes.readUInt16LE(FILE_EXTENT.other_encoding) !== 0)
    throw unsupported(volume, 'other_encoding', `${where} uses an unknown encoding`);
  if (compression > FILE_EXTENT.COMPRESS_ZSTD) throw bad(`compression type ${compression} is unknown`);
  const ramBytes64 = bytes.readBigUInt64LE(FILE_EXTENT.ram_bytes);
  if (type === FILE_EXTENT.TYPE_INLINE) {
    const stored = size - FILE_EXTENT.INLINE_DATA;
    // Inline extents start the file and hold less than a sector once decoded.
    if (fileOffset !== 0) throw bad('an inline extent not at offset 0');
    if (ramBytes64 > BigInt(sectorSize)) throw bad(`inline extent of ${ramBytes64} bytes exceeds a sector`);
    const length = Number(ramBytes64);
    if (compression === FILE_EXTENT.COMPRESS_NONE && length !== stored) throw bad(`inline extent holds ${stored} bytes, says ${length}`);
    return { kind: 'inline', fileOffset, length, compression, data: Buffer.from(bytes.subarray(FILE_EXTENT.INLINE_DATA)) };
  }
  if (type !== FILE_EXTENT.TYPE_REG && type !== FILE_EXTENT.TYPE_PREALLOC) throw bad(`extent type ${type} is unknown`);
  if (size !== FILE_EXTENT.SIZE) throw bad(`item of ${size} bytes is not ${FILE_EXTENT.SIZE}`);
  const field = (at: number, what: string): number => {
    const value = bytes.readBigUInt64LE(at);
    if (value > BigInt(MAX_FILE_OFFSET) || Number(value) % sectorSize !== 0)
      throw bad(`${what} ${value} is not sector-aligned or out of range`);
    return Number(value);
  };
  const diskBytenr = field(FILE_EXTENT.disk_bytenr, 'disk_bytenr');
  const diskNumBytes = field(FILE_EXTENT.disk_num_bytes, 'disk_num_bytes');
  const extentOffset = field(FILE_EXTENT.offset, 'offset');
  const length = field(FILE_EXTENT.num_bytes, 'num_bytes');
  if (length === 0) throw bad('covers no bytes');
  if (fileOffset + length > MAX_FILE_OFFSET) throw bad('ends beyond the largest file offset');
  if (ramBytes64 > BigInt(MAX_FILE_OFFSET)) throw bad(`ram_bytes ${ramBytes64} is out of range`);
  const ramBytes = Number(ramBytes64);
  const kind = type === FILE_EXTENT.TYPE_REG ? 'regular' : 'prealloc';
  if (diskBytenr !== 0) {
    if (diskNumBytes === 0) throw bad('an extent of no disk bytes');
    if (compression !== FILE_EXTENT.COMPRESS_NONE) {
      if (kind === 'prealloc') throw bad('a compressed prealloc extent');
      // The decoder's memory bound: the kernel compresses at most 128 KiB into one extent.
      if (ramBytes === 0 || ramBytes > FILE_EXTENT.MAX_UNCOMPRESSED) {
        throw bad(
          `compressed (${COMPRESSION_NAMES[compression as 1 | 2 | 3]}) extent of ${ramBytes} bytes exceeds ${FILE_EXTENT.MAX_UNCOMPRESSED}`,
        );
      }
      if (diskNumBytes > FILE_EXTENT.MAX_UNCOMPRESSED) throw bad(`compressed extent occupies ${diskNumBytes} bytes on disk`);
      if (extentOffset + length > ramBytes) throw bad(`covers ${extentOffset}+${length} of a ${ramBytes}-byte extent`);
    } else if (extentOffset + length > diskNumBytes) {
      throw bad(`covers ${extentOffset}+${length} of a ${diskNumBytes}-byte extent`);
    }
  }
  return { kind, fileOffset, length, compression, diskBytenr, diskNumBytes, extentOffset, ramBytes };
}
