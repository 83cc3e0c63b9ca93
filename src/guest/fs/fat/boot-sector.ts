import { CairnError } from '../../../core/errors.js';
import { BOOT_SECTOR, BPB, BPB_FAT16, BPB_FAT32, DIR_ENTRY_SIZE, FAT_ENTRY, FAT_TYPE_LIMITS, type FatType } from './layout.js';

/** Where everything of one FAT volume lies, in bytes from the start of the volume. */
export interface FatGeometry {
  readonly fatType: FatType;
  readonly bytesPerSector: number;
  readonly clusterSize: number;
  /** Byte offset of the FAT that is read (the active one when mirroring is off, else the first). */
  readonly fatOffset: number;
  /** Bytes of one FAT. */
  readonly fatLength: number;
  /** FAT12/16: the fixed root directory region; FAT32: length 0 (the root is a cluster chain). */
  readonly rootDirOffset: number;
  readonly rootDirLength: number;
  /** FAT32: first cluster of the root directory; FAT12/16: 0. */
  readonly rootCluster: number;
  /** Byte offset of cluster 2. */
  readonly dataOffset: number;
  /** "CountofClusters" of the spec: data clusters are numbered 2 .. clusterCount + 1. */
  readonly clusterCount: number;
  /** Highest cluster number that is both in the data region and described by the FAT. */
  readonly maxCluster: number;
  /** BS_VolID, when BS_BootSig says it is present. */
  readonly volumeId?: number;
  /** BS_VolLab (trailing spaces kept), when present and not "NO NAME". */
  readonly bootLabel?: Buffer;
}

function field(sector: Buffer, f: { offset: number; size: number }): number {
  return sector.readUIntLE(f.offset, f.size);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/**
 * The cheap signature test for probing: a jump instruction, a BPB whose basic fields are legal and
 * a legal media byte ("Boot Sector and BPB"). NTFS and exFAT boot sectors fail it (their
 * BPB_RsvdSecCnt / BPB_NumFATs / BPB_BytsPerSec fields are zero), and so does an MBR.
 */
export function looksLikeFatBootSector(sector: Buffer): boolean {
  if (sector.length < BOOT_SECTOR.probeLength) return false;
  const jump = sector[0];
  if (!((jump === BOOT_SECTOR.jmpShort && sector[2] === BOOT_SECTOR.nop) || jump === BOOT_SECTOR.jmpNear)) return false;
  const bytesPerSector = field(sector, BPB.BPB_BytsPerSec);
  const sectorsPerCluster = field(sector, BPB.BPB_SecPerClus);
  const media = field(sector, BPB.BPB_Media);
  const totalSectors = field(sector, BPB.BPB_TotSec16) || field(sector, BPB.BPB_TotSec32);
  const fatSectors = field(sector, BPB.BPB_FATSz16) || field(sector, BPB_FAT32.BPB_FATSz32);
  return (
    (BOOT_SECTOR.bytesPerSector as readonly number[]).includes(bytesPerSector) &&
    isPowerOfTwo(sectorsPerCluster) &&
    sectorsPerCluster <= BOOT_SECTOR.maxSectorsPerCluster &&
    field(sector, BPB.BPB_RsvdSecCnt) > 0 &&
    field(sector, BPB.BPB_NumFATs) > 0 &&
    (media === BOOT_SECTOR.mediaRemovable || media >= BOOT_SECTOR.mediaFixedMin) &&
    totalSectors > 0 &&
    fatSectors > 0
  );
}

/**
 * Decodes and checks the boot sector of a volume of `volumeSize` bytes. Every region must lie inside
 * both the BPB's own total size and the volume; a volume cut short inside the data region is
 * accepted (clusters past the end are rejected when read), as mtools and Linux accept it.
 */
export function parseBootSector(sector: Buffer, volumeSize: number, name: string): FatGeometry {
  const invalid = (what: string, extra: Record<string, unknown> = {}): CairnError =>
    new CairnError('ERR_FORMAT_INVALID', `${name}: FAT boot sector: ${what}`, { volume: name, ...extra });
  if (!looksLikeFatBootSector(sector)) throw invalid('no FAT boot sector (jump, BPB or media byte is not FAT)');

  const bytesPerSector = field(sector, BPB.BPB_BytsPerSec);
  const clusterSize = bytesPerSector * field(sector, BPB.BPB_SecPerClus);
  const reservedSectors = field(sector, BPB.BPB_RsvdSecCnt);
  const numFats = field(sector, BPB.BPB_NumFATs);
  const rootEntryCount = field(sector, BPB.BPB_RootEntCnt);
  const fatSize16 = field(sector, BPB.BPB_FATSz16);
  const fatSectors = fatSize16 || field(sector, BPB_FAT32.BPB_FATSz32);
  const totalSectors = field(sector, BPB.BPB_TotSec16) || field(sector, BPB.BPB_TotSec32);

  // "FAT Type Determination", computed exactly as the spec writes it.
  const rootDirSectors = Math.ceil((rootEntryCount * DIR_ENTRY_SIZE) / bytesPerSector);
  const firstDataSector = reservedSectors + numFats * fatSectors + rootDirSectors;
  if (firstDataSector >= totalSectors)
    throw invalid(`the data region starts at sector ${firstDataSector}, past the volume's ${totalSectors} sectors`);
  const clusterCount = Math.floor((totalSectors - firstDataSector) / (clusterSize / bytesPerSector));
  let fatType: FatType =
    clusterCount < FAT_TYPE_LIMITS.fat12MaxClustersExclusive ? 12 : clusterCount < FAT_TYPE_LIMITS.fat16MaxClustersExclusive ? 16 : 32;
  // Deliberate deviation: `mkfs.fat -F 32` can make a FAT32 volume with fewer than 65525 clusters, and
  // Linux (fat_fill_super) and mtools read a BPB shaped like FAT32 (no 16-bit FAT size, no fixed
  // root) as FAT32 whatever the count. Read such a volume as they do rather than as a garbled FAT16.
  const fat32Shaped = fatSize16 === 0 && rootEntryCount === 0;
  if (fat32Shaped) fatType = 32;
  else if (fatType === 32)
    throw invalid(`${clusterCount} clusters make FAT32, but the BPB has a 16-bit FAT size or a fixed root directory`);
  if (fatType !== 32 && rootEntryCount === 0) throw invalid('a FAT12/16 volume without root directory entries');

  let rootCluster = 0;
  let activeFat = 0;
  if (fatType === 32) {
    const version = field(sector, BPB_FAT32.BPB_FSVer);
    if (version !== 0) {
      throw new CairnError('ERR_UNSUPPORTED', `${name}: FAT32 version ${version >> 8}.${version & 0xff} (only 0.0 exists)`, {
        volume: name,
        feature: 'BPB_FSVer',
      });
    }
    rootCluster = field(sector, BPB_FAT32.BPB_RootClus);
    const flags = field(sector, BPB_FAT32.BPB_ExtFlags);
    if (flags & BOOT_SECTOR.extFlagsNoMirroring) activeFat = flags & BOOT_SECTOR.extFlagsActiveFatMask;
    if (activeFat >= numFats) throw invalid(`active FAT ${activeFat} of ${numFats}`);
  }

  const fatLength = fatSectors * bytesPerSector;
  const fatEntries = Math.floor((fatLength * 8) / FAT_ENTRY[fatType].bits);
  // Clusters the FAT cannot describe, and values the FAT reserves, are out of range.
  const maxCluster = Math.min(clusterCount + 1, fatEntries - 1, FAT_ENTRY[fatType].bad - 1);
  if (maxCluster < FAT_TYPE_LIMITS.firstDataCluster)
    throw invalid(`no data clusters (count ${clusterCount}, FAT of ${fatEntries} entries)`);
  if (fatType === 32 && (rootCluster < FAT_TYPE_LIMITS.firstDataCluster || rootCluster > maxCluster)) {
    throw invalid(`root directory cluster ${rootCluster} is outside 2..${maxCluster}`);
  }

  const dataOffset = firstDataSector * bytesPerSector;
  const rootDirOffset = (reservedSectors + numFats * fatSectors) * bytesPerSector;
  const metadataEnd = fatType === 32 ? rootDirOffset : dataOffset;
  if (metadataEnd > volumeSize) {
    throw invalid(`the FATs and root directory end at byte ${metadataEnd}, past the ${volumeSize}-byte volume`, { volumeSize });
  }

  const extended = fatType === 32 ? BPB_FAT32 : BPB_FAT16;
  const hasExtended = field(sector, extended.BS_BootSig) === BOOT_SECTOR.extendedBootSignature;
  const label = sector.subarray(extended.BS_VolLab.offset, extended.BS_VolLab.offset + extended.BS_VolLab.size);
  return {
    fatType,
    bytesPerSector,
    clusterSize,
    fatOffset: (reservedSectors + activeFat * fatSectors) * bytesPerSector,
    fatLength,
    rootDirOffset,
    rootDirLength: fatType === 32 ? 0 : rootEntryCount * DIR_ENTRY_SIZE,
    rootCluster,
    dataOffset,
    clusterCount,
    maxCluster,
    ...(hasExtended ? { volumeId: field(sector, extended.BS_VolID) } : {}),
    ...(hasExtended && label.toString('latin1') !== BOOT_SECTOR.noLabel ? { bootLabel: Buffer.from(label) } : {}),
  };
}

/** Byte offset of cluster `cluster` (2 .. maxCluster) on the volume. */
export function clusterOffset(geometry: FatGeometry, cluster: number): number {
  return geometry.dataOffset + (cluster - FAT_TYPE_LIMITS.firstDataCluster) * geometry.clusterSize;
}
