import { CairnError } from '../core/errors.js';
import { readU64be } from '../util/bytes.js';

/**
 * qcow2 versions 2 and 3, as qemu's docs/interop/qcow2.txt specifies them. Everything is big-endian.
 * This module parses the header and its extensions and decodes L1/L2 entries; it does no I/O.
 *
 * Header ("Header"):
 *    0  4  magic "QFI\xfb"              36  4  l1_size (entries)
 *    4  4  version (2 or 3)             40  8  l1_table_offset
 *    8  8  backing_file_offset          48  8  refcount_table_offset
 *   16  4  backing_file_size            56  4  refcount_table_clusters
 *   20  4  cluster_bits                 60  4  nb_snapshots
 *   24  8  size (virtual bytes)         64  8  snapshots_offset
 *   32  4  crypt_method                 v3 only: 72 incompatible, 80 compatible, 88 autoclear
 *   features (8 each), 96 refcount_order, 100 header_length, 104 compression_type (if present).
 */
export const QCOW2 = {
  MAGIC: 0x514649fb,
  HEADER_V2_LENGTH: 72,
  HEADER_V3_MIN_LENGTH: 104,
  /** "Must not be less than 9"; qemu's implementation limit is 2 MiB (cluster_bits 21). */
  MIN_CLUSTER_BITS: 9,
  MAX_CLUSTER_BITS: 21,
  /** "if the image has Extended L2 Entries then cluster_bits must be at least 14". */
  MIN_CLUSTER_BITS_EXTENDED_L2: 14,
  MAX_BACKING_NAME_LENGTH: 1023,
  /** qemu's implementation limit on the L1 table ("32 MB as the maximum L1 table size"). */
  MAX_L1_BYTES: 32 * 1024 * 1024,
  /** Subclusters per cluster with Extended L2 Entries. */
  SUBCLUSTERS: 32,
  /** Bytes of one sector in a compressed cluster descriptor's sector count. */
  COMPRESSED_SECTOR: 512,
} as const;

export const QCOW2_HEADER = {
  magic: 0,
  version: 4,
  backingFileOffset: 8,
  backingFileSize: 16,
  clusterBits: 20,
  size: 24,
  cryptMethod: 32,
  l1Size: 36,
  l1TableOffset: 40,
  refcountTableOffset: 48,
  refcountTableClusters: 56,
  nbSnapshots: 60,
  snapshotsOffset: 64,
  incompatibleFeatures: 72,
  compatibleFeatures: 80,
  autoclearFeatures: 88,
  refcountOrder: 96,
  headerLength: 100,
  compressionType: 104,
} as const;

/** incompatible_features bits ("Header", bytes 72-79). */
export const QCOW2_INCOMPATIBLE = {
  DIRTY: 1n << 0n,
  CORRUPT: 1n << 1n,
  EXTERNAL_DATA_FILE: 1n << 2n,
  COMPRESSION_TYPE: 1n << 3n,
  EXTENDED_L2: 1n << 4n,
} as const;
const KNOWN_INCOMPATIBLE = Object.values(QCOW2_INCOMPATIBLE).reduce((all, bit) => all | bit, 0n);

/** Header extension types ("Header extensions"). */
export const QCOW2_EXTENSION = {
  END: 0x00000000,
  BACKING_FORMAT: 0xe2792aca,
  FEATURE_NAME_TABLE: 0x6803f857,
  BITMAPS: 0x23852875,
  FDE_HEADER: 0x0537be77,
  EXTERNAL_DATA_FILE: 0x44415441,
} as const;

/** compression_type values (header byte 104). */
export const QCOW2_COMPRESSION = { zlib: 0, zstd: 1 } as const;
export type Qcow2Compression = keyof typeof QCOW2_COMPRESSION;

/** crypt_method values. */
const CRYPT_METHODS: Record<number, string> = { 1: 'AES', 2: 'LUKS' };

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  clusterSize: number;
  size: number;
  l1Size: number;
  l1TableOffset: number;
  /** Entries per L2 table (cluster_size / 8, or / 16 with extended L2). */
  l2Entries: number;
  extendedL2: boolean;
  compression: Qcow2Compression;
  /** Length of the header structure; extensions follow it. */
  headerLength: number;
  backingFileOffset: number;
  backingFileSize: number;
  dirty: boolean;
  corrupt: boolean;
}

/** Header extensions a reader needs; unknown ones are skipped, as the spec allows. */
export interface Qcow2Extensions {
  backingFormat?: string;
  /** Names of incompatible features from the feature name table, for a clear refusal. */
  incompatibleNames: Map<number, string>;
}

function invalid(message: string, context: Record<string, unknown> = {}): CairnError {
  return new CairnError('ERR_FORMAT_INVALID', `qcow2: ${message}`, context);
}

export function isQcow2(head: Buffer): boolean {
  return head.length >= 4 && head.readUInt32BE(0) === QCOW2.MAGIC;
}

/**
 * Parses and checks the header (`head` holds at least the first 512 bytes, or the whole file if
 * shorter). Refuses encryption, external data files and unknown incompatible features; every offset
 * and count is checked against `fileSize` before anyone allocates or reads by it.
 */
export function parseQcow2Header(head: Buffer, fileSize: number): Qcow2Header {
  if (head.length < QCOW2.HEADER_V2_LENGTH || !isQcow2(head)) throw invalid('not a qcow2 image (bad magic or too short)');
  const version = head.readUInt32BE(QCOW2_HEADER.version);
  if (version !== 2 && version !== 3) {
    throw new CairnError('ERR_UNSUPPORTED', `qcow2: version ${version} is not supported (only 2 and 3)`, { version });
  }
  const clusterBits = head.readUInt32BE(QCOW2_HEADER.clusterBits);
  if (clusterBits < QCOW2.MIN_CLUSTER_BITS || clusterBits > QCOW2.MAX_CLUSTER_BITS) {
    throw invalid(`cluster_bits ${clusterBits} is outside ${QCOW2.MIN_CLUSTER_BITS}..${QCOW2.MAX_CLUSTER_BITS}`);
  }
  const clusterSize = 2 ** clusterBits;
  const cryptMethod = head.readUInt32BE(QCOW2_HEADER.cryptMethod);
  if (cryptMethod !== 0) {
    throw new CairnError(
      'ERR_UNSUPPORTED',
      `qcow2: the image is encrypted (${CRYPT_METHODS[cryptMethod] ?? `method ${cryptMethod}`}); Cairn does not read encrypted images: convert it first (qemu-img convert with the key)`,
      { cryptMethod },
    );
  }
  let incompatible = 0n;
  let headerLength: number = QCOW2.HEADER_V2_LENGTH;
  let compression: Qcow2Compression = 'zlib';
  if (version === 3) {
    if (head.length < QCOW2.HEADER_V3_MIN_LENGTH) throw invalid('version 3 header is cut short');
    incompatible = head.readBigUInt64BE(QCOW2_HEADER.incompatibleFeatures);
    headerLength = head.readUInt32BE(QCOW2_HEADER.headerLength);
    if (headerLength < QCOW2.HEADER_V3_MIN_LENGTH || headerLength % 8 !== 0 || headerLength > Math.min(clusterSize, head.length)) {
      throw invalid(`header_length ${headerLength} is not a multiple of 8 between 104 and the first cluster`);
    }
    const refcountOrder = head.readUInt32BE(QCOW2_HEADER.refcountOrder);
    if (refcountOrder > 6) throw invalid(`refcount_order ${refcountOrder} exceeds 6`);
    if (headerLength > QCOW2_HEADER.compressionType) {
      const type = head.readUInt8(QCOW2_HEADER.compressionType);
      const name = (Object.keys(QCOW2_COMPRESSION) as Qcow2Compression[]).find((key) => QCOW2_COMPRESSION[key] === type);
      if (name === undefined) throw new CairnError('ERR_UNSUPPORTED', `qcow2: compression type ${type} is not supported`, { type });
      compression = name;
    }
    if ((compression !== 'zlib') !== ((incompatible & QCOW2_INCOMPATIBLE.COMPRESSION_TYPE) !== 0n)) {
      throw invalid('the compression type bit and the compression_type field disagree');
    }
  }
  const extendedL2 = (incompatible & QCOW2_INCOMPATIBLE.EXTENDED_L2) !== 0n;
  if (extendedL2 && clusterBits < QCOW2.MIN_CLUSTER_BITS_EXTENDED_L2)
    throw invalid(`extended L2 entries need cluster_bits >= 14, got ${clusterBits}`);
  const size = readU64be(head, QCOW2_HEADER.size, 'qcow2 virtual size');
  const l1Size = head.readUInt32BE(QCOW2_HEADER.l1Size);
  const l1TableOffset = readU64be(head, QCOW2_HEADER.l1TableOffset, 'qcow2 L1 table offset');
  const l2Entries = clusterSize / (extendedL2 ? 16 : 8);
  const neededL1 = Math.ceil(size / clusterSize / l2Entries);
  if (l1Size < neededL1) throw invalid(`L1 table of ${l1Size} entries cannot map a ${size}-byte disk (needs ${neededL1})`);
  if (l1Size * 8 > QCOW2.MAX_L1_BYTES) throw invalid(`L1 table of ${l1Size} entries exceeds qemu's 32 MiB limit`);
  if (neededL1 > 0 && (l1TableOffset % clusterSize !== 0 || l1TableOffset === 0 || l1TableOffset + neededL1 * 8 > fileSize)) {
    throw invalid(`L1 table at ${l1TableOffset} is unaligned or lies outside the ${fileSize}-byte file`, { offset: l1TableOffset });
  }
  const backingFileOffset = readU64be(head, QCOW2_HEADER.backingFileOffset, 'qcow2 backing file offset');
  const backingFileSize = head.readUInt32BE(QCOW2_HEADER.backingFileSize);
  if (backingFileOffset !== 0) {
    if (backingFileSize === 0 || backingFileSize > QCOW2.MAX_BACKING_NAME_LENGTH)
      throw invalid(`backing file name length ${backingFileSize} is not 1..1023`);
    if (backingFileOffset + backingFileSize > Math.min(clusterSize, fileSize))
      throw invalid('backing file name lies outside the first cluster');
  }
  const unknown = incompatible & ~KNOWN_INCOMPATIBLE;
  if (unknown !== 0n) {
    throw new CairnError(
      'ERR_UNSUPPORTED',
      `qcow2: unknown incompatible feature bits 0x${unknown.toString(16)}; Cairn cannot read this image safely`,
      {
        bits: unknown.toString(16),
      },
    );
  }
  if ((incompatible & QCOW2_INCOMPATIBLE.EXTERNAL_DATA_FILE) !== 0n) {
    throw new CairnError(
      'ERR_UNSUPPORTED',
      'qcow2: the image keeps its data in an external data file, which Cairn does not read; back up the data file (raw) or convert the image first',
    );
  }
  return {
    version,
    clusterBits,
    clusterSize,
    size,
    l1Size,
    l1TableOffset,
    l2Entries,
    extendedL2,
    compression,
    headerLength,
    backingFileOffset,
    backingFileSize,
    dirty: (incompatible & QCOW2_INCOMPATIBLE.DIRTY) !== 0n,
    corrupt: (incompatible & QCOW2_INCOMPATIBLE.CORRUPT) !== 0n,
  };
}

/** Walks the header extensions in the first cluster (`head`); bounded by the buffer, unknown types skipped. */
export function parseQcow2Extensions(head: Buffer, header: Qcow2Header): Qcow2Extensions {
  const result: Qcow2Extensions = { incompatibleNames: new Map() };
  if (header.version === 2) return result;
  const end = Math.min(head.length, header.clusterSize);
  for (let at = header.headerLength; at + 8 <= end;) {
    const type = head.readUInt32BE(at);
    const length = head.readUInt32BE(at + 4);
    if (type === QCOW2_EXTENSION.END) break;
    if (at + 8 + length > end) throw invalid(`header extension 0x${type.toString(16)} runs past the first cluster`);
    const data = head.subarray(at + 8, at + 8 + length);
    if (type === QCOW2_EXTENSION.BACKING_FORMAT) result.backingFormat = data.toString('utf8');
    if (type === QCOW2_EXTENSION.FEATURE_NAME_TABLE) {
      for (let entry = 0; entry + 48 <= data.length; entry += 48) {
        if (data[entry] !== 0) continue;
        const name = data.subarray(entry + 2, entry + 48);
        const nul = name.indexOf(0);
        result.incompatibleNames.set(data[entry + 1]!, name.subarray(0, nul < 0 ? name.length : nul).toString('utf8'));
      }
    }
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return result;
}

/** The backing file name stored in the first cluster, if any (checked by parseQcow2Header). */
export function qcow2BackingName(head: Buffer, header: Qcow2Header): string | undefined {
  if (header.backingFileOffset === 0) return undefined;
  if (header.backingFileOffset + header.backingFileSize > head.length) throw invalid('backing file name lies outside the header read');
  return head.subarray(header.backingFileOffset, header.backingFileOffset + header.backingFileSize).toString('utf8');
}

// --------------------------------------------------------------------------------------------
// Table entries ("Cluster mapping", "Extended L2 Entries"). 64-bit entries are bit fields: they are
// split into two 32-bit halves rather than converted as numbers, so no value above 2^53 arises.

const TWO_32 = 2 ** 32;

/** Bits 9-55 of an entry (L1: the L2 table; standard L2: the host cluster), or a clear error above 2^53. */
function offsetBits(hi: number, lo: number, what: string): number {
  const high = hi & 0x00ffffff;
  if (high >= 2 ** 21) throw invalid(`${what} offset is beyond 2^53`);
  return high * TWO_32 + ((lo & 0xfffffe00) >>> 0);
}

/** The L2 table offset of L1 entry `index` of `table` (0: the whole range is unallocated). */
export function l1EntryOffset(table: Buffer, index: number, clusterSize: number): number {
  const hi = table.readUInt32BE(index * 8);
  const lo = table.readUInt32BE(index * 8 + 4);
  const offset = offsetBits(hi, lo, 'L2 table');
  if (offset % clusterSize !== 0) throw invalid(`L2 table offset ${offset} in L1 entry ${index} is not cluster-aligned`, { offset });
  return offset;
}

/** How one guest cluster (or subcluster) reads. */
export type Qcow2Mapping =
  | { kind: 'unallocated' }
  | { kind: 'zero' }
  | { kind: 'data'; hostOffset: number }
  | { kind: 'compressed'; hostOffset: number; compressedLength: number }
  /** Extended L2: one state per subcluster (32 of them), the cluster's host offset for the allocated ones. */
  | { kind: 'subclusters'; hostOffset: number; allocated: number; zero: number };

/** Decodes L2 entry `index` of `table` (a standard or an extended L2 table). */
export function l2Entry(table: Buffer, index: number, header: Qcow2Header): Qcow2Mapping {
  const width = header.extendedL2 ? 16 : 8;
  const at = index * width;
  const hi = table.readUInt32BE(at);
  const lo = table.readUInt32BE(at + 4);
  const compressed = (hi & 0x40000000) !== 0;
  if (compressed) {
    // Compressed Clusters Descriptor: x = 62 - (cluster_bits - 8) bits of byte offset, then the count
    // of additional 512-byte sectors up to bit 61.
    const entry = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
    const x = BigInt(62 - (header.clusterBits - 8));
    const hostOffset = Number(entry & ((1n << x) - 1n));
    if (!Number.isSafeInteger(hostOffset)) throw invalid('compressed cluster offset is beyond 2^53');
    const extraSectors = Number((entry >> x) & ((1n << (62n - x)) - 1n));
    const compressedLength = (extraSectors + 1) * QCOW2.COMPRESSED_SECTOR - (hostOffset % QCOW2.COMPRESSED_SECTOR);
    return { kind: 'compressed', hostOffset, compressedLength };
  }
  const copied = (hi & 0x80000000) !== 0;
  const hostOffset = offsetBits(hi, lo, 'data cluster');
  if (hostOffset % header.clusterSize !== 0)
    throw invalid(`data cluster offset ${hostOffset} is not cluster-aligned`, { offset: hostOffset });
  if (header.extendedL2) {
    const allocated = table.readUInt32BE(at + 12);
    const zero = table.readUInt32BE(at + 8);
    if ((allocated & zero) !== 0) throw invalid(`subclusters marked both allocated and zero in L2 entry ${index}`);
    if (allocated !== 0 && hostOffset === 0) throw invalid(`allocated subclusters without a host cluster in L2 entry ${index}`);
    if (allocated === 0 && zero === 0) return { kind: 'unallocated' };
    if (zero === 0xffffffff) return { kind: 'zero' };
    if (allocated === 0xffffffff) return { kind: 'data', hostOffset };
    return { kind: 'subclusters', hostOffset, allocated, zero };
  }
  // Standard Cluster Descriptor bit 0: reads as zeros (version 3 only).
  if ((lo & 1) !== 0 && header.version === 3) return { kind: 'zero' };
  if (hostOffset === 0) {
    if (copied) throw invalid(`L2 entry ${index} maps host offset 0 (only valid with an external data file)`);
    return { kind: 'unallocated' };
  }
  return { kind: 'data', hostOffset };
}
