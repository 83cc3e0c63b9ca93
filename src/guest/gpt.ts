import { crc32 } from 'node:zlib';
import { CairnError } from '../core/errors.js';
import { GPT, GPT_TYPE_NAMES, GPT_UNUSED_TYPE_GUID } from './partition-layout.js';
import type { PartitionEntry } from './partition-types.js';
import { guidFromBytesMixedEndian, u64leSafe } from './le-fields.js';

export interface GptHeader {
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc32: number;
}

function invalid(message: string, context: Record<string, unknown> = {}): CairnError {
  return new CairnError('ERR_FORMAT_INVALID', message, { table: 'gpt', ...context });
}

export function hasGptSignature(sector: Buffer): boolean {
  return sector.length >= GPT.MIN_HEADER_SIZE && sector.toString('latin1', 0, 8) === GPT.SIGNATURE;
}

/**
 * Parses and checks a GPT header read from `expectedLba` (UEFI spec 5.3.2): signature, size, header
 * CRC-32 (over headerSize bytes with the CRC field zeroed), its own LBA, and sane entry geometry.
 */
export function parseGptHeader(sector: Buffer, expectedLba: number, diskSectors: number): GptHeader {
  if (!hasGptSignature(sector)) throw invalid(`GPT header at LBA ${expectedLba} has no 'EFI PART' signature`);
  const headerSize = sector.readUInt32LE(GPT.HEADER_SIZE);
  if (headerSize < GPT.MIN_HEADER_SIZE || headerSize > sector.length) {
    throw invalid(`GPT header at LBA ${expectedLba} has an invalid size ${headerSize}`);
  }
  const stored = sector.readUInt32LE(GPT.HEADER_CRC32);
  const copy = Buffer.from(sector.subarray(0, headerSize));
  copy.writeUInt32LE(0, GPT.HEADER_CRC32);
  const computed = crc32(copy);
  if (computed !== stored) {
    throw invalid(
      `GPT header at LBA ${expectedLba} fails its CRC-32 check (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)})`,
      { lba: expectedLba },
    );
  }
  const header: GptHeader = {
    myLba: u64leSafe(sector, GPT.HEADER_MY_LBA, 'GPT my LBA'),
    alternateLba: u64leSafe(sector, GPT.HEADER_ALTERNATE_LBA, 'GPT alternate LBA'),
    firstUsableLba: u64leSafe(sector, GPT.HEADER_FIRST_USABLE_LBA, 'GPT first usable LBA'),
    lastUsableLba: u64leSafe(sector, GPT.HEADER_LAST_USABLE_LBA, 'GPT last usable LBA'),
    diskGuid: guidFromBytesMixedEndian(sector, GPT.HEADER_DISK_GUID),
    entriesLba: u64leSafe(sector, GPT.HEADER_ENTRIES_LBA, 'GPT entries LBA'),
    entryCount: sector.readUInt32LE(GPT.HEADER_ENTRY_COUNT),
    entrySize: sector.readUInt32LE(GPT.HEADER_ENTRY_SIZE),
    entriesCrc32: sector.readUInt32LE(GPT.HEADER_ENTRIES_CRC32),
  };
  if (header.myLba !== expectedLba) {
    throw invalid(`GPT header at LBA ${expectedLba} claims to be at LBA ${header.myLba}`);
  }
  // The spec requires 128 × 2^n; anything else is damage or a hostile table.
  if (header.entrySize < GPT.MIN_ENTRY_SIZE || (header.entrySize & (header.entrySize - 1)) !== 0) {
    throw invalid(`GPT header at LBA ${expectedLba} has an invalid entry size ${header.entrySize}`);
  }
  if (header.entryCount > GPT.MAX_ENTRY_COUNT || header.entryCount * header.entrySize > GPT.MAX_ENTRIES_BYTES) {
    throw invalid(`GPT header at LBA ${expectedLba} declares too many entries (${header.entryCount} × ${header.entrySize} bytes)`);
  }
  if (header.firstUsableLba > header.lastUsableLba || header.lastUsableLba >= diskSectors || header.entriesLba >= diskSectors) {
    throw invalid(`GPT header at LBA ${expectedLba} describes a disk larger than this one (${diskSectors} sectors)`);
  }
  return header;
}

export function gptEntriesLength(header: GptHeader): number {
  return header.entryCount * header.entrySize;
}

/** Checks the entries array CRC-32 and decodes the used entries (UEFI spec 5.3.3). Pure. */
export function parseGptEntries(bytes: Buffer, header: GptHeader, sectorSize: number): PartitionEntry[] {
  const length = gptEntriesLength(header);
  if (bytes.length < length) throw invalid(`GPT entries array is truncated (${bytes.length} of ${length} bytes)`);
  const computed = crc32(bytes.subarray(0, length));
  if (computed !== header.entriesCrc32) {
    throw invalid(
      `GPT partition entries at LBA ${header.entriesLba} fail their CRC-32 check (stored 0x${header.entriesCrc32.toString(16)}, computed 0x${computed.toString(16)})`,
      { lba: header.entriesLba },
    );
  }
  const partitions: PartitionEntry[] = [];
  for (let index = 0; index < header.entryCount; index++) {
    const at = index * header.entrySize;
    const type = guidFromBytesMixedEndian(bytes, at + GPT.ENTRY_TYPE_GUID);
    if (type === GPT_UNUSED_TYPE_GUID) continue;
    const number = index + 1;
    const firstLba = u64leSafe(bytes, at + GPT.ENTRY_FIRST_LBA, `GPT partition ${number} first LBA`);
    const lastLba = u64leSafe(bytes, at + GPT.ENTRY_LAST_LBA, `GPT partition ${number} last LBA`);
    if (firstLba > lastLba || firstLba < header.firstUsableLba || lastLba > header.lastUsableLba) {
      throw invalid(
        `GPT partition ${number} (LBA ${firstLba}–${lastLba}) lies outside the usable area (LBA ${header.firstUsableLba}–${header.lastUsableLba})`,
        { partition: number },
      );
    }
    const name = bytes.toString('utf16le', at + GPT.ENTRY_NAME, at + GPT.ENTRY_NAME + GPT.ENTRY_NAME_SIZE).replace(/\0.*$/s, '');
    const entry: PartitionEntry = {
      number,
      offset: firstLba * sectorSize,
      length: (lastLba - firstLba + 1) * sectorSize,
      type,
      uuid: guidFromBytesMixedEndian(bytes, at + GPT.ENTRY_UNIQUE_GUID),
    };
    const typeName = GPT_TYPE_NAMES[type];
    if (typeName !== undefined) entry.typeName = typeName;
    if (name !== '') entry.name = name;
    partitions.push(entry);
  }
  return partitions;
}
