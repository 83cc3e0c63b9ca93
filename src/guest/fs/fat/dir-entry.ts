import { ATTR, DIR_ENTRY, DIR_NAME0, LDIR_ENTRY, LONG_NAME, type FatType } from './layout.js';

/** One 32-byte short directory entry, decoded ("FAT Directory Structure"). */
export interface ShortEntry {
  /** DIR_Name as stored (11 bytes). */
  readonly nameField: Buffer;
  readonly attr: number;
  readonly ntRes: number;
  readonly createTenMs: number;
  readonly createTime: number;
  readonly createDate: number;
  readonly accessDate: number;
  readonly writeTime: number;
  readonly writeDate: number;
  readonly firstCluster: number;
  readonly size: number;
}

export type EntryKind = 'end' | 'free' | 'long' | 'label' | 'invalid' | 'dot' | 'file' | 'dir';

const DOT = Buffer.from('.          ', 'latin1');
const DOTDOT = Buffer.from('..         ', 'latin1');

function u(entry: Buffer, f: { offset: number; size: number }): number {
  return entry.readUIntLE(f.offset, f.size);
}

/** What a 32-byte slot holds, from its first byte and attributes ("FAT Directory Structure"). */
export function entryKind(entry: Buffer): EntryKind {
  const first = entry[0];
  if (first === DIR_NAME0.END) return 'end';
  if (first === DIR_NAME0.FREE) return 'free';
  const attr = u(entry, DIR_ENTRY.DIR_Attr);
  if ((attr & ATTR.LONG_NAME_MASK) === ATTR.LONG_NAME) return 'long';
  const kind = attr & (ATTR.DIRECTORY | ATTR.VOLUME_ID);
  if (kind === ATTR.VOLUME_ID) return 'label';
  if (kind !== 0 && kind !== ATTR.DIRECTORY) return 'invalid';
  const name = entry.subarray(DIR_ENTRY.DIR_Name.offset, DIR_ENTRY.DIR_Name.offset + DIR_ENTRY.DIR_Name.size);
  if (name.equals(DOT) || name.equals(DOTDOT)) return 'dot';
  return kind === ATTR.DIRECTORY ? 'dir' : 'file';
}

export function isDotDot(entry: Buffer): boolean {
  return entry.subarray(0, DOTDOT.length).equals(DOTDOT);
}

export function isDot(entry: Buffer): boolean {
  return entry.subarray(0, DOT.length).equals(DOT);
}

/** The first cluster: DIR_FstClusHI is part of it on FAT32 only (FAT12/16 used it for OS/2 EAs). */
export function firstClusterOf(entry: Buffer, fatType: FatType): number {
  const low = u(entry, DIR_ENTRY.DIR_FstClusLO);
  return fatType === 32 ? u(entry, DIR_ENTRY.DIR_FstClusHI) * 0x10000 + low : low;
}

export function parseShortEntry(entry: Buffer, fatType: FatType): ShortEntry {
  return {
    nameField: Buffer.from(entry.subarray(DIR_ENTRY.DIR_Name.offset, DIR_ENTRY.DIR_Name.offset + DIR_ENTRY.DIR_Name.size)),
    attr: u(entry, DIR_ENTRY.DIR_Attr),
    ntRes: u(entry, DIR_ENTRY.DIR_NTRes),
    createTenMs: u(entry, DIR_ENTRY.DIR_CrtTimeTenth),
    createTime: u(entry, DIR_ENTRY.DIR_CrtTime),
    createDate: u(entry, DIR_ENTRY.DIR_CrtDate),
    accessDate: u(entry, DIR_ENTRY.DIR_LstAccDate),
    writeTime: u(entry, DIR_ENTRY.DIR_WrtTime),
    writeDate: u(entry, DIR_ENTRY.DIR_WrtDate),
    firstCluster: firstClusterOf(entry, fatType),
    size: u(entry, DIR_ENTRY.DIR_FileSize),
  };
}

/** LDIR_Ord and LDIR_Chksum of a long-name entry. */
export function longEntryHeader(entry: Buffer): { ord: number; checksum: number } {
  return { ord: u(entry, LDIR_ENTRY.LDIR_Ord), checksum: u(entry, LDIR_ENTRY.LDIR_Chksum) };
}

/** Copies the 13 UTF-16 units of a long-name entry into `units` at `at`. */
export function copyLongEntryUnits(entry: Buffer, units: Uint16Array, at: number): void {
  for (let i = 0; i < LONG_NAME.unitsPerEntry; i++) units[at + i] = entry.readUInt16LE(LONG_NAME.unitOffsets[i] ?? 0);
}
