// On-disk structures of btrfs, little-endian throughout. Offsets and values follow the kernel's
// include/uapi/linux/btrfs_tree.h and btrfs.h (struct named per table) and the btrfs documentation's
// "On-disk format" chapter; the parsers read fields only through these tables.

/** "Superblock" (struct btrfs_super_block): 4096 bytes at 64 KiB, mirrored at 64 MiB and 256 GiB. */
export const SUPERBLOCK = {
  SIZE: 4096,
  /** btrfs_sb_offset(): the primary, then 16 KiB << (12 * mirror) for mirrors 1 and 2. */
  OFFSETS: [0x10000, 0x4000000, 0x4000000000],
  MAGIC: Buffer.from('_BHRfS_M', 'latin1'),
  csum: 0x00,
  fsid: 0x20,
  bytenr: 0x30,
  flags: 0x38,
  magic: 0x40,
  generation: 0x48,
  root: 0x50,
  chunk_root: 0x58,
  log_root: 0x60,
  total_bytes: 0x70,
  bytes_used: 0x78,
  root_dir_objectid: 0x80,
  num_devices: 0x88,
  sectorsize: 0x90,
  nodesize: 0x94,
  stripesize: 0x9c,
  sys_chunk_array_size: 0xa0,
  chunk_root_generation: 0xa4,
  compat_flags: 0xac,
  compat_ro_flags: 0xb4,
  incompat_flags: 0xbc,
  csum_type: 0xc4,
  root_level: 0xc6,
  chunk_root_level: 0xc7,
  log_root_level: 0xc8,
  dev_item: 0xc9,
  label: 0x12b,
  LABEL_SIZE: 256,
  metadata_uuid: 0x23b,
  sys_chunk_array: 0x32b,
  SYS_CHUNK_ARRAY_MAX: 2048,
  /** The checksum covers everything after the 32-byte csum field. */
  CSUM_START: 0x20,
  /** btrfs_super_block.flags (btrfs_tree.h "Super block flags"). */
  FLAG_ERROR: 1n << 2n,
  FLAG_SEEDING: 1n << 32n,
  FLAG_METADUMP: 1n << 33n,
  FLAG_METADUMP_V2: 1n << 34n,
  FLAG_CHANGING_FSID: 1n << 35n,
  FLAG_CHANGING_FSID_V2: 1n << 36n,
  /** BTRFS_MAX_LEVEL: a tree is at most 8 levels high (leaves are level 0). */
  MAX_LEVEL: 7,
} as const;

/** struct btrfs_dev_item inside the superblock (only what identifies this device). */
export const DEV_ITEM = {
  devid: 0x00,
  total_bytes: 0x08,
  uuid: 0x42,
  fsid: 0x52,
  SIZE: 98,
} as const;

/** btrfs.h BTRFS_FEATURE_INCOMPAT_*: an unknown bit means the volume cannot be read correctly. */
export const FEATURE_INCOMPAT = {
  MIXED_BACKREF: 1 << 0,
  DEFAULT_SUBVOL: 1 << 1,
  MIXED_GROUPS: 1 << 2,
  COMPRESS_LZO: 1 << 3,
  COMPRESS_ZSTD: 1 << 4,
  BIG_METADATA: 1 << 5,
  EXTENDED_IREF: 1 << 6,
  RAID56: 1 << 7,
  SKINNY_METADATA: 1 << 8,
  NO_HOLES: 1 << 9,
  METADATA_UUID: 1 << 10,
  RAID1C34: 1 << 11,
  ZONED: 1 << 12,
  EXTENT_TREE_V2: 1 << 13,
  RAID_STRIPE_TREE: 1 << 14,
  SIMPLE_QUOTA: 1 << 16,
} as const;

/**
 * Incompatible features this reader refuses: extent-tree-v2 changes how trees are found, the raid
 * stripe tree remaps data (both experimental), and zoned volumes keep their superblocks in a log
 * of zones. RAID56 and RAID1C34 are refused per chunk.
 */
export const INCOMPAT_REFUSED = ['EXTENT_TREE_V2', 'RAID_STRIPE_TREE', 'ZONED'] as const;

/** btrfs.h BTRFS_FEATURE_COMPAT_RO_*: read-only compatible, so a reader may ignore all of them. */
export const FEATURE_COMPAT_RO = {
  FREE_SPACE_TREE: 1 << 0,
  FREE_SPACE_TREE_VALID: 1 << 1,
  VERITY: 1 << 2,
  BLOCK_GROUP_TREE: 1 << 3,
} as const;

/** btrfs_tree.h BTRFS_CSUM_TYPE_* and the digest length each stores (of the 32-byte fields). */
export const CSUM_TYPE = {
  CRC32C: 0,
  XXHASH64: 1,
  SHA256: 2,
  BLAKE2B_256: 3,
} as const;
export const CSUM_SIZE = { 0: 4, 1: 8, 2: 32, 3: 32 } as const;
export const CSUM_NAMES = { 0: 'crc32c', 1: 'xxhash64', 2: 'sha256', 3: 'blake2b' } as const;

/** "Tree block header" (struct btrfs_header): 101 bytes in front of every node and leaf. */
export const HEADER = {
  SIZE: 101,
  csum: 0x00,
  fsid: 0x20,
  bytenr: 0x30,
  flags: 0x38,
  chunk_tree_uuid: 0x40,
  generation: 0x50,
  owner: 0x58,
  nritems: 0x60,
  level: 0x64,
} as const;

/** struct btrfs_disk_key: (objectid, type, offset), ordered by the three fields as unsigned numbers. */
export const DISK_KEY = {
  SIZE: 17,
  objectid: 0x0,
  type: 0x8,
  offset: 0x9,
} as const;

/** struct btrfs_item (leaf slot): the key, then the data's offset (from the end of the header) and size. */
export const ITEM = {
  SIZE: 25,
  key: 0x0,
  offset: 0x11,
  size: 0x15,
} as const;

/** struct btrfs_key_ptr (node slot): the child's first key, its logical address and generation. */
export const KEY_PTR = {
  SIZE: 33,
  key: 0x0,
  blockptr: 0x11,
  generation: 0x19,
} as const;

/** btrfs_tree.h item types (the key's middle field). */
export const KEY_TYPE = {
  INODE_ITEM: 1,
  INODE_REF: 12,
  INODE_EXTREF: 13,
  XATTR_ITEM: 24,
  DIR_ITEM: 84,
  DIR_INDEX: 96,
  EXTENT_DATA: 108,
  EXTENT_CSUM: 128,
  ROOT_ITEM: 132,
  ROOT_BACKREF: 144,
  ROOT_REF: 156,
  DEV_ITEM: 216,
  CHUNK_ITEM: 228,
} as const;

/** btrfs_tree.h well-known object ids (tree ids in the root tree, and special objectids). */
export const OBJECTID = {
  ROOT_TREE: 1n,
  EXTENT_TREE: 2n,
  CHUNK_TREE: 3n,
  DEV_TREE: 4n,
  FS_TREE: 5n,
  ROOT_TREE_DIR: 6n,
  CSUM_TREE: 7n,
  /** BTRFS_EXTENT_CSUM_OBJECTID (-10 as u64): the objectid of every checksum item. */
  EXTENT_CSUM: 2n ** 64n - 10n,
  FIRST_FREE: 256n,
  /** BTRFS_LAST_FREE_OBJECTID (-256 as u64). */
  LAST_FREE: 2n ** 64n - 256n,
  FIRST_CHUNK_TREE: 256n,
  /** The inode number the kernel gives the placeholder of a subvolume a snapshot did not carry. */
  EMPTY_SUBVOL_DIR: 2n,
  MAX_U64: 2n ** 64n - 1n,
} as const;

/** struct btrfs_chunk: a 48-byte head, then num_stripes struct btrfs_stripe of 32 bytes (the first embedded). */
export const CHUNK = {
  SIZE: 48,
  length: 0x00,
  owner: 0x08,
  stripe_len: 0x10,
  type: 0x18,
  io_align: 0x20,
  io_width: 0x24,
  sector_size: 0x28,
  num_stripes: 0x2c,
  sub_stripes: 0x2e,
  STRIPE_SIZE: 32,
  stripe_devid: 0x00,
  stripe_offset: 0x08,
  stripe_dev_uuid: 0x10,
} as const;

/** btrfs_tree.h BTRFS_BLOCK_GROUP_*: the chunk type's kind and replication profile bits. */
export const BLOCK_GROUP = {
  DATA: 1 << 0,
  SYSTEM: 1 << 1,
  METADATA: 1 << 2,
  RAID0: 1 << 3,
  RAID1: 1 << 4,
  DUP: 1 << 5,
  RAID10: 1 << 6,
  RAID5: 1 << 7,
  RAID6: 1 << 8,
  RAID1C3: 1 << 9,
  RAID1C4: 1 << 10,
} as const;

/** struct btrfs_inode_item: 160 bytes (also the head of struct btrfs_root_item). */
export const INODE_ITEM = {
  SIZE: 160,
  generation: 0,
  transid: 8,
  size: 16,
  nbytes: 24,
  nlink: 40,
  uid: 44,
  gid: 48,
  mode: 52,
  rdev: 56,
  flags: 64,
  atime: 112,
  ctime: 124,
  mtime: 136,
  otime: 148,
  /** struct btrfs_timespec: u64 seconds (signed in practice) then u32 nanoseconds. */
  TIMESPEC_NSEC: 8,
} as const;

/** btrfs_inode.h BTRFS_INODE_* (the low 32 bits of btrfs_inode_item.flags). */
export const INODE_FLAGS = {
  NODATASUM: 1 << 0,
  NODATACOW: 1 << 1,
  PREALLOC: 1 << 4,
  COMPRESS: 1 << 11,
} as const;

/** struct btrfs_root_item: the root's inode item, then where its tree lives. */
export const ROOT_ITEM = {
  /** The item before subvol_uuids and times were added (btrfs_root_item up to `level`). */
  MIN_SIZE: 239,
  generation: 160,
  root_dirid: 168,
  bytenr: 176,
  flags: 208,
  refs: 216,
  level: 238,
} as const;

/** struct btrfs_root_ref (ROOT_REF and ROOT_BACKREF items), then the name. */
export const ROOT_REF = {
  SIZE: 18,
  dirid: 0,
  sequence: 8,
  name_len: 16,
} as const;

/** struct btrfs_dir_item (DIR_ITEM, DIR_INDEX and XATTR_ITEM), then the name, then data_len bytes of data. */
export const DIR_ITEM = {
  SIZE: 30,
  location: 0,
  transid: 17,
  data_len: 25,
  name_len: 27,
  type: 29,
  /** BTRFS_NAME_LEN. */
  MAX_NAME_LEN: 255,
} as const;

/** struct btrfs_inode_ref (one or more per INODE_REF item, each followed by its name). */
export const INODE_REF = {
  SIZE: 10,
  index: 0,
  name_len: 8,
} as const;

/** btrfs_tree.h BTRFS_FT_*: the dir item type byte. */
export const FILE_TYPES = {
  1: 'file',
  2: 'dir',
  3: 'char',
  4: 'block',
  5: 'fifo',
  6: 'socket',
  7: 'symlink',
} as const;

/**
 * struct btrfs_file_extent_item. Inline extents keep their data from `disk_bytenr` on; regular and
 * prealloc extents are 53 bytes.
 */
export const FILE_EXTENT = {
  generation: 0,
  ram_bytes: 8,
  compression: 16,
  encryption: 17,
  other_encoding: 18,
  type: 20,
  INLINE_DATA: 21,
  disk_bytenr: 21,
  disk_num_bytes: 29,
  offset: 37,
  num_bytes: 45,
  SIZE: 53,
  TYPE_INLINE: 0,
  TYPE_REG: 1,
  TYPE_PREALLOC: 2,
  /** btrfs_compression_type. */
  COMPRESS_NONE: 0,
  COMPRESS_ZLIB: 1,
  COMPRESS_LZO: 2,
  COMPRESS_ZSTD: 3,
  /** BTRFS_MAX_UNCOMPRESSED: the kernel never compresses more than 128 KiB into one extent. */
  MAX_UNCOMPRESSED: 128 * 1024,
  /** BTRFS_MAX_EXTENT_SIZE: an uncompressed extent is at most 128 MiB. */
  MAX_EXTENT: 128 * 1024 * 1024,
} as const;

/** The names of the compression types, as mount options spell them. */
export const COMPRESSION_NAMES = { 1: 'zlib', 2: 'lzo', 3: 'zstd' } as const;

/** stat.h S_IFMT types as btrfs stores them in btrfs_inode_item.mode. */
export const MODE = {
  S_IFMT: 0xf000,
  S_IFSOCK: 0xc000,
  S_IFLNK: 0xa000,
  S_IFREG: 0x8000,
  S_IFBLK: 0x6000,
  S_IFDIR: 0x4000,
  S_IFCHR: 0x2000,
  S_IFIFO: 0x1000,
  PERMISSIONS: 0o7777,
} as const;
