/**
 * On-disk layout of MBR (DOS) and GPT partition tables. Offsets are bytes within a sector or entry;
 * all integers are little-endian. Sources: the UEFI specification, chapter 5 (GPT disk layout), and the
 * classic IBM PC partition table as util-linux's libblkid reads it (see shared/reference/formats.md §6).
 */
export const MBR = {
  SIZE: 512,
  DISK_SIGNATURE_OFFSET: 440,
  ENTRIES_OFFSET: 446,
  ENTRY_SIZE: 16,
  ENTRY_COUNT: 4,
  BOOT_SIGNATURE_OFFSET: 510,
  BOOT_SIGNATURE: 0xaa55,
  /** Entry fields. */
  ENTRY_STATUS: 0,
  ENTRY_TYPE: 4,
  ENTRY_START_LBA: 8,
  ENTRY_SECTOR_COUNT: 12,
  STATUS_ACTIVE: 0x80,
  TYPE_EMPTY: 0x00,
  TYPE_GPT_PROTECTIVE: 0xee,
  /** Linux numbers logical partitions from 5, whatever the primaries use. */
  FIRST_LOGICAL_NUMBER: 5,
  /** Bound on the EBR chain so a looping or hostile chain cannot run away. */
  MAX_LOGICAL_PARTITIONS: 256,
} as const;

/** Partition types that hold a chain of extended boot records rather than a filesystem. */
export const MBR_EXTENDED_TYPES: ReadonlySet<number> = new Set([0x05, 0x0f, 0x85]);

export const GPT = {
  SIGNATURE: 'EFI PART',
  REVISION_1_0: 0x00010000,
  /** The header's own size field: 92 in every revision so far; larger headers are allowed. */
  MIN_HEADER_SIZE: 92,
  HEADER_LBA: 1,
  /** Header fields. */
  HEADER_SIGNATURE: 0,
  HEADER_REVISION: 8,
  HEADER_SIZE: 12,
  HEADER_CRC32: 16,
  HEADER_MY_LBA: 24,
  HEADER_ALTERNATE_LBA: 32,
  HEADER_FIRST_USABLE_LBA: 40,
  HEADER_LAST_USABLE_LBA: 48,
  HEADER_DISK_GUID: 56,
  HEADER_ENTRIES_LBA: 72,
  HEADER_ENTRY_COUNT: 80,
  HEADER_ENTRY_SIZE: 84,
  HEADER_ENTRIES_CRC32: 88,
  /** Entry fields. */
  ENTRY_TYPE_GUID: 0,
  ENTRY_UNIQUE_GUID: 16,
  ENTRY_FIRST_LBA: 32,
  ENTRY_LAST_LBA: 40,
  ENTRY_ATTRIBUTES: 48,
  ENTRY_NAME: 56,
  ENTRY_NAME_SIZE: 72,
  MIN_ENTRY_SIZE: 128,
  /** Caps on untrusted counts: the spec's minimum array is 16 KiB; tools rarely exceed 128 entries. */
  MAX_ENTRY_COUNT: 4096,
  MAX_ENTRIES_BYTES: 1024 * 1024,
} as const;

/** Logical sector sizes probed for a GPT header (512e and 4Kn disks). */
export const SECTOR_SIZES = [512, 4096] as const;

/** Well-known GPT partition type GUIDs, for display. */
export const GPT_TYPE_NAMES: Readonly<Record<string, string>> = {
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': 'EFI System',
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': 'Microsoft basic data',
  'E3C9E316-0B5C-4DB8-817D-F92DF00215AE': 'Microsoft reserved',
  'DE94BBA4-06D1-4D40-A16A-BFD50179D6AC': 'Windows recovery',
  '0FC63DAF-8483-4772-8E79-3D69D8477DE4': 'Linux filesystem',
  'E6D6D379-F507-44C2-A23C-238F2A3DF928': 'Linux LVM',
  '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F': 'Linux swap',
  'A19D880F-05FC-4D3B-A006-743F0F84911E': 'Linux RAID',
  '21686148-6449-6E6F-744E-656564454649': 'BIOS boot',
};

export const GPT_UNUSED_TYPE_GUID = '00000000-0000-0000-0000-000000000000';
