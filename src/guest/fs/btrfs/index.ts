// The read-only btrfs reader: superblock (mirrors when the primary is damaged), the sys_chunk_array
// and chunk tree (single and DUP profiles of one device), the root tree's subvolumes, FS trees
// (inodes, DIR_INDEX listings, DIR_ITEM lookups by crc32c name hash), file extents (inline,
// regular, prealloc, holes; zlib, lzo and zstd) and the crc32c/xxhash64/sha256/blake2b checksums
// of metadata blocks and data sectors, all over a BlockReader with byte-bounded caches.
//
// Node ids (node-ids.ts): a btrfs inode is (subvolume tree id, objectid), packed into the
// GuestNodeId bigint as `tree << 64 | objectid`: both are u64, so ids never collide, and the
// objectid part is what the kernel's stat shows as the inode number (btrfsInodeNumber).
//
// Where subvolumes are: as the kernel shows them. A subvolume's DIR_ITEM/DIR_INDEX in its parent
// (location key of type ROOT_ITEM) leads to the child tree's root directory, inode 256 of that
// tree, when the root tree's ROOT_REF links it there; a snapshot's entry for a nested subvolume it
// did not carry is the kernel's empty placeholder directory (inode 2). The filesystem's root is
// the default subvolume, the one `mount` shows:
// - default = 5 (Fedora's layout: subvolumes `root` and `home` in the top level, mounted with
//   subvol=): the root is subvolume 5 and every subvolume is reachable at its place below it;
// - default = another subvolume (openSUSE/snapper: @/.snapshots/1/snapshot): the root is that
//   subvolume, listing one extra synthetic entry `@top-level` that leads to subvolume 5 (unless a
//   real entry of that name shadows it). Its own id is a "view root" distinct from the default
//   subvolume's root as reached through the top level, so the tree stays loop-free.
export { btrfsDriver } from './driver.js';
export { BtrfsFileSystem, TOP_LEVEL_NAME } from './btrfs-filesystem.js';
export { btrfsInodeNumber } from './node-ids.js';
