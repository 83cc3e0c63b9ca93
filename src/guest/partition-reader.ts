import type { BlockReader } from '../core/block-reader.js';
import { CairnError } from '../core/errors.js';
import type { AllocationExtent } from '../core/extent.js';
import type { PartitionEntry } from './partition-types.js';
import { findPartition, readPartitionTable } from './partition-table.js';

/** Serves the byte range [start, start+size) of a disk as a disk of its own (one partition). */
export class PartitionReader implements BlockReader {
  readonly blockSize: number;

  constructor(
    private readonly disk: BlockReader,
    readonly start: number,
    readonly size: number,
  ) {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(size) || start < 0 || size < 0 || start + size > disk.size) {
      throw new CairnError('ERR_OUT_OF_RANGE', `partition range ${start}+${size} does not fit the disk (${disk.size} bytes)`, {
        offset: start,
        length: size,
        diskSize: disk.size,
      });
    }
    this.blockSize = disk.blockSize;
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new CairnError('ERR_OUT_OF_RANGE', `read ${offset}+${length} is outside the partition (${this.size} bytes)`, {
        offset,
        length,
        size: this.size,
      });
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length);
    return this.disk.read(this.start + offset, length);
  }

  async contentKey(offset: number, length: number): Promise<string | undefined> {
    this.check(offset, length);
    return this.disk.contentKey?.(this.start + offset, length);
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    this.check(offset, length);
    const extents = await this.disk.allocation(this.start + offset, length);
    const end = offset + length;
    const shifted: AllocationExtent[] = [];
    for (const extent of extents) {
      const from = Math.max(extent.offset - this.start, offset);
      const to = Math.min(extent.offset + extent.length - this.start, end);
      if (to > from) shifted.push({ offset: from, length: to - from, zero: extent.zero });
    }
    return shifted;
  }
}

/** Opens partition `number` of `disk`: reads the table, finds the entry, wraps the range. */
export async function openPartition(disk: BlockReader, number: number): Promise<{ entry: PartitionEntry; reader: PartitionReader }> {
  const table = await readPartitionTable(disk);
  const entry = findPartition(table, number);
  return { entry, reader: new PartitionReader(disk, entry.offset, entry.length) };
}
