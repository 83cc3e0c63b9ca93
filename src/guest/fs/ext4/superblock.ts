import { crc32cUpdate } from '../../../util/crc32c.js';
import { formatInvalid, unsupported } from './errors.js';
import { FEATURE_COMPAT, FEATURE_INCOMPAT, FEATURE_RO_COMPAT, GROUP_DESC, INCOMPAT_REFUSED, SUPERBLOCK } from './layout.js';

/** The superblock's geometry and features, every field checked against the others and the volume. */
export interface Superblock {
  readonly blockSize: number;
  readonly blocksCount: number;
  readonly firstDataBlock: number;
  readonly blocksPerGroup: number;
  readonly inodesPerGroup: number;
  readonly inodesCount: number;
  readonly inodeSize: number;
  readonly firstIno: number;
  readonly groupCount: number;
  readonly descSize: number;
  readonly descPerBlock: number;
  /** Descriptor blocks in all (db_count). */
  readonly descBlocks: number;
  readonly firstMetaBg: number;
  /** Blocks per cluster (1 unless bigalloc). */
  readonly clusterRatio: number;
  readonly compat: number;
  readonly incompat: number;
  readonly roCompat: number;
  readonly uuid: string;
  readonly uuidBytes: Buffer;
  readonly label: string;
  readonly hashSeed: readonly number[];
  readonly defHashVersion: number;
  /** 3 when directory hashes treat bytes as unsigned chars (s_flags), else 0: added to legacy/half_md4/tea. */
  readonly hashUnsignedDelta: number;
  readonly metadataCsum: boolean;
  /** Group descriptors carry crc16 checksums (gdt_csum / uninit_bg without metadata_csum). */
  readonly gdtCsum: boolean;
  /** crc32c seed of every per-structure checksum: s_checksum_seed or the crc32c of the UUID. */
  readonly csumSeed: number;
  /** Whether inode checksums are checked (the kernel checks them only on Linux-created filesystems). */
  readonly checkInodeCsum: boolean;
  readonly backupGroups: readonly [number, number];
  readonly creatorOs: number;
}

export function hasIncompat(sb: Superblock, feature: keyof typeof FEATURE_INCOMPAT): boolean {
  return (sb.incompat & FEATURE_INCOMPAT[feature]) !== 0;
}

export function hasRoCompat(sb: Superblock, feature: keyof typeof FEATURE_RO_COMPAT): boolean {
  return (sb.roCompat & FEATURE_RO_COMPAT[feature]) !== 0;
}

export function hasCompat(sb: Superblock, feature: keyof typeof FEATURE_COMPAT): boolean {
  return (sb.compat & FEATURE_COMPAT[feature]) !== 0;
}

/** True when the 1024 bytes at volume byte 1024 carry the ext2/3/4 magic. */
export function hasExt4Magic(bytes: Buffer): boolean {
  return bytes.length >= SUPERBLOCK.s_magic + 2 && bytes.readUInt16LE(SUPERBLOCK.s_magic) === SUPERBLOCK.MAGIC;
}

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/**
 * Parses and validates the primary superblock (`bytes` = the 1024 bytes at volume byte 1024). Refuses
 * what cannot be read correctly: unknown or unsupported incompatible features, geometry that does not
 * add up, a checksum mismatch.
 */
export function parseSuperblock(bytes: Buffer, volumeSize: number, volume: string): Superblock {
  const bad = (problem: string, context = {}): Error => formatInvalid(volume, 'superblock', problem, context);
  if (bytes.length < SUPERBLOCK.SIZE || !hasExt4Magic(bytes)) throw bad('no ext2/3/4 magic');
  const u32 = (offset: number): number => bytes.readUInt32LE(offset);
  const u16 = (offset: number): number => bytes.readUInt16LE(offset);

  const compat = u32(SUPERBLOCK.s_feature_compat);
  const incompat = u32(SUPERBLOCK.s_feature_incompat);
  const roCompat = u32(SUPERBLOCK.s_feature_ro_compat);
  checkIncompat(incompat, volume);
  const metadataCsum = (roCompat & FEATURE_RO_COMPAT.metadata_csum) !== 0;
  if (metadataCsum) {
    if (bytes[SUPERBLOCK.s_checksum_type] !== SUPERBLOCK.CHECKSUM_CRC32C) {
      throw bad(`unknown checksum type ${bytes[SUPERBLOCK.s_checksum_type]}`);
    }
    const expected = u32(SUPERBLOCK.s_checksum);
    const actual = crc32cUpdate(0xffffffff, bytes, 0, SUPERBLOCK.s_checksum);
    if (expected !== actual) throw bad(`checksum mismatch (stored 0x${expected.toString(16)}, computed 0x${actual.toString(16)})`);
  }

  const logBlockSize = u32(SUPERBLOCK.s_log_block_size);
  if (logBlockSize > SUPERBLOCK.MAX_LOG_BLOCK_SIZE) throw bad(`block size 2^(10+${logBlockSize}) is out of range`);
  const blockSize = 1024 << logBlockSize;
  const bigalloc = (roCompat & FEATURE_RO_COMPAT.bigalloc) !== 0;
  const logClusterSize = u32(SUPERBLOCK.s_log_cluster_size);
  let clusterRatio = 1;
  if (bigalloc) {
    if (logClusterSize < logBlockSize || logClusterSize - logBlockSize > 16)
      throw bad(`cluster size 2^(10+${logClusterSize}) is out of range`);
    clusterRatio = 2 ** (logClusterSize - logBlockSize);
  }
  const is64 = (incompat & FEATURE_INCOMPAT['64bit']) !== 0;
  const blocksCount = u32(SUPERBLOCK.s_blocks_count_lo) + (is64 ? u32(SUPERBLOCK.s_blocks_count_hi) * 2 ** 32 : 0);
  const firstDataBlock = u32(SUPERBLOCK.s_first_data_block);
  if (firstDataBlock > 1 || (blockSize > 1024 && firstDataBlock !== 0))
    throw bad(`first data block ${firstDataBlock} does not fit block size ${blockSize}`);
  if (blocksCount <= firstDataBlock) throw bad(`block count ${blocksCount} is too small`);
  if (blocksCount * blockSize > volumeSize) {
    throw bad(`${blocksCount} blocks of ${blockSize} bytes do not fit the ${volumeSize}-byte volume`, { blocksCount, volumeSize });
  }
  const blocksPerGroup = u32(SUPERBLOCK.s_blocks_per_group);
  const clustersPerGroup = u32(SUPERBLOCK.s_clusters_per_group);
  if (
    blocksPerGroup < 8 ||
    blocksPerGroup % 8 !== 0 ||
    clustersPerGroup > blockSize * 8 ||
    blocksPerGroup !== clustersPerGroup * clusterRatio
  ) {
    throw bad(`${blocksPerGroup} blocks (${clustersPerGroup} clusters) per group do not fit one bitmap block`);
  }
  const revLevel = u32(SUPERBLOCK.s_rev_level);
  const inodeSize = revLevel === SUPERBLOCK.GOOD_OLD_REV ? SUPERBLOCK.GOOD_OLD_INODE_SIZE : u16(SUPERBLOCK.s_inode_size);
  if (inodeSize < SUPERBLOCK.GOOD_OLD_INODE_SIZE || inodeSize > blockSize || !isPowerOfTwo(inodeSize))
    throw bad(`inode size ${inodeSize} is invalid`);
  const firstIno = revLevel === SUPERBLOCK.GOOD_OLD_REV ? SUPERBLOCK.GOOD_OLD_FIRST_INO : u32(SUPERBLOCK.s_first_ino);
  const inodesPerGroup = u32(SUPERBLOCK.s_inodes_per_group);
  if (inodesPerGroup < blockSize / inodeSize || inodesPerGroup > blockSize * 8)
    throw bad(`${inodesPerGroup} inodes per group is out of range`);
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
  const inodesCount = u32(SUPERBLOCK.s_inodes_count);
  if (inodesCount !== groupCount * inodesPerGroup) throw bad(`inode count ${inodesCount} is not ${groupCount} groups x ${inodesPerGroup}`);
  if (firstIno < SUPERBLOCK.GOOD_OLD_FIRST_INO || firstIno > inodesCount) throw bad(`first inode ${firstIno} is out of range`);

  const descSize = is64 ? u16(SUPERBLOCK.s_desc_size) : GROUP_DESC.MIN_SIZE;
  if (descSize < (is64 ? GROUP_DESC.MIN_SIZE_64BIT : GROUP_DESC.MIN_SIZE) || descSize > GROUP_DESC.MAX_SIZE || !isPowerOfTwo(descSize)) {
    throw bad(`group descriptor size ${descSize} is invalid`);
  }
  const descPerBlock = blockSize / descSize;
  const descBlocks = Math.ceil(groupCount / descPerBlock);
  const metaBg = (incompat & FEATURE_INCOMPAT.meta_bg) !== 0;
  const firstMetaBg = metaBg ? u32(SUPERBLOCK.s_first_meta_bg) : descBlocks;
  if (firstMetaBg > descBlocks) throw bad(`first meta block group ${firstMetaBg} is beyond the ${descBlocks} descriptor blocks`);

  const uuidBytes = Buffer.from(bytes.subarray(SUPERBLOCK.s_uuid, SUPERBLOCK.s_uuid + 16));
  const csumSeed = (incompat & FEATURE_INCOMPAT.csum_seed) !== 0 ? u32(SUPERBLOCK.s_checksum_seed) : crc32cUpdate(0xffffffff, uuidBytes);
  const flags = u32(SUPERBLOCK.s_flags);
  const creatorOs = u32(SUPERBLOCK.s_creator_os);
  return {
    blockSize,
    blocksCount,
    firstDataBlock,
    blocksPerGroup,
    inodesPerGroup,
    inodesCount,
    inodeSize,
    firstIno,
    groupCount,
    descSize,
    descPerBlock,
    descBlocks,
    firstMetaBg,
    clusterRatio,
    compat,
    incompat,
    roCompat,
    uuid: formatUuid(uuidBytes),
    uuidBytes,
    label: cString(bytes.subarray(SUPERBLOCK.s_volume_name, SUPERBLOCK.s_volume_name + 16)),
    hashSeed: [0, 1, 2, 3].map((i) => u32(SUPERBLOCK.s_hash_seed + 4 * i)),
    defHashVersion: bytes[SUPERBLOCK.s_def_hash_version]!,
    // Without either flag the kernel picks the architecture's char signedness; x86 chars are signed.
    hashUnsignedDelta: flags & SUPERBLOCK.FLAG_UNSIGNED_HASH ? 3 : 0,
    metadataCsum,
    gdtCsum: !metadataCsum && (roCompat & FEATURE_RO_COMPAT.gdt_csum) !== 0,
    csumSeed,
    checkInodeCsum: metadataCsum && creatorOs === SUPERBLOCK.OS_LINUX,
    backupGroups: [u32(SUPERBLOCK.s_backup_bgs), u32(SUPERBLOCK.s_backup_bgs + 4)],
    creatorOs,
  };
}

function checkIncompat(incompat: number, volume: string): void {
  let known = 0;
  for (const bit of Object.values(FEATURE_INCOMPAT)) known |= bit;
  const unknown = (incompat & ~known) >>> 0;
  if (unknown !== 0) {
    throw unsupported(volume, `incompat 0x${unknown.toString(16)}`, 'an incompatible feature this reader does not know', { incompat });
  }
  for (const name of INCOMPAT_REFUSED) {
    if (incompat & FEATURE_INCOMPAT[name]) throw unsupported(volume, name, 'files cannot be read without it', { incompat });
  }
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** First block of group `group` (ext4_group_first_block_no). */
export function groupFirstBlock(sb: Superblock, group: number): number {
  return group * sb.blocksPerGroup + sb.firstDataBlock;
}

/** Whether group `group` holds a superblock backup (ext4_bg_has_super; blockgroup.rst "sparse_super"). */
export function groupHasSuper(sb: Superblock, group: number): boolean {
  if (group === 0) return true;
  if (hasCompat(sb, 'sparse_super2')) return group === sb.backupGroups[0] || group === sb.backupGroups[1];
  if (group <= 1 || !hasRoCompat(sb, 'sparse_super')) return true;
  if (group % 2 === 0) return false;
  return isPowerOf(group, 3) || isPowerOf(group, 5) || isPowerOf(group, 7);
}

function isPowerOf(n: number, base: number): boolean {
  let p = base;
  while (p < n) p *= base;
  return p === n;
}
