// On-disk layout of FAT12/16/32 with VFAT long names, after Microsoft's "Microsoft Extensible
// Firmware Initiative FAT32 File System Specification, FAT: General Overview of On-Disk Format",
// version 1.03 (December 6, 2000); section names below are that document's headings. All fields are
// little-endian. Offsets are bytes within the structure; `size` is the field's width in bytes.

/** "Boot Sector and BPB": the fields common to every FAT type (BPB, offsets 0–35). */
export const BPB = {
  BS_jmpBoot: { offset: 0, size: 3 },
  BS_OEMName: { offset: 3, size: 8 },
  BPB_BytsPerSec: { offset: 11, size: 2 },
  BPB_SecPerClus: { offset: 13, size: 1 },
  BPB_RsvdSecCnt: { offset: 14, size: 2 },
  BPB_NumFATs: { offset: 16, size: 1 },
  BPB_RootEntCnt: { offset: 17, size: 2 },
  BPB_TotSec16: { offset: 19, size: 2 },
  BPB_Media: { offset: 21, size: 1 },
  BPB_FATSz16: { offset: 22, size: 2 },
  BPB_SecPerTrk: { offset: 24, size: 2 },
  BPB_NumHeads: { offset: 26, size: 2 },
  BPB_HiddSec: { offset: 28, size: 4 },
  BPB_TotSec32: { offset: 32, size: 4 },
} as const;

/** "Boot Sector and BPB": the FAT12/FAT16 extended fields that follow the BPB at offset 36. */
export const BPB_FAT16 = {
  BS_DrvNum: { offset: 36, size: 1 },
  BS_Reserved1: { offset: 37, size: 1 },
  BS_BootSig: { offset: 38, size: 1 },
  BS_VolID: { offset: 39, size: 4 },
  BS_VolLab: { offset: 43, size: 11 },
  BS_FilSysType: { offset: 54, size: 8 },
} as const;

/** "Boot Sector and BPB": the FAT32 extended fields that follow the BPB at offset 36. */
export const BPB_FAT32 = {
  BPB_FATSz32: { offset: 36, size: 4 },
  BPB_ExtFlags: { offset: 40, size: 2 },
  BPB_FSVer: { offset: 42, size: 2 },
  BPB_RootClus: { offset: 44, size: 4 },
  BPB_FSInfo: { offset: 48, size: 2 },
  BPB_BkBootSec: { offset: 50, size: 2 },
  BPB_Reserved: { offset: 52, size: 12 },
  BS_DrvNum: { offset: 64, size: 1 },
  BS_Reserved1: { offset: 65, size: 1 },
  BS_BootSig: { offset: 66, size: 1 },
  BS_VolID: { offset: 67, size: 4 },
  BS_VolLab: { offset: 71, size: 11 },
  BS_FilSysType: { offset: 82, size: 8 },
} as const;

/** "Boot Sector and BPB": values the spec allows or names. */
export const BOOT_SECTOR = {
  /** What the probe reads: the largest offset above plus the 0xAA55 signature word ends at 512. */
  probeLength: 512,
  signatureOffset: 510,
  signature: 0xaa55,
  /** BS_jmpBoot: either 0xEB ?? 0x90 (short jump, NOP) or 0xE9 ?? ?? (near jump). */
  jmpShort: 0xeb,
  jmpNear: 0xe9,
  nop: 0x90,
  bytesPerSector: [512, 1024, 2048, 4096],
  /** BPB_SecPerClus is a power of two from 1 to 128. */
  maxSectorsPerCluster: 128,
  /** BPB_Media: 0xF0 or 0xF8–0xFF. */
  mediaRemovable: 0xf0,
  mediaFixedMin: 0xf8,
  /** BS_BootSig: 0x29 says BS_VolID, BS_VolLab and BS_FilSysType are present. */
  extendedBootSignature: 0x29,
  /** BPB_ExtFlags: bit 7 set means only FAT number (bits 0–3) is active; clear means mirrored. */
  extFlagsNoMirroring: 0x80,
  extFlagsActiveFatMask: 0x0f,
  /** BS_VolLab when a volume has no label. */
  noLabel: 'NO NAME    ',
} as const;

/** "FAT Type Determination": the type is decided by the count of data clusters and nothing else. */
export const FAT_TYPE_LIMITS = {
  /** Fewer clusters than this: FAT12. */
  fat12MaxClustersExclusive: 4085,
  /** Fewer clusters than this (and not FAT12): FAT16; otherwise FAT32. */
  fat16MaxClustersExclusive: 65525,
  /** The first data cluster is number 2 (entries 0 and 1 of the FAT are reserved). */
  firstDataCluster: 2,
} as const;

export type FatType = 12 | 16 | 32;

/**
 * "FAT Data Structure": meaning of FAT entry values per FAT type. FAT32 entries use only the low 28
 * bits (the high 4 are reserved and must be ignored when read). A value from `endOfChainMin` up is
 * end of chain; `bad` marks a bad cluster; 0 is free; values above the volume's last cluster and
 * below `bad` are reserved.
 */
export const FAT_ENTRY = {
  12: { bits: 12, mask: 0xfff, bad: 0xff7, endOfChainMin: 0xff8 },
  16: { bits: 16, mask: 0xffff, bad: 0xfff7, endOfChainMin: 0xfff8 },
  32: { bits: 32, mask: 0x0fffffff, bad: 0x0ffffff7, endOfChainMin: 0x0ffffff8 },
} as const;

/** "FAT Directory Structure": the 32-byte short (8.3) directory entry. */
export const DIR_ENTRY = {
  DIR_Name: { offset: 0, size: 11 },
  DIR_Attr: { offset: 11, size: 1 },
  DIR_NTRes: { offset: 12, size: 1 },
  /** Count of 10 ms units (0–199) added to DIR_CrtTime's 2-second granularity. */
  DIR_CrtTimeTenth: { offset: 13, size: 1 },
  DIR_CrtTime: { offset: 14, size: 2 },
  DIR_CrtDate: { offset: 16, size: 2 },
  DIR_LstAccDate: { offset: 18, size: 2 },
  DIR_FstClusHI: { offset: 20, size: 2 },
  DIR_WrtTime: { offset: 22, size: 2 },
  DIR_WrtDate: { offset: 24, size: 2 },
  DIR_FstClusLO: { offset: 26, size: 2 },
  DIR_FileSize: { offset: 28, size: 4 },
} as const;

export const DIR_ENTRY_SIZE = 32;

/** "FAT Directory Structure": DIR_Attr bits. ATTR_LONG_NAME is a combination no short entry has. */
export const ATTR = {
  READ_ONLY: 0x01,
  HIDDEN: 0x02,
  SYSTEM: 0x04,
  VOLUME_ID: 0x08,
  DIRECTORY: 0x10,
  ARCHIVE: 0x20,
  LONG_NAME: 0x0f,
  /** "FAT Long Directory Entries": an entry is a long-name entry when (attr & mask) == LONG_NAME. */
  LONG_NAME_MASK: 0x3f,
} as const;

/** "FAT Directory Structure": special values of DIR_Name[0]. */
export const DIR_NAME0 = {
  /** This and every following entry of the directory are free. */
  END: 0x00,
  /** The entry is free (deleted). */
  FREE: 0xe5,
  /** The name really starts with 0xE5 (a KANJI lead byte), stored as 0x05. */
  KANJI_E5: 0x05,
} as const;

/**
 * DIR_NTRes bits that Windows NT writes for 8.3 names whose base or extension is all lower case
 * (so no long-name entry is needed) and that Linux's vfat honours. Not in the spec ("reserved for
 * use by Windows NT"); the values are those of Linux's `CASE_LOWER_BASE` / `CASE_LOWER_EXT`.
 */
export const NT_CASE = {
  LOWER_BASE: 0x08,
  LOWER_EXT: 0x10,
} as const;

/** "FAT Long Directory Entries": the 32-byte long-name entry; names are UTF-16LE, 13 units per entry. */
export const LDIR_ENTRY = {
  LDIR_Ord: { offset: 0, size: 1 },
  LDIR_Name1: { offset: 1, size: 10 },
  LDIR_Attr: { offset: 11, size: 1 },
  LDIR_Type: { offset: 12, size: 1 },
  LDIR_Chksum: { offset: 13, size: 1 },
  LDIR_Name2: { offset: 14, size: 12 },
  LDIR_FstClusLO: { offset: 26, size: 2 },
  LDIR_Name3: { offset: 28, size: 4 },
} as const;

export const LONG_NAME = {
  /** LDIR_Ord of the entry holding the end of the name (stored first, physically). */
  LAST_LONG_ENTRY: 0x40,
  /** "Name Limits and Character Sets": a long name has at most 255 UTF-16 units, so 20 entries. */
  maxUnits: 255,
  maxEntries: 20,
  unitsPerEntry: 13,
  /** The byte offsets of the 13 UTF-16 units of one entry, in name order. */
  unitOffsets: [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30],
  /** After the terminating 0x0000, unused units are 0xFFFF. */
  terminator: 0x0000,
} as const;

/**
 * "FAT Directory Structure": a directory holds at most 65,536 32-byte entries (2 MiB), which bounds
 * every directory walk however its cluster chain is damaged.
 */
export const MAX_DIR_ENTRIES = 65536;

/** "Date and Time Formats" under "FAT Directory Structure". Dates count years from 1980. */
export const FAT_DATE = {
  dayMask: 0x1f,
  monthShift: 5,
  monthMask: 0x0f,
  yearShift: 9,
  yearMask: 0x7f,
  epochYear: 1980,
} as const;

export const FAT_TIME = {
  /** Seconds are stored as a count of 2-second units. */
  twoSecondMask: 0x1f,
  minuteShift: 5,
  minuteMask: 0x3f,
  hourShift: 11,
  hourMask: 0x1f,
} as const;

/** Checks, at load, that the field tables describe the 32-byte entries without overlap or overflow. */
function assertLayout(fields: Record<string, { offset: number; size: number }>, total: number, label: string): void {
  let end = 0;
  for (const [name, { offset, size }] of Object.entries(fields).sort((a, b) => a[1].offset - b[1].offset)) {
    if (offset < end || offset + size > total) throw new Error(`FAT layout: ${label}.${name} overlaps or overflows`);
    end = offset + size;
  }
}
assertLayout(DIR_ENTRY, DIR_ENTRY_SIZE, 'DIR_ENTRY');
assertLayout(LDIR_ENTRY, DIR_ENTRY_SIZE, 'LDIR_ENTRY');
assertLayout({ ...BPB, ...BPB_FAT16 }, BOOT_SECTOR.signatureOffset, 'BPB_FAT16');
assertLayout({ ...BPB, ...BPB_FAT32 }, BOOT_SECTOR.signatureOffset, 'BPB_FAT32');
if (LONG_NAME.unitOffsets.length !== LONG_NAME.unitsPerEntry) throw new Error('FAT layout: LFN unit offsets');
