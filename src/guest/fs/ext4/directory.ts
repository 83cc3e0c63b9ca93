import { direntBlockChecksumMatches, dxBlockChecksumMatches, hasDirentTail } from './checksums.js';
import { formatInvalid } from './errors.js';
import type { Ext4Inode } from './inode.js';
import { DIRENT, DX, FEATURE_INCOMPAT } from './layout.js';
import type { Superblock } from './superblock.js';

/** A live directory entry as stored: name bytes (a view of the block), inode number, dirent type byte. */
export interface DirEntryRecord {
  readonly name: Buffer;
  readonly ino: number;
  readonly fileType: number;
}

/** One checked directory block: its bytes (htree nodes are read from them) and its live entries. */
export interface DirBlock {
  readonly bytes: Buffer;
  readonly entries: readonly DirEntryRecord[];
}

/** Bytes a decoded block holds, counting the name index `findInBlock` may add to it. */
export function dirBlockFootprint(block: DirBlock): number {
  return block.bytes.length + 64 + block.entries.length * 112;
}

const nameIndexes = new WeakMap<DirBlock, Map<string, DirEntryRecord>>();
/** Below this many entries a scan is cheaper than building an index. */
const INDEX_MIN_ENTRIES = 8;

/**
 * The entry called `name` in one decoded block. A block's names are indexed the first time it is
 * searched (latin1 maps bytes to characters one to one, so the key is exact): a lookup of every name
 * of a listed directory, which is what FUSE does, then costs one map probe per name, not a scan.
 */
export function findInBlock(block: DirBlock, name: Buffer): DirEntryRecord | undefined {
  if (block.entries.length < INDEX_MIN_ENTRIES) return block.entries.find((e) => e.name.equals(name));
  let index = nameIndexes.get(block);
  if (!index) {
    index = new Map();
    // The first of duplicate names wins, as a scan would find it.
    for (const entry of block.entries) {
      const key = entry.name.toString('latin1');
      if (!index.has(key)) index.set(key, entry);
    }
    nameIndexes.set(block, index);
  }
  return index.get(name.toString('latin1'));
}

/** ext4_rec_len_from_disk: with 64 KiB blocks, 65535 and 0 stand for 65536 and the low bits carry bits 16-17. */
export function recLenFromDisk(raw: number, blockSize: number): number {
  if (blockSize < 65536) return raw;
  if (raw === 65535 || raw === 0) return 65536;
  return (raw & 65532) | ((raw & 3) << 16);
}

const isDotOrDotDot = (name: Buffer): boolean => name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e));

/**
 * Parses the dirent chain in bytes[start, end) (directory.rst "Linear (Classic) Directories"). The
 * chain must end exactly at `end`; every record is checked as the kernel's ext4_check_dir_entry
 * does (length, alignment, room for the name, inode number in range). Returns live entries other
 * than '.' and '..'.
 */
export function parseDirents(
  bytes: Buffer,
  start: number,
  end: number,
  sb: Superblock,
  fail: (problem: string) => Error,
): DirEntryRecord[] {
  const entries: DirEntryRecord[] = [];
  const filetype = (sb.incompat & FEATURE_INCOMPAT.filetype) !== 0;
  let at = start;
  while (at < end) {
    if (at + DIRENT.HEADER_SIZE > end) throw fail(`entry at byte ${at} is truncated`);
    const ino = bytes.readUInt32LE(at + DIRENT.inode);
    const recLen = recLenFromDisk(bytes.readUInt16LE(at + DIRENT.rec_len), sb.blockSize);
    const nameLength = bytes[at + DIRENT.name_len]!;
    if (recLen < DIRENT.HEADER_SIZE + 4 || recLen % 4 !== 0 || recLen < ((DIRENT.HEADER_SIZE + nameLength + 3) & ~3) || at + recLen > end) {
      throw fail(`entry at byte ${at} has an invalid record length ${recLen}`);
    }
    if (ino !== 0) {
      if (ino > sb.inodesCount) throw fail(`entry at byte ${at} names inode ${ino}, beyond ${sb.inodesCount}`);
      if (nameLength === 0) throw fail(`entry at byte ${at} has an empty name`);
      const name = bytes.subarray(at + DIRENT.name, at + DIRENT.name + nameLength);
      if (!isDotOrDotDot(name)) entries.push({ name, ino, fileType: filetype ? bytes[at + DIRENT.file_type]! : 0 });
    }
    at += recLen;
  }
  return entries;
}

/**
 * Checks one directory block of `dir` and parses it. With metadata_csum a leaf block must end in
 * the checksum tail and match it; an htree root or interior node (the kernel tells them apart the
 * same way: block 0, or a first record spanning the block) must match its dx_tail.
 */
export function decodeDirBlock(bytes: Buffer, logical: number, dir: Ext4Inode, htree: boolean, sb: Superblock, volume: string): DirBlock {
  const where = `inode ${dir.ino} directory block ${logical}`;
  const fail = (problem: string): Error => formatInvalid(volume, where, problem, { ino: dir.ino, logical });
  let end = bytes.length;
  if (sb.metadataCsum) {
    const isDx = htree && (logical === 0 || recLenFromDisk(bytes.readUInt16LE(DIRENT.rec_len), sb.blockSize) === sb.blockSize);
    if (isDx) {
      checkDxChecksum(bytes, logical, dir, fail);
    } else {
      if (!hasDirentTail(bytes)) throw fail('has no checksum tail');
      if (!direntBlockChecksumMatches(bytes, dir.csumSeed)) throw fail('checksum mismatch');
      end -= DIRENT.TAIL_SIZE;
    }
  }
  return { bytes, entries: parseDirents(bytes, 0, end, sb, fail) };
}

/** Where an htree block keeps its dx_countlimit: after dx_root_info in block 0, after the fake dirent elsewhere. */
export function dxCountOffset(bytes: Buffer, logical: number): number | undefined {
  if (logical !== 0) return bytes.readUInt32LE(DIRENT.inode) === 0 ? DX.NODE_COUNT_OFFSET : undefined;
  const info = DX.ROOT_INFO;
  if (bytes.readUInt32LE(info + DX.root_reserved_zero) !== 0 || bytes[info + DX.root_info_length] !== DX.ROOT_INFO_LENGTH) return undefined;
  return DX.ROOT_COUNT_OFFSET;
}

function checkDxChecksum(bytes: Buffer, logical: number, dir: Ext4Inode, fail: (problem: string) => Error): void {
  const countOffset = dxCountOffset(bytes, logical);
  if (countOffset === undefined) throw fail('is not a valid htree block (no dx_countlimit)');
  const limit = bytes.readUInt16LE(countOffset + DX.limit);
  const count = bytes.readUInt16LE(countOffset + DX.count);
  if (countOffset + limit * DX.ENTRY_SIZE > bytes.length - DX.TAIL_SIZE || count > limit) {
    throw fail(`htree counts ${count}/${limit} leave no room for the checksum`);
  }
  if (!dxBlockChecksumMatches(bytes, dir.csumSeed, countOffset, count, limit)) throw fail('htree checksum mismatch');
}
