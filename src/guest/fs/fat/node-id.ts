/**
 * FAT has no inodes, so Cairn names a node by where its short directory entry is:
 *
 *   id = parentCluster << 48 | entryOffset
 *
 * `entryOffset` is the byte offset of the 32-byte short entry on the volume (below 2^48: FAT32
 * volumes end before 2^44 bytes) and `parentCluster` the first cluster of the directory that lists
 * it (0 for the root directory, on FAT32 too). The root itself is id 0: offset 0 is the boot sector,
 * never an entry. `stat(id)` reads the one entry back without walking from the root; the parent
 * cluster lets a directory check that it is entered from the directory its '..' names, which keeps
 * a walk of a damaged volume finite (see `FatFileSystem.directory`). Ids are stable for one volume
 * image; a file that is rewritten elsewhere gets a new one. FAT has no hard links.
 */
export const ROOT_ID = 0n;

const OFFSET_BITS = 48n;
const OFFSET_MASK = (1n << OFFSET_BITS) - 1n;

export function nodeId(parentCluster: number, entryOffset: number): bigint {
  return (BigInt(parentCluster) << OFFSET_BITS) | BigInt(entryOffset);
}

export function decodeNodeId(id: bigint): { parentCluster: number; entryOffset: number } | undefined {
  if (id <= 0n) return undefined;
  const parent = id >> OFFSET_BITS;
  // A cluster number has at most 28 bits.
  if (parent >= 1n << 28n) return undefined;
  return { parentCluster: Number(parent), entryOffset: Number(id & OFFSET_MASK) };
}
