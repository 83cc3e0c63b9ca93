import type { BlockReader } from '../../../core/block-reader.js';
import type { GuestFileSystem, GuestFileSystemDriver, GuestOpenOptions } from '../../../core/guest-filesystem.js';
import { Ext4FileSystem } from './ext4-filesystem.js';
import { SUPERBLOCK } from './layout.js';
import { hasExt4Magic } from './superblock.js';

/** The ext2/ext3/ext4 entry of the probe table: the 0xEF53 magic in the superblock at byte 1024. */
export const ext4Driver: GuestFileSystemDriver = {
  type: 'ext4',
  async probe(volume: BlockReader): Promise<boolean> {
    if (volume.size < SUPERBLOCK.OFFSET + SUPERBLOCK.SIZE) return false;
    return hasExt4Magic(await volume.read(SUPERBLOCK.OFFSET, SUPERBLOCK.SIZE));
  },
  open(volume: BlockReader, options: GuestOpenOptions): Promise<GuestFileSystem> {
    return Ext4FileSystem.open(volume, options);
  },
};
