import type { BlockReader } from '../../../core/block-reader.js';
import { CairnError } from '../../../core/errors.js';

/**
 * A range of the volume that a FAT structure points at must lie on the volume: one past the end is
 * damage of the filesystem (a cut-short image or a bogus cluster number), reported as such and never
 * handed to the reader, whose own range error would not name the structure.
 */
function checkRange(volume: BlockReader, offset: number, length: number, what: string, name: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > volume.size) {
    throw new CairnError(
      'ERR_FORMAT_INVALID',
      `${name}: ${what} lies at bytes ${offset}+${length}, past the end of the ${volume.size}-byte volume`,
      {
        volume: name,
        offset,
        length,
      },
    );
  }
}

export async function readVolume(volume: BlockReader, offset: number, length: number, what: string, name: string): Promise<Buffer> {
  checkRange(volume, offset, length, what, name);
  return volume.read(offset, length);
}

/** Like `readVolume`, into `target`, without an intermediate buffer where the reader allows it. */
export async function readVolumeInto(volume: BlockReader, offset: number, target: Buffer, what: string, name: string): Promise<void> {
  checkRange(volume, offset, target.length, what, name);
  if (volume.readInto) await volume.readInto(offset, target.length, target);
  else (await volume.read(offset, target.length)).copy(target);
}
