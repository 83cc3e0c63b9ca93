// The read-only ext2/ext3/ext4 reader: superblock and group descriptors, inodes read a table window
// at a time, extent trees and block maps, linear and htree directories, inline data, and the
// metadata_csum / gdt_csum checks, all over a BlockReader with byte-bounded metadata caches.
export { ext4Driver } from './driver.js';
export { Ext4FileSystem } from './ext4-filesystem.js';
