import { CairnError } from '../core/errors.js';
import { MBR, MBR_EXTENDED_TYPES } from './partition-layout.js';
import type { PartitionEntry } from './partition-types.js';

/** One raw slot of an MBR or EBR sector, in sectors as stored. */
export interface MbrSlot {
  index: number;
  status: number;
  type: number;
  startLba: number;
  sectorCount: number;
}

/** Reads `count` sectors at `lba`; the caller bounds-checks against the disk. */
export type SectorSource = (lba: number, count: number) => Promise<Buffer>;

export function hasBootSignature(sector: Buffer): boolean {
  return sector.length >= MBR.SIZE && sector.readUInt16LE(MBR.BOOT_SIGNATURE_OFFSET) === MBR.BOOT_SIGNATURE;
}

/** The four slots of an MBR or EBR sector, empty ones included. Pure; the sector must be ≥ 512 bytes. */
export function parseMbrSlots(sector: Buffer): MbrSlot[] {
  const slots: MbrSlot[] = [];
  for (let index = 0; index < MBR.ENTRY_COUNT; index++) {
    const at = MBR.ENTRIES_OFFSET + index * MBR.ENTRY_SIZE;
    slots.push({
      index,
      status: sector.readUInt8(at + MBR.ENTRY_STATUS),
      type: sector.readUInt8(at + MBR.ENTRY_TYPE),
      startLba: sector.readUInt32LE(at + MBR.ENTRY_START_LBA),
      sectorCount: sector.readUInt32LE(at + MBR.ENTRY_SECTOR_COUNT),
    });
  }
  return slots;
}

export function isUsedSlot(slot: MbrSlot): boolean {
  return slot.type !== MBR.TYPE_EMPTY && slot.sectorCount !== 0;
}

export function isProtectiveMbr(slots: MbrSlot[]): boolean {
  return slots.some((slot) => slot.type === MBR.TYPE_GPT_PROTECTIVE);
}

/**
 * A boot sector with 55 AA but nonsense slots is usually a filesystem written to the whole disk
 * (a "superfloppy": FAT or NTFS boot sector), not a damaged partition table.
 */
export function looksLikeFilesystemBootSector(sector: Buffer): boolean {
  const oem = sector.toString('latin1', 3, 11);
  return (
    oem.startsWith('NTFS') ||
    oem.startsWith('EXFAT') ||
    sector.toString('latin1', 54, 59) === 'FAT12' ||
    sector.toString('latin1', 54, 59) === 'FAT16' ||
    sector.toString('latin1', 82, 87) === 'FAT32'
  );
}

/** Why the slots cannot be a partition table, or undefined when they are plausible. */
export function invalidSlotReason(slots: MbrSlot[], diskSectors: number): string | undefined {
  for (const slot of slots) {
    if (slot.status !== 0 && slot.status !== MBR.STATUS_ACTIVE) {
      return `entry ${slot.index + 1} has status byte 0x${slot.status.toString(16)} (expected 0x00 or 0x80)`;
    }
    if (!isUsedSlot(slot)) continue;
    if (slot.startLba === 0) return `entry ${slot.index + 1} starts at sector 0`;
    // A protective entry may claim 0xFFFFFFFF sectors on a larger disk; it is never served.
    if (slot.type !== MBR.TYPE_GPT_PROTECTIVE && slot.startLba + slot.sectorCount > diskSectors) {
      return `entry ${slot.index + 1} (sectors ${slot.startLba}+${slot.sectorCount}) ends past the disk (${diskSectors} sectors)`;
    }
  }
  return undefined;
}

function typeString(type: number): string {
  return `0x${type.toString(16).padStart(2, '0')}`;
}

/**
 * Primary and logical partitions of a DOS partition table. The extended container itself is not
 * listed: it holds EBRs, not a filesystem.
 */
export async function readMbrPartitions(
  mbrSector: Buffer,
  readSectors: SectorSource,
  sectorSize: number,
  diskSectors: number,
): Promise<PartitionEntry[]> {
  const slots = parseMbrSlots(mbrSector);
  const reason = invalidSlotReason(slots, diskSectors);
  if (reason !== undefined) {
    throw new CairnError('ERR_FORMAT_INVALID', `MBR partition table is invalid: ${reason}`, { table: 'mbr' });
  }
  const partitions: PartitionEntry[] = [];
  let extended: MbrSlot | undefined;
  for (const slot of slots) {
    if (!isUsedSlot(slot)) continue;
    if (MBR_EXTENDED_TYPES.has(slot.type)) {
      // Only one extended partition is meaningful; Linux follows the first one too.
      extended ??= slot;
      continue;
    }
    partitions.push({
      number: slot.index + 1,
      offset: slot.startLba * sectorSize,
      length: slot.sectorCount * sectorSize,
      type: typeString(slot.type),
      bootable: slot.status === MBR.STATUS_ACTIVE,
    });
  }
  if (extended !== undefined) {
    partitions.push(...(await readLogicalPartitions(extended, readSectors, sectorSize, diskSectors)));
  }
  return partitions;
}

/**
 * Walks the EBR chain: in each EBR, slot 1 is a logical partition relative to that EBR, slot 2 links
 * to the next EBR relative to the extended partition's start. Loops and escapes are refused.
 */
async function readLogicalPartitions(
  extended: MbrSlot,
  readSectors: SectorSource,
  sectorSize: number,
  diskSectors: number,
): Promise<PartitionEntry[]> {
  const partitions: PartitionEntry[] = [];
  const extendedEnd = extended.startLba + extended.sectorCount;
  const visited = new Set<number>();
  let ebrLba = extended.startLba;
  let number: number = MBR.FIRST_LOGICAL_NUMBER;
  while (visited.size < MBR.MAX_LOGICAL_PARTITIONS) {
    if (visited.has(ebrLba) || ebrLba < extended.startLba || ebrLba >= extendedEnd) {
      throw new CairnError(
        'ERR_FORMAT_INVALID',
        `MBR extended partition chain is invalid: EBR at sector ${ebrLba} loops or leaves the extended partition`,
        {
          table: 'mbr',
          ebrLba,
        },
      );
    }
    visited.add(ebrLba);
    const ebr = await readSectors(ebrLba, 1);
    if (!hasBootSignature(ebr)) {
      throw new CairnError(
        'ERR_FORMAT_INVALID',
        `MBR extended partition chain is invalid: EBR at sector ${ebrLba} lacks the 55 AA signature`,
        {
          table: 'mbr',
          ebrLba,
        },
      );
    }
    const [logical, link] = parseMbrSlots(ebr);
    if (logical !== undefined && isUsedSlot(logical)) {
      const startLba = ebrLba + logical.startLba;
      if (startLba + logical.sectorCount > Math.min(extendedEnd, diskSectors)) {
        throw new CairnError('ERR_FORMAT_INVALID', `MBR logical partition ${number} ends past its extended partition`, {
          table: 'mbr',
          partition: number,
        });
      }
      partitions.push({
        number,
        offset: startLba * sectorSize,
        length: logical.sectorCount * sectorSize,
        type: typeString(logical.type),
        bootable: logical.status === MBR.STATUS_ACTIVE,
        logical: true,
      });
      number++;
    }
    if (link === undefined || !isUsedSlot(link)) break;
    ebrLba = extended.startLba + link.startLba;
  }
  return partitions;
}
