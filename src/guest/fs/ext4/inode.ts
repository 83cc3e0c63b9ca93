import { copyBytes } from '../../../util/bytes.js';
import type { GuestNodeType } from '../../../core/guest-filesystem.js';
import { inodeChecksumMatches, inodeSeed } from './checksums.js';
import { formatInvalid } from './errors.js';
import { INODE, INODE_FLAGS, MODE, SUPERBLOCK } from './layout.js';
import { hasIncompat, hasRoCompat, type Superblock } from './superblock.js';

/** One decoded inode: the fields the reader uses, each validated, plus copies of i_block and the in-inode xattrs. */
export interface Ext4Inode {
  readonly ino: number;
  readonly type: GuestNodeType;
  /** The whole i_mode (type and permission bits). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  readonly size: number;
  readonly flags: number;
  readonly generation: number;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly crtimeNs?: bigint;
  /** i_block: the extent root, the block map, a fast symlink's target, inline data or a device number. */
  readonly iBlock: Buffer;
  /** 512-byte sectors charged to the inode (i_blocks in sectors, whatever huge_file says). */
  readonly sectors: number;
  readonly fileAcl: number;
  /** The in-inode extended attribute area (after i_extra_isize), or an empty buffer. */
  readonly xattrArea: Buffer;
  /** Seed of this inode's extent, directory and htree checksums (metadata_csum). */
  readonly csumSeed: number;
}

/** Shared by every inode without inline data (nothing reads it). */
const NO_XATTRS = Buffer.alloc(0);

const TYPES: ReadonlyMap<number, GuestNodeType> = new Map([
  [MODE.S_IFREG, 'file'],
  [MODE.S_IFDIR, 'dir'],
  [MODE.S_IFLNK, 'symlink'],
  [MODE.S_IFCHR, 'char'],
  [MODE.S_IFBLK, 'block'],
  [MODE.S_IFIFO, 'fifo'],
  [MODE.S_IFSOCK, 'socket'],
]);

/**
 * Decodes and checks the on-disk inode `raw` (s_inode_size bytes) of inode number `ino`. Refuses an
 * inode not in use, a checksum mismatch, an impossible i_extra_isize or a size beyond 2^53.
 */
export function decodeInode(raw: Buffer, ino: number, sb: Superblock, volume: string): Ext4Inode {
  const where = `inode ${ino}`;
  const u16 = (offset: number): number => raw.readUInt16LE(offset);
  const u32 = (offset: number): number => raw.readUInt32LE(offset);
  let extraIsize = 0;
  if (sb.inodeSize > SUPERBLOCK.GOOD_OLD_INODE_SIZE) {
    extraIsize = u16(INODE.i_extra_isize);
    if (extraIsize % 4 !== 0 || SUPERBLOCK.GOOD_OLD_INODE_SIZE + extraIsize > sb.inodeSize) {
      throw formatInvalid(volume, where, `i_extra_isize ${extraIsize} does not fit a ${sb.inodeSize}-byte inode`, { ino });
    }
  }
  const generation = u32(INODE.i_generation);
  const csumSeed = sb.metadataCsum ? inodeSeed(sb.csumSeed, ino, generation) : 0;
  if (sb.checkInodeCsum && !inodeChecksumMatches(raw, csumSeed, extraIsize)) {
    throw formatInvalid(volume, where, 'checksum mismatch', { ino });
  }
  const mode = u16(INODE.i_mode);
  const nlink = u16(INODE.i_links_count);
  // ext4_iget: a zero mode, or no links with a deletion time, is a freed inode a damaged entry points at.
  if (mode === 0 || (nlink === 0 && u32(INODE.i_dtime) !== 0)) throw formatInvalid(volume, where, 'is not in use', { ino, mode, nlink });
  const type = TYPES.get(mode & MODE.S_IFMT);
  if (!type) throw formatInvalid(volume, where, `unknown file type in mode 0o${mode.toString(8)}`, { ino, mode });

  const flags = u32(INODE.i_flags);
  // ext4_isize: the high word counts for regular files, and for directories with largedir.
  const sizeHigh = type === 'file' || (type === 'dir' && hasIncompat(sb, 'largedir')) ? u32(INODE.i_size_high) : 0;
  if (sizeHigh >= 2 ** 21) throw formatInvalid(volume, where, `size 2^32 x ${sizeHigh} is beyond what can be read`, { ino });
  const size = sizeHigh * 2 ** 32 + u32(INODE.i_size_lo);

  const fits = (field: number): boolean => field + 4 <= SUPERBLOCK.GOOD_OLD_INODE_SIZE + extraIsize;
  // Seconds (signed 32 bits plus up to 2 epoch bits) stay exact as a Number; one BigInt step per time.
  const time = (base: number, extra: number): bigint => {
    const seconds = raw.readInt32LE(base);
    if (!fits(extra)) return BigInt(seconds) * 1_000_000_000n;
    const word = u32(extra);
    const epoch = (word & INODE.EXTRA_EPOCH_MASK) * 2 ** 32;
    return BigInt(seconds + epoch) * 1_000_000_000n + BigInt(word >>> INODE.EXTRA_NSEC_SHIFT);
  };

  let sectors = u32(INODE.i_blocks_lo);
  if (hasRoCompat(sb, 'huge_file')) {
    sectors += u16(INODE.l_i_blocks_high) * 2 ** 32;
    if (flags & INODE_FLAGS.HUGE_FILE) sectors *= sb.blockSize / 512;
  }
  const aclHigh = hasIncompat(sb, '64bit') ? u16(INODE.l_i_file_acl_high) : 0;
  return {
    ino,
    type,
    mode,
    uid: (u16(INODE.i_uid) | (u16(INODE.l_i_uid_high) << 16)) >>> 0,
    gid: (u16(INODE.i_gid) | (u16(INODE.l_i_gid_high) << 16)) >>> 0,
    nlink,
    size,
    flags,
    generation,
    atimeNs: time(INODE.i_atime, INODE.i_atime_extra),
    mtimeNs: time(INODE.i_mtime, INODE.i_mtime_extra),
    ctimeNs: time(INODE.i_ctime, INODE.i_ctime_extra),
    crtimeNs: fits(INODE.i_crtime) ? time(INODE.i_crtime, INODE.i_crtime_extra) : undefined,
    iBlock: copyBytes(raw, INODE.i_block, INODE.i_block + INODE.I_BLOCK_SIZE),
    sectors,
    fileAcl: u32(INODE.i_file_acl_lo) + aclHigh * 2 ** 32,
    xattrArea: flags & INODE_FLAGS.INLINE_DATA ? copyBytes(raw, SUPERBLOCK.GOOD_OLD_INODE_SIZE + extraIsize, sb.inodeSize) : NO_XATTRS,
    csumSeed,
  };
}

/** Bytes a decoded inode holds, for the byte-bounded cache. */
export function inodeFootprint(inode: Ext4Inode): number {
  return 320 + inode.xattrArea.length;
}
