import type { BlockReader } from '../../../core/block-reader.js';
import { CairnError } from '../../../core/errors.js';
import { formatInvalid } from './errors.js';
import { BOOT, MFT_RECORD, INDEX_BLOCK } from './layout.js';

/** The geometry the boot sector declares, every field checked against the others and the volume. */
export interface BootSector {
  readonly sectorSize: number;
  readonly clusterSize: number;
  /** Clusters of the filesystem (number_of_sectors / sectors_per_cluster). */
  readonly clusterCount: number;
  readonly mftLcn: number;
  readonly mftMirrLcn: number;
  readonly mftRecordSize: number;
  readonly indexBlockSize: number;
  /** The 64-bit serial as 16 hex digits, which is how ntfs-3g and Windows (fsutil) print it. */
  readonly serial: string;
}

/** True when `bytes` (a volume's first sector) carry the NTFS OEM id ntfs-3g and blkid look for. */
export function hasNtfsSignature(bytes: Buffer): boolean {
  return bytes.length >= BOOT.SIZE && bytes.toString('latin1', BOOT.oem_id, BOOT.oem_id + 8) === BOOT.OEM_ID;
}

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/**
 * clusters_per_mft_record / clusters_per_index_record (bootsect.c ntfs_boot_sector_parse): positive
 * n means n clusters, negative n means 2^-n bytes.
 */
function recordSize(raw: number, clusterSize: number): number {
  const signed = raw > 127 ? raw - 256 : raw;
  if (signed < 0) return -signed <= 31 ? 2 ** -signed : 0;
  return signed * clusterSize;
}

/**
 * Parses one boot sector (the primary at byte 0 or its backup in the volume's last sector) the way
 * ntfs-3g's ntfs_boot_sector_is_ntfs and ntfs_boot_sector_parse check it, plus what this reader
 * relies on: records and index blocks whole 512-byte strides, the filesystem inside the volume.
 */
export function parseBootSector(bytes: Buffer, volumeSize: number, volume: string, where = 'boot sector'): BootSector {
  const bad = (problem: string, context = {}): Error => formatInvalid(volume, where, problem, context);
  if (!hasNtfsSignature(bytes)) throw bad(`has no '${BOOT.OEM_ID}' OEM id`);
  const sectorSize = bytes.readUInt16LE(BOOT.bytes_per_sector);
  if (!isPowerOfTwo(sectorSize) || sectorSize < BOOT.MIN_SECTOR_SIZE || sectorSize > BOOT.MAX_SECTOR_SIZE)
    throw bad(`bytes per sector ${sectorSize} is invalid`);
  const spcRaw = bytes[BOOT.sectors_per_cluster]!;
  let sectorsPerCluster: number;
  if (spcRaw <= BOOT.MAX_LINEAR_SECTORS_PER_CLUSTER) sectorsPerCluster = spcRaw;
  else if (spcRaw >= 240 && spcRaw <= 253) sectorsPerCluster = 2 ** (256 - spcRaw);
  else sectorsPerCluster = 0;
  if (!isPowerOfTwo(sectorsPerCluster)) throw bad(`sectors per cluster code ${spcRaw} is invalid`);
  const clusterSize = sectorSize * sectorsPerCluster;
  if (clusterSize > BOOT.MAX_CLUSTER_SIZE) throw bad(`cluster size ${clusterSize} is beyond 2 MiB`);
  // Fields FAT uses and NTFS must leave zero: a FAT boot sector with an 'NTFS' OEM id is not NTFS.
  const fatFields = [
    bytes.readUInt16LE(BOOT.reserved_sectors),
    bytes[BOOT.fats]!,
    bytes.readUInt16LE(BOOT.root_entries),
    bytes.readUInt16LE(BOOT.sectors),
    bytes.readUInt16LE(BOOT.sectors_per_fat),
    bytes.readUInt32LE(BOOT.large_sectors),
  ];
  if (fatFields.some((v) => v !== 0)) throw bad('FAT fields that NTFS leaves zero are set');

  const sectors = bytes.readBigInt64LE(BOOT.number_of_sectors);
  if (sectors <= 0n || sectors * BigInt(sectorSize) > BigInt(volumeSize)) {
    throw bad(`${sectors} sectors of ${sectorSize} bytes do not fit the ${volumeSize}-byte volume`, { sectors: String(sectors) });
  }
  const clusterCount = Number(sectors / BigInt(sectorsPerCluster));
  const mftLcn = bytes.readBigInt64LE(BOOT.mft_lcn);
  const mftMirrLcn = bytes.readBigInt64LE(BOOT.mftmirr_lcn);
  const clusters = BigInt(clusterCount);
  if (mftLcn <= 0n || mftLcn >= clusters || mftMirrLcn <= 0n || mftMirrLcn >= clusters || mftLcn === mftMirrLcn) {
    throw bad(`$MFT at cluster ${mftLcn} or $MFTMirr at ${mftMirrLcn} lies outside the ${clusterCount} clusters`);
  }
  const mftRecordSize = recordSize(bytes[BOOT.clusters_per_mft_record]!, clusterSize);
  if (!isPowerOfTwo(mftRecordSize) || mftRecordSize < MFT_RECORD.MIN_SIZE || mftRecordSize > MFT_RECORD.MAX_SIZE)
    throw bad(`MFT record size ${mftRecordSize} is invalid`);
  const indexBlockSize = recordSize(bytes[BOOT.clusters_per_index_record]!, clusterSize);
  if (!isPowerOfTwo(indexBlockSize) || indexBlockSize < INDEX_BLOCK.MIN_SIZE || indexBlockSize > INDEX_BLOCK.MAX_SIZE)
    throw bad(`index block size ${indexBlockSize} is invalid`);
  return {
    sectorSize,
    clusterSize,
    clusterCount,
    mftLcn: Number(mftLcn),
    mftMirrLcn: Number(mftMirrLcn),
    mftRecordSize,
    indexBlockSize,
    serial: bytes.readBigUInt64LE(BOOT.volume_serial_number).toString(16).padStart(16, '0'),
  };
}

/**
 * Where a backup boot sector can be: the last sector of the volume (mkntfs and Windows put it there
 * and declare one sector fewer), tried for every sector size, largest first so that a 4 KiB-sector
 * volume does not match a stale 512-byte copy inside its last sector.
 */
export function backupBootOffsets(volumeSize: number): number[] {
  const offsets: number[] = [];
  for (let size = BOOT.MAX_SECTOR_SIZE; size >= BOOT.MIN_SECTOR_SIZE; size /= 2) {
    const at = Math.floor(volumeSize / size) * size - size;
    // A boot sector is 512 bytes even on 256-byte sectors: it must fit before the end.
    if (at > 0 && at + BOOT.SIZE <= volumeSize && !offsets.includes(at)) offsets.push(at);
  }
  return offsets;
}

/** The boot sector, or its backup in the volume's last sector when the primary is damaged. */
export async function readBootSector(volume: BlockReader, name: string, notes: string[]): Promise<BootSector> {
  try {
    return parseBootSector(await volume.read(0, BOOT.SIZE), volume.size, name);
  } catch (err) {
    if (!(err instanceof CairnError) || err.code !== 'ERR_FORMAT_INVALID') throw err;
    for (const at of backupBootOffsets(volume.size)) {
      const bytes = await volume.read(at, BOOT.SIZE);
      if (!hasNtfsSignature(bytes)) continue;
      try {
        // The backup follows the filesystem it describes: that filesystem must end before it.
        const boot = parseBootSector(bytes, at, name, `backup boot sector at byte ${at}`);
        notes.push(`the boot sector is damaged (${err.message}); the backup at byte ${at} was used`);
        return boot;
      } catch {
        // Not a usable backup; try the next place.
      }
    }
    throw err;
  }
}
