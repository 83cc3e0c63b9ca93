import type { BlockReader } from '../core/block-reader.js';
import { CairnError } from '../core/errors.js';
import type { AllocationExtent } from '../core/extent.js';

/** A small in-memory blob (a VM configuration) served like a disk, so every file reads one way. */
export class BufferReader implements BlockReader {
  readonly size: number;
  readonly blockSize = 4096;

  constructor(private readonly data: Buffer) {
    this.size = data.length;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new CairnError('ERR_OUT_OF_RANGE', `read ${offset}+${length} past ${this.size}`, { offset, length });
    }
    return this.data.subarray(offset, offset + length);
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    return [{ offset, length, zero: false }];
  }
}
