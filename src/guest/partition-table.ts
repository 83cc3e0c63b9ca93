import type { BlockReader } from '../core/block-reader.js';
import { CairnError, isCairnError } from '../core/errors.js';
import { gptEntriesLength, hasGptSignature, parseGptEntries, parseGptHeader, type GptHeader } from './gpt.js';
import {
  hasBootSignature,
  invalidSlotReason,
  isProtectiveMbr,
  isUsedSlot,
  looksLikeFilesystemBootSector,
  parseMbrSlots,
  readMbrPartitions,
  type SectorSource,
} from './mbr.js';
import { GPT, MBR, SECTOR_SIZES } from './partition-layout.js';
import type { PartitionEntry, PartitionTable } from './partition-types.js';

/** Enough of the disk's head to hold LBA 0 and LBA 1 at the largest probed sector size. */
const HEAD_LENGTH = 2 * Math.max(...SECTOR_SIZES);

function sectorSource(reader: BlockReader, sectorSize: number): SectorSource {
  return async (lba, count) => {
    const offset = lba * sectorSize;
    const length = count * sectorSize;
    if (offset + length > reader.size) {
      throw new CairnError('ERR_FORMAT_INVALID', `partition table refers to sector ${lba}, past the end of the disk`, {
        lba,
        diskSize: reader.size,
      });
    }
    return reader.read(offset, length);
  };
}

function reasonOf(err: unknown): string {
  if (isCairnError(err, 'ERR_FORMAT_INVALID')) return err.message;
  throw err;
}

async function readGptAt(readSectors: SectorSource, lba: number, sectorSize: number, diskSectors: number) {
  const header: GptHeader = parseGptHeader(await readSectors(lba, 1), lba, diskSectors);
  const entrySectors = Math.ceil(gptEntriesLength(header) / sectorSize);
  if (header.entriesLba + entrySectors > diskSectors) {
    throw new CairnError('ERR_FORMAT_INVALID', `GPT partition entries at LBA ${header.entriesLba} run past the end of the disk`, {
      table: 'gpt',
    });
  }
  const entries = entrySectors === 0 ? Buffer.alloc(0) : await readSectors(header.entriesLba, entrySectors);
  return { header, partitions: parseGptEntries(entries, header, sectorSize) };
}

/**
 * Reads a GPT, trusting the primary header and entries only when both CRC-32 checks pass and falling
 * back to the backup at the end of the disk otherwise (with a warning). Both damaged is an error.
 */
async function readGpt(reader: BlockReader, sectorSize: number, primaryPresent: boolean): Promise<PartitionTable> {
  const readSectors = sectorSource(reader, sectorSize);
  const diskSectors = Math.floor(reader.size / sectorSize);
  const problems: string[] = [];
  const backupLba = diskSectors - 1;
  if (primaryPresent) {
    try {
      const { header, partitions } = await readGptAt(readSectors, GPT.HEADER_LBA, sectorSize, diskSectors);
      return { kind: 'gpt', sectorSize, diskId: header.diskGuid, partitions, warnings: [] };
    } catch (err) {
      problems.push(`primary: ${reasonOf(err)}`);
    }
  } else {
    problems.push(`primary: no GPT header at LBA ${GPT.HEADER_LBA}`);
  }
  try {
    const { header, partitions } = await readGptAt(readSectors, backupLba, sectorSize, diskSectors);
    const warning = `primary GPT is damaged (${problems[0]}); using the backup header at LBA ${backupLba}`;
    return { kind: 'gpt', sectorSize, diskId: header.diskGuid, partitions, warnings: [warning] };
  } catch (err) {
    problems.push(`backup: ${reasonOf(err)}`);
  }
  throw new CairnError('ERR_FORMAT_INVALID', `GPT partition table is damaged beyond repair: ${problems.join('; ')}`, {
    table: 'gpt',
  });
}

async function hasBackupGptSignature(reader: BlockReader, sectorSize: number): Promise<boolean> {
  const lastLba = Math.floor(reader.size / sectorSize) - 1;
  if (lastLba <= GPT.HEADER_LBA) return false;
  return hasGptSignature(await reader.read(lastLba * sectorSize, sectorSize));
}

/**
 * Finds and reads the partition table of a disk: GPT (protective MBR, header and entries CRC-32
 * checks, backup header fallback), else DOS/MBR including logical partitions. A disk without a table
 * (e.g. a filesystem written to the whole disk) answers kind 'none'; a damaged table is
 * ERR_FORMAT_INVALID with a message naming what is wrong.
 */
export async function readPartitionTable(reader: BlockReader): Promise<PartitionTable> {
  const minSector = Math.min(...SECTOR_SIZES);
  if (reader.size < 2 * minSector) return { kind: 'none', sectorSize: minSector, partitions: [], warnings: [] };
  const head = await reader.read(0, Math.min(HEAD_LENGTH, reader.size));
  const mbrPresent = hasBootSignature(head);
  const slots = mbrPresent ? parseMbrSlots(head) : [];
  const protective = mbrPresent && isProtectiveMbr(slots);

  for (const sectorSize of SECTOR_SIZES) {
    if (head.length >= 2 * sectorSize && hasGptSignature(head.subarray(sectorSize, 2 * sectorSize))) {
      return readGpt(reader, sectorSize, true);
    }
  }
  // No primary header: a protective MBR, or no MBR at all, may still have an intact backup GPT.
  if (protective || !mbrPresent) {
    for (const sectorSize of SECTOR_SIZES) {
      if (await hasBackupGptSignature(reader, sectorSize)) return readGpt(reader, sectorSize, false);
    }
    if (protective) {
      throw new CairnError('ERR_FORMAT_INVALID', 'disk has a protective MBR but neither a primary nor a backup GPT header', {
        table: 'gpt',
      });
    }
    return { kind: 'none', sectorSize: minSector, partitions: [], warnings: [] };
  }

  const sectorSize = minSector;
  const diskSectors = Math.floor(reader.size / sectorSize);
  const plausible = invalidSlotReason(slots, diskSectors) === undefined && slots.some(isUsedSlot);
  if (!plausible && looksLikeFilesystemBootSector(head)) {
    return { kind: 'none', sectorSize, partitions: [], warnings: [] };
  }
  const partitions = await readMbrPartitions(head, sectorSource(reader, sectorSize), sectorSize, diskSectors);
  const diskId = head.readUInt32LE(MBR.DISK_SIGNATURE_OFFSET).toString(16).padStart(8, '0');
  return { kind: 'mbr', sectorSize, diskId, partitions, warnings: [] };
}

/** The partition numbered `number` (p1 = 1), or ERR_NOT_FOUND listing what exists. */
export function findPartition(table: PartitionTable, number: number): PartitionEntry {
  const found = table.partitions.find((p) => p.number === number);
  if (found === undefined) {
    const existing = table.partitions.map((p) => `p${p.number}`).join(', ') || 'none';
    throw new CairnError('ERR_NOT_FOUND', `partition p${number} not found (${table.kind} table; partitions: ${existing})`, {
      partition: number,
    });
  }
  return found;
}
