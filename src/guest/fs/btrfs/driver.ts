import type { BlockReader } from '../../../core/block-reader.js';
import type { GuestFileSystem, GuestFileSystemDriver, GuestOpenOptions } from '../../../core/guest-filesystem.js';
import { BtrfsFileSystem } from './btrfs-filesystem.js';
import { SUPERBLOCK } from './layout.js';
import { hasBtrfsMagic } from './superblock.js';

/**
 * The btrfs entry of the probe table: the `_BHRfS_M` magic in the primary superblock at 64 KiB
 * (a damaged primary with intact mirrors is not probed as btrfs; open() itself falls back to them).
 */
export const btrfsDriver: GuestFileSystemDriver = {
  type: 'btrfs',
  async probe(volume: BlockReader): Promise<boolean> {
    const at = SUPERBLOCK.OFFSETS[0];
    if (volume.size < at + SUPERBLOCK.SIZE) return false;
    return hasBtrfsMagic(await volume.read(at, SUPERBLOCK.magic + 8));
  },
  open(volume: BlockReader, options: GuestOpenOptions): Promise<GuestFileSystem> {
    return BtrfsFileSystem.open(volume, options);
  },
};
