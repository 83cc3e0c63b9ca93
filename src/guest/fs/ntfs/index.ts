// The read-only NTFS reader (versions 1.2 to 3.1): boot sector (backup as a fallback), MFT records
// with checked fixups through $MFT's own runlist, attribute lists, resident, sparse and LZNT1
// compressed data, $I30 B+tree directories, symlinks and junctions, alternate data streams as
// `file:stream`, all over a BlockReader with byte-bounded metadata caches.
export { ntfsDriver } from './driver.js';
export { NtfsFileSystem } from './ntfs-filesystem.js';
export { lznt1Decompress } from './lznt1.js';
export { decodeMappingPairs, RunList } from './runlist.js';
