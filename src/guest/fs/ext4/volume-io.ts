import type { BlockReader } from '../../../core/block-reader.js';
import { formatInvalid } from './errors.js';

/**
 * Block reads of one ext4 volume. Every block number came from the image, so each read is checked
 * against the filesystem's block count (which the superblock parser checked against the volume):
 * a pointer beyond it is a damaged structure, named by `where`, never a read past the volume.
 */
export class VolumeIO {
  constructor(
    readonly volume: BlockReader,
    readonly name: string,
    readonly blockSize: number,
    readonly blocksCount: number,
  ) {}

  checkBlocks(block: number, count: number, where: string): void {
    if (!Number.isSafeInteger(block) || block < 0 || count < 0 || block + count > this.blocksCount) {
      throw formatInvalid(this.name, where, `blocks ${block}+${count} lie outside the filesystem (${this.blocksCount} blocks)`, {
        block,
        count,
      });
    }
  }

  async readBlocks(block: number, count: number, where: string): Promise<Buffer> {
    this.checkBlocks(block, count, where);
    return this.volume.read(block * this.blockSize, count * this.blockSize);
  }

  /** Reads `length` bytes at volume byte `offset` into `target` (a view the caller owns). */
  async readInto(offset: number, length: number, target: Buffer): Promise<void> {
    if (this.volume.readInto) {
      await this.volume.readInto(offset, length, target.subarray(0, length));
      return;
    }
    const bytes = await this.volume.read(offset, length);
    bytes.copy(target, 0, 0, length);
  }
}
