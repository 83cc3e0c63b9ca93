// A read-only FAT12/16/32 reader with VFAT long names, for single-file restore (USB images, EFI
// system partitions). `layout.ts` holds the on-disk structures with the spec's sections; the other
// files each decode one of them; `fat-filesystem.ts` puts them together behind GuestFileSystem.
export { fatDriver } from './driver.js';
export { FatFileSystem, DEFAULT_FAT_CACHE_BYTES } from './fat-filesystem.js';
