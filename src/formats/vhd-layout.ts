import { CairnError } from '../core/errors.js';
import { readU64be } from '../util/bytes.js';

/**
 * VHD (Microsoft "Virtual Hard Disk Image Format Specification" 1.0, qemu's "vpc"): fixed, dynamic and
 * differencing disks. Everything is big-endian; checksums are the one's complement of the byte sum
 * with the checksum field taken as zero. Pure parsing, no I/O.
 *
 * Hard disk footer (512 bytes; at the end of every disk, copied at 0 for dynamic and differencing):
 *    0  8  cookie "conectix"        40  8  original size
 *    8  4  features                 48  8  current size (virtual bytes)
 *   12  4  format version 1.0       56  4  geometry: u16 cylinders, u8 heads, u8 sectors/track
 *   16  8  data offset (dyn header; 60  4  disk type: 2 fixed, 3 dynamic, 4 differencing
 *          all ones for fixed)      64  4  checksum
 *   24  4  timestamp (since 2000)   68 16  unique id
 *   28  4  creator application     84  1  saved state
 *   32  4  creator version, 36 4 creator host OS
 *
 * Dynamic disk header (1024 bytes, at the footer's data offset):
 *    0  8  cookie "cxsparse"         36  4  checksum
 *    8  8  data offset (unused)      40 16  parent unique id
 *   16  8  table offset (the BAT)    56  4  parent time stamp
 *   24  4  header version 1.0        64 512 parent unicode name (UTF-16 big-endian)
 *   28  4  max table entries        576 8 x 24 parent locator entries: u32 platform code,
 *   32  4  block size                   u32 data space, u32 data length, u32 reserved, u64 data offset
 */
export const VHD = {
  SECTOR: 512,
  FOOTER_SIZE: 512,
  HEADER_SIZE: 1024,
  FOOTER_COOKIE: Buffer.from('conectix', 'latin1'),
  HEADER_COOKIE: Buffer.from('cxsparse', 'latin1'),
  /** BAT entry of a block that is not stored in this file. */
  UNUSED_BLOCK: 0xffffffff,
  LOCATOR_ENTRIES: 8,
  LOCATOR_SIZE: 24,
  /** Longest locator data read (a path); real ones are a few hundred bytes. */
  MAX_LOCATOR_LENGTH: 64 * 1024,
  /** Block sizes accepted: sector-sized to 256 MiB (the spec's default is 2 MiB). */
  MIN_BLOCK_SIZE: 512,
  MAX_BLOCK_SIZE: 256 * 1024 * 1024,
  /** Largest BAT read (qemu-img writes at most ~4 MiB for a 2 TiB disk). */
  MAX_BAT_ENTRIES: 16 * 1024 * 1024,
  /** CHS geometry of the largest disk the spec's algorithm describes (65535 x 16 x 255). */
  MAX_CHS_SECTORS: 65535 * 16 * 255,
} as const;

export const VHD_FOOTER = {
  cookie: 0,
  features: 8,
  formatVersion: 12,
  dataOffset: 16,
  timestamp: 24,
  creatorApplication: 28,
  creatorVersion: 32,
  creatorHostOs: 36,
  originalSize: 40,
  currentSize: 48,
  cylinders: 56,
  heads: 58,
  sectorsPerTrack: 59,
  diskType: 60,
  checksum: 64,
  uniqueId: 68,
  savedState: 84,
} as const;

export const VHD_HEADER = {
  cookie: 0,
  dataOffset: 8,
  tableOffset: 16,
  headerVersion: 24,
  maxTableEntries: 28,
  blockSize: 32,
  checksum: 36,
  parentUniqueId: 40,
  parentTimestamp: 56,
  parentUnicodeName: 64,
  parentUnicodeNameLength: 512,
  parentLocators: 576,
} as const;

export const VHD_DISK_TYPE = { fixed: 2, dynamic: 3, differencing: 4 } as const;
export type VhdDiskType = keyof typeof VHD_DISK_TYPE;

/** Parent locator platform codes ("Parent Locator Entries"). */
export const VHD_PLATFORM = {
  W2ku: 0x57326b75,
  W2ru: 0x57327275,
  Wi2r: 0x57693272,
  Wi2k: 0x5769326b,
  MacX: 0x4d616358,
  Mac: 0x4d616320,
} as const;

function invalid(message: string, context: Record<string, unknown> = {}): CairnError {
  return new CairnError('ERR_FORMAT_INVALID', `VHD: ${message}`, context);
}

/** The spec's checksum: one's complement of the sum of every byte, the checksum field counted as zero. */
export function vhdChecksum(data: Buffer, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < data.length; i++) if (i < checksumOffset || i >= checksumOffset + 4) sum += data[i]!;
  return ~sum >>> 0;
}

export interface VhdFooter {
  diskType: VhdDiskType;
  /** Virtual size in bytes (see vhdDiskSize for the creators sized by their geometry). */
  size: number;
  currentSize: number;
  chsSectors: number;
  dataOffset: number | undefined;
  creatorApplication: string;
  uniqueId: string;
}

export function isVhdFooter(data: Buffer): boolean {
  return data.length >= VHD.FOOTER_SIZE && data.subarray(0, 8).equals(VHD.FOOTER_COOKIE);
}

/** Parses and checks a footer (checksum, disk type, offsets). */
export function parseVhdFooter(data: Buffer): VhdFooter {
  if (!isVhdFooter(data)) throw invalid('no "conectix" footer');
  const footer = data.subarray(0, VHD.FOOTER_SIZE);
  const stored = footer.readUInt32BE(VHD_FOOTER.checksum);
  if (stored !== vhdChecksum(footer, VHD_FOOTER.checksum))
    throw invalid(`footer checksum 0x${stored.toString(16)} does not match its bytes`);
  const typeCode = footer.readUInt32BE(VHD_FOOTER.diskType);
  const diskType = (Object.keys(VHD_DISK_TYPE) as VhdDiskType[]).find((key) => VHD_DISK_TYPE[key] === typeCode);
  if (diskType === undefined) throw new CairnError('ERR_UNSUPPORTED', `VHD: disk type ${typeCode} is not fixed, dynamic or differencing`);
  const currentSize = readU64be(footer, VHD_FOOTER.currentSize, 'VHD current size');
  const rawOffset = footer.readBigUInt64BE(VHD_FOOTER.dataOffset);
  const dataOffset = rawOffset === 0xffffffffffffffffn ? undefined : readU64be(footer, VHD_FOOTER.dataOffset, 'VHD data offset');
  if (diskType !== 'fixed' && dataOffset === undefined) throw invalid(`a ${diskType} disk has no dynamic header offset`);
  const chsSectors = footer.readUInt16BE(VHD_FOOTER.cylinders) * footer[VHD_FOOTER.heads]! * footer[VHD_FOOTER.sectorsPerTrack]!;
  const creatorApplication = footer.subarray(VHD_FOOTER.creatorApplication, VHD_FOOTER.creatorApplication + 4).toString('latin1');
  return {
    diskType,
    size: vhdDiskSize(creatorApplication, currentSize, chsSectors),
    currentSize,
    chsSectors,
    dataOffset,
    creatorApplication,
    uniqueId: footer.subarray(VHD_FOOTER.uniqueId, VHD_FOOTER.uniqueId + 16).toString('hex'),
  };
}

/**
 * Virtual PC and qemu's own "qemu" creator size a disk by its CHS geometry (the current size field can
 * be larger); every other creator (Hyper-V, disk2vhd, XenServer, Xen Orchestra…) by the current size.
 * This is qemu's rule (block/vpc.c, vpc_ignore_current_size), also for a geometry at its maximum.
 */
export function vhdDiskSize(creatorApplication: string, currentSize: number, chsSectors: number): number {
  const byGeometry = (creatorApplication === 'vpc ' || creatorApplication === 'qemu') && chsSectors !== VHD.MAX_CHS_SECTORS;
  return byGeometry ? chsSectors * VHD.SECTOR : currentSize;
}

export interface VhdLocator {
  platform: string;
  platformCode: number;
  dataLength: number;
  dataOffset: number;
}

export interface VhdHeader {
  tableOffset: number;
  maxTableEntries: number;
  blockSize: number;
  /** Bytes of the sector bitmap in front of each block (a whole number of sectors). */
  bitmapSize: number;
  parentUniqueId: string;
  parentName: string;
  locators: VhdLocator[];
}

/** Parses and checks a dynamic disk header against the disk size and the file size. */
export function parseVhdHeader(data: Buffer, diskSize: number, fileSize: number): VhdHeader {
  if (data.length < VHD.HEADER_SIZE || !data.subarray(0, 8).equals(VHD.HEADER_COOKIE)) throw invalid('no "cxsparse" dynamic disk header');
  const header = data.subarray(0, VHD.HEADER_SIZE);
  const stored = header.readUInt32BE(VHD_HEADER.checksum);
  if (stored !== vhdChecksum(header, VHD_HEADER.checksum))
    throw invalid(`dynamic header checksum 0x${stored.toString(16)} does not match its bytes`);
  const tableOffset = readU64be(header, VHD_HEADER.tableOffset, 'VHD table offset');
  const maxTableEntries = header.readUInt32BE(VHD_HEADER.maxTableEntries);
  const blockSize = header.readUInt32BE(VHD_HEADER.blockSize);
  if (blockSize < VHD.MIN_BLOCK_SIZE || blockSize > VHD.MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw invalid(`block size ${blockSize} is not a power of two between 512 bytes and 256 MiB`);
  }
  const needed = Math.ceil(diskSize / blockSize);
  if (maxTableEntries < needed || maxTableEntries > VHD.MAX_BAT_ENTRIES) {
    throw invalid(`block allocation table of ${maxTableEntries} entries does not fit a ${diskSize}-byte disk of ${blockSize}-byte blocks`);
  }
  if (tableOffset % VHD.SECTOR !== 0 || tableOffset + needed * 4 > fileSize) {
    throw invalid(`block allocation table at ${tableOffset} is unaligned or lies outside the ${fileSize}-byte file`);
  }
  const nameBytes = header.subarray(VHD_HEADER.parentUnicodeName, VHD_HEADER.parentUnicodeName + VHD_HEADER.parentUnicodeNameLength);
  const locators: VhdLocator[] = [];
  for (let n = 0; n < VHD.LOCATOR_ENTRIES; n++) {
    const at = VHD_HEADER.parentLocators + n * VHD.LOCATOR_SIZE;
    const platformCode = header.readUInt32BE(at);
    const dataLength = header.readUInt32BE(at + 8);
    if (platformCode === 0 || dataLength === 0) continue;
    const dataOffset = readU64be(header, at + 16, 'VHD parent locator offset');
    if (dataLength > VHD.MAX_LOCATOR_LENGTH || dataOffset + dataLength > fileSize) {
      throw invalid(`parent locator ${n} (${dataLength} bytes at ${dataOffset}) lies outside the file`);
    }
    const platform = (Object.keys(VHD_PLATFORM) as (keyof typeof VHD_PLATFORM)[]).find((key) => VHD_PLATFORM[key] === platformCode);
    locators.push({ platform: platform ?? `0x${platformCode.toString(16)}`, platformCode, dataLength, dataOffset });
  }
  return {
    tableOffset,
    maxTableEntries,
    blockSize,
    bitmapSize: Math.ceil(blockSize / VHD.SECTOR / 8 / VHD.SECTOR) * VHD.SECTOR,
    parentUniqueId: header.subarray(VHD_HEADER.parentUniqueId, VHD_HEADER.parentUniqueId + 16).toString('hex'),
    parentName: decodeUtf16be(nameBytes),
    locators,
  };
}

function decodeUtf16be(bytes: Buffer): string {
  const swapped = Buffer.from(bytes);
  swapped.swap16();
  const text = swapped.toString('utf16le');
  const nul = text.indexOf('\0');
  return nul < 0 ? text : text.slice(0, nul);
}

/** The path a parent locator holds: UTF-16LE for the Windows codes, a file URL for MacX. */
export function decodeLocator(platformCode: number, data: Buffer): string {
  if (platformCode === VHD_PLATFORM.W2ku || platformCode === VHD_PLATFORM.W2ru) {
    const text = data.subarray(0, data.length - (data.length % 2)).toString('utf16le');
    const nul = text.indexOf('\0');
    return nul < 0 ? text : text.slice(0, nul);
  }
  const text = data.toString('utf8');
  const nul = text.indexOf('\0');
  return nul < 0 ? text : text.slice(0, nul);
}

/** Whether sector `sector` of a block is marked in its bitmap (MSB first: byte s>>3, mask 0x80 >> (s & 7)). */
export function sectorMarked(bitmap: Buffer, sector: number): boolean {
  return (bitmap[sector >> 3]! & (0x80 >> (sector & 7))) !== 0;
}
