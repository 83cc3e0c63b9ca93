import { formatInvalid } from './errors.js';
import { ATTR_FLAGS, COMPRESSION } from './layout.js';
import type { NtfsAttribute } from './node.js';

/** How an attribute's value is stored, its sizes checked against each other and the volume. */
export interface AttributeLayout {
  readonly resident: boolean;
  /** The value's size (a file's length). */
  readonly dataSize: number;
  /** Bytes below this were written; the rest of the value reads as zeros. */
  readonly initializedSize: number;
  readonly allocatedSize: number;
  /** Bytes per compression unit, or 0 when the value is not compressed. */
  readonly compressionUnitSize: number;
  readonly sparse: boolean;
  readonly encrypted: boolean;
}

/**
 * The layout of `attr` (sizes from its first extent, as libfsntfs "Non-resident MFT attribute"
 * says only that one carries them). Checked: data within the allocation, the allocation a whole
 * number of clusters (of units when compressed) and, unless sparse or compressed (where holes take
 * no room), within the volume; compression only as LZNT1 in units Windows can write.
 */
export function attributeLayout(
  attr: NtfsAttribute,
  clusterSize: number,
  clusterCount: number,
  volume: string,
  where: string,
  unsupported: (feature: string, detail: string) => Error,
): AttributeLayout {
  const encrypted = (attr.flags & ATTR_FLAGS.IS_ENCRYPTED) !== 0;
  if (attr.resident) {
    const size = attr.resident.value.length;
    return { resident: true, dataSize: size, initializedSize: size, allocatedSize: size, compressionUnitSize: 0, sparse: false, encrypted };
  }
  const bad = (problem: string): Error => formatInvalid(volume, where, problem);
  const first = attr.extents[0]!;
  const sparse = (attr.flags & ATTR_FLAGS.IS_SPARSE) !== 0;
  const compression = attr.flags & ATTR_FLAGS.COMPRESSION_MASK;
  let compressionUnitSize = 0;
  if (compression !== 0) {
    if (compression !== ATTR_FLAGS.IS_COMPRESSED) throw unsupported('compression', `compression method ${compression} in ${where}`);
    if (first.compressionUnit === 0 || first.compressionUnit > 16)
      throw unsupported('compression', `compression unit 2^${first.compressionUnit} clusters in ${where}`);
    compressionUnitSize = clusterSize * 2 ** first.compressionUnit;
    if (compressionUnitSize < COMPRESSION.SUB_BLOCK_SIZE || compressionUnitSize > 2 * 1024 * 1024)
      throw unsupported('compression', `compression units of ${compressionUnitSize} bytes in ${where}`);
  }
  const { allocatedSize, dataSize } = first;
  if (dataSize > allocatedSize) throw bad(`data size ${dataSize} exceeds the allocated ${allocatedSize}`);
  if (allocatedSize % clusterSize !== 0) throw bad(`allocated size ${allocatedSize} is not a whole number of clusters`);
  if (compressionUnitSize > 0 && allocatedSize % compressionUnitSize !== 0)
    throw bad(`allocated size ${allocatedSize} is not a whole number of compression units`);
  if (!sparse && compressionUnitSize === 0 && allocatedSize > clusterSize * clusterCount)
    throw bad(`allocated size ${allocatedSize} exceeds the volume`);
  // Runs must cover what the value claims; they are checked again, run by run, when read.
  const last = attr.extents[attr.extents.length - 1]!;
  if ((last.highestVcn + 1) * clusterSize < dataSize) throw bad(`runs map ${last.highestVcn + 1} clusters, short of ${dataSize} bytes`);
  return {
    resident: false,
    dataSize,
    initializedSize: Math.min(first.initializedSize, dataSize),
    allocatedSize,
    compressionUnitSize,
    sparse,
    encrypted,
  };
}
