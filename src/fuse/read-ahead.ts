import type { BlockReader } from '../core/block-reader.js';

/** How far ahead to fetch once reads are sequential: a few chunks, but never more than this many bytes. */
export const READ_AHEAD_BYTES = 8 * 1024 * 1024;
const MAX_BLOCKS_AHEAD = 16;
/** Reads this close to where the last one ended count as sequential: several FUSE threads may deliver
 * the kernel's readahead requests slightly out of order, within its (≤ 1 MiB here) window. */
const SEQUENTIAL_SLACK_BYTES = 1024 * 1024;

/**
 * Per open file: when reads follow each other (the kernel sends 128 KiB requests, possibly a little
 * out of order from several FUSE threads), asks the reader for the next blocks before they are
 * needed. The reads land in the catalog's shared chunk cache, which coalesces them with the real
 * reads; failures are ignored here and surface, with their log line, when the range is really read.
 * Holes are skipped (the index says so): fetching one would only zero-fill a block and drop it.
 */
export class SequentialReadAhead {
  private lastEnd = -1;
  private fetchedUntil = 0;
  private readonly window: number;

  constructor(private readonly reader: BlockReader) {
    const blockSize = Math.max(1, reader.blockSize);
    this.window = Math.max(blockSize, Math.min(READ_AHEAD_BYTES, blockSize * MAX_BLOCKS_AHEAD));
  }

  /** Called for every read before it is served. */
  noteRead(offset: number, length: number): void {
    const sequential = this.lastEnd >= 0 && Math.abs(offset - this.lastEnd) <= SEQUENTIAL_SLACK_BYTES;
    this.lastEnd = Math.max(offset + length, sequential ? this.lastEnd : 0);
    if (!sequential) {
      this.fetchedUntil = offset + length;
      return;
    }
    const blockSize = Math.max(1, this.reader.blockSize);
    const target = Math.min(this.reader.size, offset + length + this.window);
    let from = Math.max(this.fetchedUntil, offset + length);
    from = Math.floor(from / blockSize) * blockSize;
    if (from >= target) return;
    const to = Math.min(this.reader.size, Math.ceil(target / blockSize) * blockSize);
    this.fetchedUntil = Math.max(this.fetchedUntil, to);
    this.fetch(from, to, blockSize).catch(() => undefined);
  }

  private async fetch(from: number, to: number, blockSize: number): Promise<void> {
    // Extents the reader does not describe count as data.
    const holes = (await this.reader.allocation(from, to - from)).filter((extent) => extent.zero);
    for (let block = from; block < to; block += blockSize) {
      const end = Math.min(this.reader.size, block + blockSize);
      if (holes.some((hole) => hole.offset <= block && hole.offset + hole.length >= end)) continue;
      // One byte is enough to load the whole chunk into the shared cache; asking for the block would
      // have a reader that copies out of its cache copy (and allocate) a block only to drop it.
      this.reader.read(block, 1).catch(() => undefined);
    }
  }
}
