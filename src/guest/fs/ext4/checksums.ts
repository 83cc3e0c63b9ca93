// checksums.rst "Checksums": what each metadata checksum covers. Every crc32c here is the kernel's
// ext4_chksum, the raw register chained from a seed (no inversion), so the functions take seeds.
import { crc32cUpdate } from '../../../util/crc32c.js';
import { DIRENT, DX, EXTENT, GROUP_DESC, INODE, SUPERBLOCK } from './layout.js';

const le32 = (value: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(value >>> 0);
  return b;
};
const ZERO2 = Buffer.alloc(2);
const ZERO4 = Buffer.alloc(4);

/** CRC-16/ARC (reflected 0x8005), the kernel's lib/crc16 used by gdt_csum descriptors. */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    table[n] = c;
  }
  return table;
})();

export function crc16(crc: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = crc & 0xffff;
  for (let i = start; i < end; i++) c = (c >>> 8) ^ CRC16_TABLE[(c ^ bytes[i]!) & 0xff]!;
  return c;
}

/** Group descriptor checksum (group_descr.rst bg_checksum), metadata_csum or gdt_csum flavour. */
export function groupDescChecksum(
  desc: Buffer,
  group: number,
  options: { metadataCsum: boolean; csumSeed: number; uuid: Buffer; is64bit: boolean },
): number {
  const at = GROUP_DESC.bg_checksum;
  if (options.metadataCsum) {
    let c = crc32cUpdate(options.csumSeed, le32(group));
    c = crc32cUpdate(c, desc, 0, at);
    c = crc32cUpdate(c, ZERO2);
    if (at + 2 < desc.length) c = crc32cUpdate(c, desc, at + 2);
    return c & 0xffff;
  }
  let c = crc16(0xffff, options.uuid);
  c = crc16(c, le32(group));
  c = crc16(c, desc, 0, at);
  if (options.is64bit && at + 2 < desc.length) c = crc16(c, desc, at + 2);
  return c;
}

/** The per-inode seed of inode, extent and directory checksums: csum seed + inode number + generation. */
export function inodeSeed(csumSeed: number, ino: number, generation: number): number {
  return crc32cUpdate(crc32cUpdate(csumSeed, le32(ino)), le32(generation));
}

/**
 * Checks an inode's checksum (inodes.rst i_checksum_lo/hi): the whole on-disk inode with both
 * checksum fields counted as zeros; only the low 16 bits when i_extra_isize does not reach _hi.
 */
export function inodeChecksumMatches(raw: Buffer, seed: number, extraIsize: number): boolean {
  const lo = INODE.l_i_checksum_lo;
  let c = crc32cUpdate(seed, raw, 0, lo);
  c = crc32cUpdate(c, ZERO2);
  c = crc32cUpdate(c, raw, lo + 2, SUPERBLOCK.GOOD_OLD_INODE_SIZE);
  let stored = raw.readUInt16LE(lo);
  let mask = 0xffff;
  if (raw.length > SUPERBLOCK.GOOD_OLD_INODE_SIZE) {
    const hi = INODE.i_checksum_hi;
    c = crc32cUpdate(c, raw, SUPERBLOCK.GOOD_OLD_INODE_SIZE, hi);
    let rest = hi;
    if (SUPERBLOCK.GOOD_OLD_INODE_SIZE + extraIsize >= hi + 2) {
      c = crc32cUpdate(c, ZERO2);
      rest += 2;
      stored |= raw.readUInt16LE(hi) << 16;
      mask = 0xffffffff;
    }
    c = crc32cUpdate(c, raw, rest);
  }
  return (c & mask) >>> 0 === stored >>> 0;
}

/** Extent block tail (ifork.rst ext4_extent_tail): crc32c of the block up to eh_max entries. */
export function extentBlockChecksumMatches(block: Buffer, seed: number, maxEntries: number): boolean {
  const tail = EXTENT.HEADER_SIZE + EXTENT.ENTRY_SIZE * maxEntries;
  return crc32cUpdate(seed, block, 0, tail) === block.readUInt32LE(tail);
}

/** True when the block ends with the 12-byte fake dirent that holds a checksum (ext4_dir_entry_tail). */
export function hasDirentTail(block: Buffer): boolean {
  const t = block.length - DIRENT.TAIL_SIZE;
  return (
    block.readUInt32LE(t) === 0 &&
    block.readUInt16LE(t + DIRENT.rec_len) === DIRENT.TAIL_SIZE &&
    block[t + DIRENT.name_len] === 0 &&
    block[t + DIRENT.file_type] === DIRENT.TAIL_FILE_TYPE
  );
}

/** Leaf directory block checksum (directory.rst "Checksum"): crc32c of everything before the tail. */
export function direntBlockChecksumMatches(block: Buffer, seed: number): boolean {
  const t = block.length - DIRENT.TAIL_SIZE;
  return crc32cUpdate(seed, block, 0, t) === block.readUInt32LE(t + DIRENT.tail_checksum);
}

/**
 * Htree node checksum (directory.rst dx_tail): crc32c over the block up to the last used dx_entry,
 * then dt_reserved and a zero checksum. The tail sits after `limit` entries.
 */
export function dxBlockChecksumMatches(block: Buffer, seed: number, countOffset: number, count: number, limit: number): boolean {
  const tail = countOffset + limit * DX.ENTRY_SIZE;
  let c = crc32cUpdate(seed, block, 0, countOffset + count * DX.ENTRY_SIZE);
  c = crc32cUpdate(c, block, tail, tail + DX.tail_checksum);
  c = crc32cUpdate(c, ZERO4);
  return c === block.readUInt32LE(tail + DX.tail_checksum);
}
