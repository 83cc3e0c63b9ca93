// Pure parsers of foreign formats (changed-block bitmaps; later qcow2, VHD, rbd-diff) over bytes.
// They never touch the store or do I/O: callers read the bytes.
export * from './cbt-bitmap.js';
