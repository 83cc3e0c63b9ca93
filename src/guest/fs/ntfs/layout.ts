// On-disk structures of NTFS (versions 1.2, 3.0 and 3.1), little-endian throughout. Offsets follow
// ntfs-3g's include/ntfs-3g/layout.h (struct named per table) and the libyal libfsntfs "New
// Technologies File System (NTFS)" format description (section named per table); the parsers read
// fields only through these tables.

/** layout.h NTFS_BOOT_SECTOR; libfsntfs "The volume header". 512 bytes at volume byte 0. */
export const BOOT = {
  SIZE: 512,
  OEM_ID: 'NTFS    ',
  oem_id: 0x03,
  bytes_per_sector: 0x0b,
  sectors_per_cluster: 0x0d,
  reserved_sectors: 0x0e,
  fats: 0x10,
  root_entries: 0x11,
  sectors: 0x13,
  sectors_per_fat: 0x16,
  large_sectors: 0x20,
  number_of_sectors: 0x28,
  mft_lcn: 0x30,
  mftmirr_lcn: 0x38,
  clusters_per_mft_record: 0x40,
  clusters_per_index_record: 0x44,
  volume_serial_number: 0x48,
  end_of_sector_marker: 0x1fe,
  END_MARKER: 0xaa55,
  /** Sector sizes mkntfs and Windows use. */
  MIN_SECTOR_SIZE: 256,
  MAX_SECTOR_SIZE: 4096,
  /** sectors_per_cluster above 128 means 2^(256 - n) sectors (libfsntfs "The volume header"). */
  MAX_LINEAR_SECTORS_PER_CLUSTER: 128,
  MIN_EXPONENT_SECTORS_PER_CLUSTER: 244,
  /** Cluster sizes up to 2 MiB exist (Windows 10 1903). */
  MAX_CLUSTER_SIZE: 2 * 1024 * 1024,
} as const;

/**
 * Multi-sector transfer protection (layout.h NTFS_RECORD; libfsntfs "The fix-up values"): the last
 * u16 of every 512-byte stride of an MFT record or index block holds the update sequence number and
 * the real bytes sit in the update sequence array. The stride is 512 whatever the sector size.
 */
export const MULTI_SECTOR = {
  STRIDE: 512,
  magic: 0x00,
  usa_ofs: 0x04,
  usa_count: 0x06,
} as const;

/** layout.h MFT_RECORD; libfsntfs "MFT entry header". */
export const MFT_RECORD = {
  MAGIC_FILE: 0x454c4946, // "FILE"
  MAGIC_BAAD: 0x44414142, // "BAAD": chkdsk found a torn write
  lsn: 0x08,
  sequence_number: 0x10,
  link_count: 0x12,
  attrs_offset: 0x14,
  flags: 0x16,
  bytes_in_use: 0x18,
  bytes_allocated: 0x1c,
  base_mft_record: 0x20,
  next_attr_instance: 0x28,
  /** NTFS 3.1 only: the record's own number (after a 2-byte pad at 0x2a). */
  mft_record_number: 0x2c,
  /** The 3.1 header ends here; NT4's (1.2) ends at 0x2a with the update sequence array right after. */
  HEADER_SIZE_3_1: 0x30,
  HEADER_SIZE_1_2: 0x2a,
  MIN_SIZE: 512,
  MAX_SIZE: 65536,
} as const;

/** layout.h MFT_RECORD_FLAGS. */
export const MFT_RECORD_FLAGS = {
  IN_USE: 0x0001,
  IS_DIRECTORY: 0x0002,
  IS_4: 0x0004,
  IS_VIEW_INDEX: 0x0008,
} as const;

/** layout.h NTFS_SYSTEM_FILES: fixed MFT record numbers; records below FIRST_USER are metadata. */
export const SYSTEM_FILES = {
  MFT: 0,
  MFTMIRR: 1,
  LOGFILE: 2,
  VOLUME: 3,
  ATTRDEF: 4,
  ROOT: 5,
  BITMAP: 6,
  BOOT: 7,
  BADCLUS: 8,
  SECURE: 9,
  UPCASE: 10,
  EXTEND: 11,
  FIRST_USER: 16,
} as const;

/** A file reference (MFT_REF): record number in the low 48 bits, sequence number in the high 16. */
export const MFT_REF = {
  RECORD_MASK: 0xffff_ffff_ffffn,
  SEQUENCE_SHIFT: 48n,
} as const;

/** layout.h ATTR_TYPES; libfsntfs "The attribute types". */
export const ATTR_TYPE = {
  STANDARD_INFORMATION: 0x10,
  ATTRIBUTE_LIST: 0x20,
  FILE_NAME: 0x30,
  OBJECT_ID: 0x40,
  SECURITY_DESCRIPTOR: 0x50,
  VOLUME_NAME: 0x60,
  VOLUME_INFORMATION: 0x70,
  DATA: 0x80,
  INDEX_ROOT: 0x90,
  INDEX_ALLOCATION: 0xa0,
  BITMAP: 0xb0,
  REPARSE_POINT: 0xc0,
  EA_INFORMATION: 0xd0,
  EA: 0xe0,
  LOGGED_UTILITY_STREAM: 0x100,
  END: 0xffff_ffff,
} as const;

/** layout.h ATTR_RECORD: the common header, then the resident or the non-resident part. */
export const ATTR = {
  type: 0x00,
  length: 0x04,
  non_resident: 0x08,
  name_length: 0x09,
  name_offset: 0x0a,
  flags: 0x0c,
  instance: 0x0e,
  // Resident form.
  value_length: 0x10,
  value_offset: 0x14,
  RESIDENT_HEADER_SIZE: 0x18,
  // Non-resident form.
  lowest_vcn: 0x10,
  highest_vcn: 0x18,
  mapping_pairs_offset: 0x20,
  compression_unit: 0x22,
  allocated_size: 0x28,
  data_size: 0x30,
  initialized_size: 0x38,
  /** Present only on compressed or sparse attributes (the header is 0x48 bytes then). */
  compressed_size: 0x40,
  NON_RESIDENT_HEADER_SIZE: 0x40,
  NON_RESIDENT_COMPRESSED_HEADER_SIZE: 0x48,
} as const;

/** layout.h ATTR_FLAGS; libfsntfs "MFT attribute data flags". */
export const ATTR_FLAGS = {
  COMPRESSION_MASK: 0x00ff,
  IS_COMPRESSED: 0x0001,
  IS_ENCRYPTED: 0x4000,
  IS_SPARSE: 0x8000,
} as const;

/** layout.h STANDARD_INFORMATION: 48 bytes in NTFS 1.2, 72 from 3.0. */
export const STANDARD_INFORMATION = {
  creation_time: 0x00,
  last_data_change_time: 0x08,
  last_mft_change_time: 0x10,
  last_access_time: 0x18,
  file_attributes: 0x20,
  MIN_SIZE: 0x30,
} as const;

/** layout.h FILE_ATTR_FLAGS; libfsntfs "File attribute flags". */
export const FILE_ATTR = {
  READONLY: 0x0000_0001,
  HIDDEN: 0x0000_0002,
  SYSTEM: 0x0000_0004,
  DIRECTORY: 0x0000_0010,
  ARCHIVE: 0x0000_0020,
  DEVICE: 0x0000_0040,
  NORMAL: 0x0000_0080,
  TEMPORARY: 0x0000_0100,
  SPARSE_FILE: 0x0000_0200,
  REPARSE_POINT: 0x0000_0400,
  COMPRESSED: 0x0000_0800,
  OFFLINE: 0x0000_1000,
  NOT_CONTENT_INDEXED: 0x0000_2000,
  ENCRYPTED: 0x0000_4000,
  RECALL_ON_OPEN: 0x0004_0000,
  /** Only in $FILE_NAME: the file has an $I30 index (a directory). */
  I30_INDEX_PRESENT: 0x1000_0000,
} as const;

/** The file attributes `GuestStat.attributes` shows, by the names the interface uses. */
export const SHOWN_FILE_ATTRIBUTES: readonly (readonly [number, string])[] = [
  [FILE_ATTR.READONLY, 'readonly'],
  [FILE_ATTR.HIDDEN, 'hidden'],
  [FILE_ATTR.SYSTEM, 'system'],
  [FILE_ATTR.ARCHIVE, 'archive'],
  [FILE_ATTR.TEMPORARY, 'temporary'],
  [FILE_ATTR.SPARSE_FILE, 'sparse'],
  [FILE_ATTR.REPARSE_POINT, 'reparse'],
  [FILE_ATTR.COMPRESSED, 'compressed'],
  [FILE_ATTR.OFFLINE, 'offline'],
  [FILE_ATTR.NOT_CONTENT_INDEXED, 'not-content-indexed'],
  [FILE_ATTR.ENCRYPTED, 'encrypted'],
];

/** layout.h FILE_NAME_ATTR; libfsntfs "The file name attribute". */
export const FILE_NAME = {
  parent_directory: 0x00,
  creation_time: 0x08,
  last_data_change_time: 0x10,
  last_mft_change_time: 0x18,
  last_access_time: 0x20,
  allocated_size: 0x28,
  data_size: 0x30,
  file_attributes: 0x38,
  reparse_point_tag: 0x3c,
  file_name_length: 0x40,
  file_name_type: 0x41,
  file_name: 0x42,
  HEADER_SIZE: 0x42,
} as const;

/** layout.h FILE_NAME_TYPE_FLAGS; libfsntfs "Namespace". */
export const FILE_NAME_TYPE = {
  POSIX: 0,
  WIN32: 1,
  DOS: 2,
  WIN32_AND_DOS: 3,
} as const;

/** layout.h ATTR_LIST_ENTRY; libfsntfs "The attribute list entry header". */
export const ATTR_LIST_ENTRY = {
  type: 0x00,
  length: 0x04,
  name_length: 0x06,
  name_offset: 0x07,
  lowest_vcn: 0x08,
  mft_reference: 0x10,
  instance: 0x18,
  HEADER_SIZE: 0x1a,
} as const;

/** layout.h INDEX_ROOT; libfsntfs "The index root header". The INDEX_HEADER follows at 0x10. */
export const INDEX_ROOT = {
  type: 0x00,
  collation_rule: 0x04,
  index_block_size: 0x08,
  clusters_per_index_block: 0x0c,
  index: 0x10,
} as const;

/** layout.h INDEX_HEADER; libfsntfs "The index node header". Offsets are from the header's start. */
export const INDEX_HEADER = {
  entries_offset: 0x00,
  index_length: 0x04,
  allocated_size: 0x08,
  ih_flags: 0x0c,
  SIZE: 0x10,
  /** ih_flags: the node has children (LARGE_INDEX in the root, INDEX_NODE in blocks). */
  HAS_CHILDREN: 0x01,
} as const;

/** layout.h INDEX_BLOCK ("INDX"); libfsntfs "The index entry header". The INDEX_HEADER follows at 0x18. */
export const INDEX_BLOCK = {
  MAGIC: 0x58444e49, // "INDX"
  index_block_vcn: 0x10,
  index: 0x18,
  MIN_SIZE: 512,
  MAX_SIZE: 65536,
} as const;

/** layout.h INDEX_ENTRY (INDEX_ENTRY_HEADER then the key); libfsntfs "The index value". */
export const INDEX_ENTRY = {
  indexed_file: 0x00,
  length: 0x08,
  key_length: 0x0a,
  ie_flags: 0x0c,
  key: 0x10,
  HEADER_SIZE: 0x10,
  /** ie_flags: INDEX_ENTRY_NODE (a sub-node VCN in the last 8 bytes), INDEX_ENTRY_END (no key). */
  NODE: 0x01,
  END: 0x02,
} as const;

/** layout.h COLLATION_RULES: directories ($I30) collate file names. */
export const COLLATION = {
  FILE_NAME: 0x01,
} as const;

/** The names of the attributes directories use: $I30 for the $INDEX_ROOT/$INDEX_ALLOCATION/$BITMAP trio. */
export const I30 = '$I30';

/** layout.h REPARSE_POINT; libfsntfs "The reparse point". Non-Microsoft tags carry a 16-byte GUID first. */
export const REPARSE_POINT = {
  reparse_tag: 0x00,
  reparse_data_length: 0x04,
  reparse_data: 0x08,
  HEADER_SIZE: 0x08,
  GUID_SIZE: 16,
  /** Bit 31: a Microsoft tag (no GUID). */
  TAG_IS_MICROSOFT: 0x8000_0000,
  /** Reparse data is at most 16 KiB (MAXIMUM_REPARSE_DATA_BUFFER_SIZE). */
  MAX_SIZE: 16 * 1024,
} as const;

/** layout.h PREDEFINED_REPARSE_TAGS (the ones this reader interprets); libfsntfs "Reparse point tag". */
export const REPARSE_TAG = {
  MOUNT_POINT: 0xa000_0003,
  SYMLINK: 0xa000_000c,
  DEDUP: 0x8000_0013,
  WOF: 0x8000_0017,
  LX_SYMLINK: 0xa000_001d,
  AF_UNIX: 0x8000_0023,
  LX_FIFO: 0x8000_0024,
  LX_CHR: 0x8000_0025,
  LX_BLK: 0x8000_0026,
} as const;

/** libfsntfs "Junction or mount point reparse data": four u16 then the UTF-16 path buffer. */
export const MOUNT_POINT_DATA = {
  subst_name_offset: 0x00,
  subst_name_length: 0x02,
  print_name_offset: 0x04,
  print_name_length: 0x06,
  path_buffer: 0x08,
} as const;

/** libfsntfs "Symbolic link reparse data": as a junction plus u32 flags before the path buffer. */
export const SYMLINK_DATA = {
  subst_name_offset: 0x00,
  subst_name_length: 0x02,
  print_name_offset: 0x04,
  print_name_length: 0x06,
  flags: 0x08,
  path_buffer: 0x0c,
  /** SYMLINK_FLAG_RELATIVE: the substitute name is relative to the link's directory. */
  FLAG_RELATIVE: 0x1,
} as const;

/** ntfs-3g reparse.c WSL_LINK_REPARSE_DATA: u32 version (2) then the UTF-8 target. */
export const LX_SYMLINK_DATA = {
  version: 0x00,
  target: 0x04,
  VERSION: 2,
} as const;

/**
 * layout.h INTX_FILE: Interix (Services for Unix) special files, which ntfs-3g still creates for
 * symlinks, devices, fifos and sockets unless mounted with special_files=wsl. They are $DATA of a
 * file with the SYSTEM attribute: a magic, then major/minor (u64 each) or the UTF-16 target.
 */
export const INTX = {
  magic: 0x00,
  major: 0x08,
  minor: 0x10,
  target: 0x08,
  DEVICE_SIZE: 0x18,
  MAGIC_SIZE: 8,
  SYMBOLIC_LINK: 0x014b4e4c78746e49n, // "IntxLNK\1"
  CHARACTER_DEVICE: 0x0052484378746e49n, // "IntxCHR\0"
  BLOCK_DEVICE: 0x004b4c4278746e49n, // "IntxBLK\0"
  /** ntfs-3g looks for Interix types only in files up to 8 + 2 * PATH_MAX bytes. */
  MAX_SIZE: 8 + 2 * 4096,
} as const;

/**
 * layout.h EA_ATTR: the $EA attribute is a sequence of these (next_entry_offset chains them; the
 * name is NUL-terminated and the value follows it). WSL keeps POSIX metadata in EAs named $LXMOD
 * (u32 mode), $LXUID, $LXGID and $LXDEV (u32 major, u32 minor), and ntfs-3g writes $LXMOD and
 * $LXDEV for the special files it creates with special_files=wsl.
 */
export const EA_ENTRY = {
  next_entry_offset: 0x00,
  flags: 0x04,
  name_length: 0x05,
  value_length: 0x06,
  name: 0x08,
  HEADER_SIZE: 0x08,
  LXMOD: '$LXMOD',
  LXDEV: '$LXDEV',
  /** An $EA value is at most 64 KiB (the EA_INFORMATION sizes are 16-bit). */
  MAX_SIZE: 65536,
} as const;

/** layout.h VOLUME_INFORMATION (in $Volume); libfsntfs "The volume information attribute". */
export const VOLUME_INFORMATION = {
  major_ver: 0x08,
  minor_ver: 0x09,
  flags: 0x0a,
  SIZE: 0x0c,
  FLAG_IS_DIRTY: 0x0001,
} as const;

/** NTFS versions this reader knows: NT4 (1.2), Windows 2000 (3.0), XP and later (3.1). */
export const SUPPORTED_VERSIONS: readonly string[] = ['1.2', '3.0', '3.1'];

/**
 * Compression (libfsntfs "Compression"; ntfs-3g compress.c): data is stored in compression units
 * of 2^compression_unit clusters (4: 16 clusters); each unit is LZNT1 made of sub-blocks that
 * decode to 4096 bytes each, headed by a u16 (bits 0-11 = size - 3, bit 15 = compressed).
 */
export const COMPRESSION = {
  SUB_BLOCK_SIZE: 4096,
  SB_SIZE_MASK: 0x0fff,
  SB_IS_COMPRESSED: 0x8000,
  /** Windows compresses only with clusters up to 4 KiB and units of 16 clusters. */
  MAX_CLUSTER_SIZE: 4096,
  MAX_UNIT_SIZE: 64 * 1024,
} as const;

/** $UpCase (record 10): one u16 upper-case code unit per UTF-16 code unit. */
export const UPCASE = {
  ENTRIES: 65536,
  SIZE: 131072,
} as const;

/** The longest name a $FILE_NAME holds, in UTF-16 code units (NTFS_MAX_NAME_LEN). */
export const MAX_NAME_UNITS = 255;

/** FILETIME (100 ns units since 1601-01-01) of the Unix epoch (ntfs-3g's NTFS_TIME_OFFSET). */
export const NTFS_TIME_OFFSET = 116_444_736_000_000_000n;
