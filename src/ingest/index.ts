// The write side: sources (files, block devices, stdin, NBD exports) yield an extent stream; the
// point writer cuts it into chunks and stores them; runBackup turns disks into one restore point.
export * from './disk-source.js';
export * from './open-source.js';
export * from './point-writer.js';
export * from './backup.js';
