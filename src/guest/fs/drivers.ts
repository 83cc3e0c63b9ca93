import type { BlockReader } from '../../core/block-reader.js';
import { CairnError } from '../../core/errors.js';
import type { GuestFileSystem, GuestFileSystemDriver, GuestOpenOptions } from '../../core/guest-filesystem.js';
import { btrfsDriver } from './btrfs/index.js';
import { ext4Driver } from './ext4/index.js';
import { fatDriver } from './fat/index.js';
import { ntfsDriver } from './ntfs/index.js';

/**
 * Every guest filesystem Cairn reads, in probe order. Each driver's probe looks only at its own
 * signature, so the order matters only where signatures could overlap. NTFS stays last: when the
 * first sector is not a boot sector it also looks for a backup boot sector at the volume's end.
 */
export const GUEST_FS_DRIVERS: readonly GuestFileSystemDriver[] = [ext4Driver, fatDriver, btrfsDriver, ntfsDriver];

/** The driver whose signature the volume carries, or undefined (no filesystem Cairn knows). */
export async function probeFileSystem(volume: BlockReader): Promise<GuestFileSystemDriver | undefined> {
  for (const driver of GUEST_FS_DRIVERS) {
    if (await driver.probe(volume)) return driver;
  }
  return undefined;
}

/** Probes and opens the volume's filesystem; ERR_UNSUPPORTED naming the volume when none is recognised. */
export async function openFileSystem(volume: BlockReader, options: GuestOpenOptions): Promise<GuestFileSystem> {
  const driver = await probeFileSystem(volume);
  if (!driver) {
    throw new CairnError('ERR_UNSUPPORTED', `${options.name}: no filesystem Cairn can read (its raw image is still available)`, {
      volume: options.name,
    });
  }
  return driver.open(volume, options);
}
