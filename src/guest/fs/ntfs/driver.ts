import type { BlockReader } from '../../../core/block-reader.js';
import type { GuestFileSystem, GuestFileSystemDriver, GuestOpenOptions } from '../../../core/guest-filesystem.js';
import { backupBootOffsets, hasNtfsSignature } from './boot-sector.js';
import { BOOT } from './layout.js';
import { NtfsFileSystem } from './ntfs-filesystem.js';

/**
 * The NTFS entry of the probe table: the 'NTFS    ' OEM id in the boot sector, or, when the first
 * sector is no boot sector at all (no 0xAA55 marker: wiped or torn), in the backup boot sector at
 * the volume's end. The backup check is the loosest probe of the table, so NTFS probes last.
 */
export const ntfsDriver: GuestFileSystemDriver = {
  type: 'ntfs',
  async probe(volume: BlockReader): Promise<boolean> {
    if (volume.size < BOOT.SIZE) return false;
    const first = await volume.read(0, BOOT.SIZE);
    if (hasNtfsSignature(first)) return true;
    if (first.readUInt16LE(BOOT.end_of_sector_marker) === BOOT.END_MARKER) return false;
    for (const at of backupBootOffsets(volume.size)) if (hasNtfsSignature(await volume.read(at, BOOT.SIZE))) return true;
    return false;
  },
  open(volume: BlockReader, options: GuestOpenOptions): Promise<GuestFileSystem> {
    return NtfsFileSystem.open(volume, options);
  },
};
