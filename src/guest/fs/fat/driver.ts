import type { BlockReader } from '../../../core/block-reader.js';
import type { GuestFileSystem, GuestFileSystemDriver, GuestOpenOptions } from '../../../core/guest-filesystem.js';
import { looksLikeFatBootSector } from './boot-sector.js';
import { FatFileSystem } from './fat-filesystem.js';
import { BOOT_SECTOR } from './layout.js';

/** FAT12/16/32 (with VFAT long names): USB sticks, the EFI system partition of every UEFI guest. */
export const fatDriver: GuestFileSystemDriver = {
  type: 'vfat',
  async probe(volume: BlockReader): Promise<boolean> {
    if (volume.size < BOOT_SECTOR.probeLength) return false;
    return looksLikeFatBootSector(await volume.read(0, BOOT_SECTOR.probeLength));
  },
  open(volume: BlockReader, options: GuestOpenOptions): Promise<GuestFileSystem> {
    return FatFileSystem.open(volume, options);
  },
};
