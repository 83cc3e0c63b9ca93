// On-disk structures of ext2/ext3/ext4, little-endian throughout. Offsets and values follow the
// kernel's Documentation/filesystems/ext4/ (section named per table); the parsers read fields only
// through these tables.

/** super.rst "Super Block": 1024 bytes at byte 1024 of the volume, whatever the block size. */
export const SUPERBLOCK = {
  OFFSET: 1024,
  SIZE: 1024,
  MAGIC: 0xef53,
  s_inodes_count: 0x00,
  s_blocks_count_lo: 0x04,
  s_first_data_block: 0x14,
  s_log_block_size: 0x18,
  s_log_cluster_size: 0x1c,
  s_blocks_per_group: 0x20,
  s_clusters_per_group: 0x24,
  s_inodes_per_group: 0x28,
  s_magic: 0x38,
  s_state: 0x3a,
  s_creator_os: 0x48,
  s_rev_level: 0x4c,
  s_first_ino: 0x54,
  s_inode_size: 0x58,
  s_feature_compat: 0x5c,
  s_feature_incompat: 0x60,
  s_feature_ro_compat: 0x64,
  s_uuid: 0x68,
  s_volume_name: 0x78,
  s_hash_seed: 0xec,
  s_def_hash_version: 0xfc,
  s_desc_size: 0xfe,
  s_first_meta_bg: 0x104,
  s_blocks_count_hi: 0x150,
  s_flags: 0x160,
  s_checksum_type: 0x175,
  s_backup_bgs: 0x24c,
  s_checksum_seed: 0x270,
  s_checksum: 0x3fc,
  /** s_rev_level 0 (EXT2_GOOD_OLD_REV): 128-byte inodes, first usable inode 11. */
  GOOD_OLD_REV: 0,
  GOOD_OLD_INODE_SIZE: 128,
  GOOD_OLD_FIRST_INO: 11,
  /** s_creator_os: the kernel checks inode checksums only on filesystems Linux created. */
  OS_LINUX: 0,
  /** s_checksum_type 1 = crc32c, the only one defined (checksums.rst). */
  CHECKSUM_CRC32C: 1,
  /** s_flags (super.rst "s_flags"). */
  FLAG_SIGNED_HASH: 0x1,
  FLAG_UNSIGNED_HASH: 0x2,
  /** Block sizes 1 KiB to 64 KiB (s_log_block_size 0..6). */
  MAX_LOG_BLOCK_SIZE: 6,
} as const;

/** super.rst "s_feature_compat": none changes how a reader finds data except sparse_super2. */
export const FEATURE_COMPAT = {
  dir_prealloc: 0x1,
  imagic_inodes: 0x2,
  has_journal: 0x4,
  ext_attr: 0x8,
  resize_inode: 0x10,
  dir_index: 0x20,
  lazy_bg: 0x40,
  exclude_inode: 0x80,
  exclude_bitmap: 0x100,
  sparse_super2: 0x200,
  fast_commit: 0x400,
  stable_inodes: 0x800,
  orphan_file: 0x1000,
} as const;

/** super.rst "s_feature_incompat": an unknown bit means the volume cannot be read correctly. */
export const FEATURE_INCOMPAT = {
  compression: 0x1,
  filetype: 0x2,
  recover: 0x4,
  journal_dev: 0x8,
  meta_bg: 0x10,
  extents: 0x40,
  '64bit': 0x80,
  mmp: 0x100,
  flex_bg: 0x200,
  ea_inode: 0x400,
  dirdata: 0x1000,
  csum_seed: 0x2000,
  largedir: 0x4000,
  inline_data: 0x8000,
  encrypt: 0x10000,
  casefold: 0x20000,
} as const;

/** Incompatible features this reader refuses outright (the rest of FEATURE_INCOMPAT it reads). */
export const INCOMPAT_REFUSED = ['compression', 'journal_dev', 'dirdata'] as const;

/** super.rst "s_feature_ro_compat": readable whatever they are, except where noted. */
export const FEATURE_RO_COMPAT = {
  sparse_super: 0x1,
  large_file: 0x2,
  btree_dir: 0x4,
  huge_file: 0x8,
  gdt_csum: 0x10,
  dir_nlink: 0x20,
  extra_isize: 0x40,
  has_snapshot: 0x80,
  quota: 0x100,
  bigalloc: 0x200,
  metadata_csum: 0x400,
  replica: 0x800,
  readonly: 0x1000,
  project: 0x2000,
  shared_blocks: 0x4000,
  verity: 0x8000,
  orphan_present: 0x10000,
} as const;

/** group_descr.rst "Block Group Descriptors": 32 bytes, or s_desc_size (>= 64) with 64bit. */
export const GROUP_DESC = {
  MIN_SIZE: 32,
  MIN_SIZE_64BIT: 64,
  MAX_SIZE: 1024,
  bg_block_bitmap_lo: 0x00,
  bg_inode_bitmap_lo: 0x04,
  bg_inode_table_lo: 0x08,
  bg_flags: 0x12,
  bg_itable_unused_lo: 0x1c,
  bg_checksum: 0x1e,
  bg_inode_table_hi: 0x28,
  bg_itable_unused_hi: 0x32,
  /** bg_flags */
  INODE_UNINIT: 0x1,
  BLOCK_UNINIT: 0x2,
  ITABLE_ZEROED: 0x4,
} as const;

/** inodes.rst "Inode Table": the 128-byte base and the large-inode tail (i_extra_isize). */
export const INODE = {
  i_mode: 0x00,
  i_uid: 0x02,
  i_size_lo: 0x04,
  i_atime: 0x08,
  i_ctime: 0x0c,
  i_mtime: 0x10,
  i_dtime: 0x14,
  i_gid: 0x18,
  i_links_count: 0x1a,
  i_blocks_lo: 0x1c,
  i_flags: 0x20,
  i_block: 0x28,
  I_BLOCK_SIZE: 60,
  i_generation: 0x64,
  i_file_acl_lo: 0x68,
  i_size_high: 0x6c,
  l_i_blocks_high: 0x74,
  l_i_file_acl_high: 0x76,
  l_i_uid_high: 0x78,
  l_i_gid_high: 0x7a,
  l_i_checksum_lo: 0x7c,
  i_extra_isize: 0x80,
  i_checksum_hi: 0x82,
  i_ctime_extra: 0x84,
  i_mtime_extra: 0x88,
  i_atime_extra: 0x8c,
  i_crtime: 0x90,
  i_crtime_extra: 0x94,
  /** inodes.rst "Inode Timestamps": the extra word is 2 epoch bits (seconds << 32) then 30 bits of ns. */
  EXTRA_EPOCH_MASK: 0x3,
  EXTRA_NSEC_SHIFT: 2,
} as const;

/** inodes.rst "i_flags". */
export const INODE_FLAGS = {
  COMPR: 0x4,
  ENCRYPT: 0x800,
  INDEX: 0x1000,
  HUGE_FILE: 0x40000,
  EXTENTS: 0x80000,
  VERITY: 0x100000,
  EA_INODE: 0x200000,
  INLINE_DATA: 0x10000000,
  CASEFOLD: 0x40000000,
} as const;

/** inodes.rst "i_mode": the S_IFMT types. */
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

/** special_inodes.rst: the root directory; inodes below s_first_ino other than it are internal. */
export const ROOT_INO = 2;

/** ifork.rst "Extent Tree": header, index and leaf entries are 12 bytes each. */
export const EXTENT = {
  MAGIC: 0xf30a,
  HEADER_SIZE: 12,
  ENTRY_SIZE: 12,
  TAIL_SIZE: 4,
  eh_magic: 0x0,
  eh_entries: 0x2,
  eh_max: 0x4,
  eh_depth: 0x6,
  ei_block: 0x0,
  ei_leaf_lo: 0x4,
  ei_leaf_hi: 0x8,
  ee_block: 0x0,
  ee_len: 0x4,
  ee_start_hi: 0x6,
  ee_start_lo: 0x8,
  /** ee_len above this is an unwritten extent of ee_len - 32768 blocks. */
  INIT_MAX_LEN: 32768,
  /** EXT4_MAX_EXTENT_DEPTH: the kernel refuses deeper trees. */
  MAX_DEPTH: 5,
} as const;

/** blockmap.rst "Direct/Indirect Block Addressing": i_block[0..11] direct, then 1-, 2-, 3-level. */
export const BLOCK_MAP = {
  DIRECT: 12,
  IND: 12,
  DIND: 13,
  TIND: 14,
} as const;

/** directory.rst "Linear (Classic) Directories": ext4_dir_entry_2. */
export const DIRENT = {
  inode: 0x0,
  rec_len: 0x4,
  name_len: 0x6,
  file_type: 0x7,
  name: 0x8,
  HEADER_SIZE: 8,
  /** The checksum tail, a fake entry that ends every leaf block of a metadata_csum directory. */
  TAIL_SIZE: 12,
  TAIL_FILE_TYPE: 0xde,
  tail_checksum: 0x8,
  MAX_NAME_LEN: 255,
} as const;

/** directory.rst "file_type": the dirent type byte (with the filetype feature). */
export const DIRENT_FILE_TYPES = {
  1: 'file',
  2: 'dir',
  3: 'char',
  4: 'block',
  5: 'fifo',
  6: 'socket',
  7: 'symlink',
} as const;

/** directory.rst "Hash Tree Directories": dx_root, dx_node, dx_entry and dx_tail. */
export const DX = {
  /** dx_root_info follows the fake '.' (12 bytes) and the start of '..' (12 bytes). */
  ROOT_INFO: 0x18,
  root_reserved_zero: 0x0,
  root_hash_version: 0x4,
  root_info_length: 0x5,
  root_indirect_levels: 0x6,
  ROOT_INFO_LENGTH: 8,
  /** Offset of dx_countlimit in the root (after dx_root_info) and in an interior node (after a fake dirent). */
  ROOT_COUNT_OFFSET: 0x20,
  NODE_COUNT_OFFSET: 0x8,
  limit: 0x0,
  count: 0x2,
  ENTRY_SIZE: 8,
  TAIL_SIZE: 8,
  tail_checksum: 0x4,
  /** Levels below the root: 2 (3 with largedir) in the kernel's ext4_dir_htree_level. */
  MAX_LEVELS: 2,
  MAX_LEVELS_LARGEDIR: 3,
  /** dx_root_info.hash_version (super.rst "s_def_hash_version"); +3 for the unsigned variants. */
  HASH_LEGACY: 0,
  HASH_HALF_MD4: 1,
  HASH_TEA: 2,
  HASH_UNSIGNED_DELTA: 3,
  HASH_SIPHASH: 6,
} as const;

/** attributes.rst "Extended Attributes": the in-inode area after i_extra_isize. */
export const XATTR = {
  MAGIC: 0xea020000,
  IBODY_HEADER_SIZE: 4,
  ENTRY_HEADER_SIZE: 16,
  e_name_len: 0x0,
  e_name_index: 0x1,
  e_value_offs: 0x2,
  e_value_inum: 0x4,
  e_value_size: 0x8,
  e_name: 0x10,
  /** inlinedata.rst: the rest of an inline file is the value of "system.data". */
  INDEX_SYSTEM: 7,
  SYSTEM_DATA_NAME: 'data',
} as const;

/** inlinedata.rst "Inline Directories": i_block starts with the parent's inode number. */
export const INLINE_DIR = {
  PARENT_SIZE: 4,
} as const;
