import type { BlockReader } from '../../core/block-reader.js';
import { CairnError } from '../../core/errors.js';
import type { AllocationExtent } from '../../core/extent.js';
import type { GuestFileSystem, GuestNodeId } from '../../core/guest-filesystem.js';

/**
 * A regular file inside a guest filesystem as a BlockReader, so that everything that serves disks
 * (FUSE reads with read-ahead, `cairn cat`, copy-out with holes) serves guest files the same way.
 */
export class GuestFileReader implements BlockReader {
  constructor(
    private readonly fs: GuestFileSystem,
    private readonly id: GuestNodeId,
    readonly size: number,
    /** A hint for readers that fetch ahead: the volume's own granularity. */
    readonly blockSize: number,
    private readonly label: string,
  ) {}

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new CairnError('ERR_OUT_OF_RANGE', `read of ${length} bytes at ${offset} is outside ${this.label} (size ${this.size})`, {
        offset,
        length,
      });
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length);
    const data = await this.fs.read(this.id, offset, length);
    if (data.length !== length) {
      throw new CairnError('ERR_FORMAT_INVALID', `${this.label}: the filesystem returned ${data.length} of ${length} bytes at ${offset}`, {
        file: this.label,
        offset,
      });
    }
    return data;
  }

  async readInto(offset: number, length: number, target: Buffer): Promise<void> {
    (await this.read(offset, length)).copy(target);
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    this.check(offset, length);
    const extents = await this.fs.extents(this.id, offset, length);
    const out: AllocationExtent[] = [];
    for (const extent of extents) {
      const zero = extent.kind === 'zero';
      const previous = out[out.length - 1];
      if (previous && previous.zero === zero && previous.offset + previous.length === extent.offset) previous.length += extent.length;
      else out.push({ offset: extent.offset, length: extent.length, zero });
    }
    return out;
  }
}
