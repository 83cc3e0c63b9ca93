import { dxCountOffset, findInBlock, recLenFromDisk, type DirBlock, type DirEntryRecord } from './directory.js';
import { dxHash, isSupportedHash } from './dx-hash.js';
import { DIRENT, DX } from './layout.js';
import { hasIncompat, type Superblock } from './superblock.js';

/** What an htree lookup needs from its directory: checked blocks by logical number, and the block count. */
export interface HtreeDirectory {
  readonly blocks: number;
  readBlock(logical: number): Promise<DirBlock>;
}

/** Tells the caller to scan linearly: the index is not one this reader can trust (the kernel falls back too). */
export const SCAN = Symbol('scan');

interface Level {
  readonly bytes: Buffer;
  readonly countOffset: number;
  readonly count: number;
  readonly index: number;
}

/**
 * Looks `name` up through the hash tree (directory.rst "Hash Tree Directories"; the kernel's
 * dx_probe): hash the name, descend from the dx_root through at most 2 (3 with largedir) levels of
 * dx_nodes by binary search, scan the one leaf block. Returns SCAN where dx_probe would report a
 * bad index (unknown hash, limits that do not match, a block outside the directory) or where the
 * name's hash continues into the next leaf (a collision); checksum failures still throw.
 */
export async function htreeLookup(dir: HtreeDirectory, name: Buffer, sb: Superblock): Promise<DirEntryRecord | undefined | typeof SCAN> {
  const root = (await dir.readBlock(0)).bytes;
  const bs = sb.blockSize;
  if (recLenFromDisk(root.readUInt16LE(DIRENT.rec_len), bs) !== 12) return SCAN;
  const info = DX.ROOT_INFO;
  let version = root[info + DX.root_hash_version]!;
  const levels = root[info + DX.root_indirect_levels]!;
  const maxLevels = hasIncompat(sb, 'largedir') ? DX.MAX_LEVELS_LARGEDIR : DX.MAX_LEVELS;
  const countOffset = dxCountOffset(root, 0);
  if (countOffset === undefined || levels >= maxLevels || root[info + 7]! & 1) return SCAN;
  if (version <= DX.HASH_TEA) version += sb.hashUnsignedDelta;
  if (!isSupportedHash(version)) return SCAN;
  const csum = sb.metadataCsum ? DX.TAIL_SIZE : 0;
  const hash = dxHash(name, version, sb.hashSeed);

  const path: Level[] = [];
  let bytes = root;
  let offset = countOffset;
  let expectedLimit = Math.floor((bs - countOffset - csum) / DX.ENTRY_SIZE);
  let leaf = -1;
  for (let level = 0; level <= levels; level++) {
    const limit = bytes.readUInt16LE(offset + DX.limit);
    const count = bytes.readUInt16LE(offset + DX.count);
    if (limit !== expectedLimit || count === 0 || count > limit) return SCAN;
    let lo = 1;
    let hi = count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (bytes.readUInt32LE(offset + mid * DX.ENTRY_SIZE) > hash) hi = mid - 1;
      else lo = mid + 1;
    }
    const index = lo - 1;
    path.push({ bytes, countOffset: offset, count, index });
    const block = bytes.readUInt32LE(offset + index * DX.ENTRY_SIZE + 4);
    if (block >= dir.blocks || block === 0) return SCAN;
    if (level === levels) {
      leaf = block;
      break;
    }
    bytes = (await dir.readBlock(block)).bytes;
    if (bytes.readUInt32LE(DIRENT.inode) !== 0 || recLenFromDisk(bytes.readUInt16LE(DIRENT.rec_len), bs) !== bs) return SCAN;
    offset = DX.NODE_COUNT_OFFSET;
    expectedLimit = Math.floor((bs - offset - csum) / DX.ENTRY_SIZE);
  }
  const found = findInBlock(await dir.readBlock(leaf), name);
  if (found) return found;
  // ext4_htree_next_block: the name may continue in the next leaf only if the next hash is ours | 1.
  for (let i = path.length - 1; i >= 0; i--) {
    const at = path[i]!;
    if (at.index + 1 < at.count) {
      const next = at.bytes.readUInt32LE(at.countOffset + (at.index + 1) * DX.ENTRY_SIZE);
      return (next & ~1) >>> 0 === hash ? SCAN : undefined;
    }
  }
  return undefined;
}
