import type { BlockReader } from '../core/block-reader.js';
import type { ChunkReader } from '../core/chunk-store.js';
import { CairnError } from '../core/errors.js';
import type { AllocationExtent } from '../core/extent.js';
import type { ByteCache } from '../util/cache.js';
import { isHoleSlot, patchesOf, type DiskIndex } from '../store/disk-index.js';
import { assembleSlot, patchedSlotKey } from '../store/slot-content.js';

/** How many chunks to fetch ahead once reads are sequential. */
const READ_AHEAD_CHUNKS = 4;

/**
 * A restore point's disk as a BlockReader: chunks come from a byte-bounded cache shared by every
 * reader (NBD connections, FUSE, cat), concurrent misses for one chunk are loaded once, and
 * sequential access triggers read-ahead of the next chunks.
 */
export class DiskReader implements BlockReader {
  readonly size: number;
  readonly blockSize: number;
  private lastReadEnd = -1;

  constructor(
    private readonly index: DiskIndex,
    private readonly chunks: ChunkReader,
    private readonly cache: ByteCache<Buffer>,
    private readonly label: string,
  ) {
    this.size = index.diskSize;
    this.blockSize = index.chunkSize;
  }

  private chunkLength(chunkIndex: number): number {
    return Math.min(this.blockSize, this.size - chunkIndex * this.blockSize);
  }

  private loadChunk = (digest: string): Promise<Buffer> => this.cache.get(digest, () => this.chunks.readChunk(digest));

  /** The cache key of a slot's content; undefined for a hole. */
  private slotKey(chunkIndex: number): string | undefined {
    const digest = this.index.digests.get(chunkIndex);
    const patches = patchesOf(this.index, chunkIndex);
    if (patches.length === 0) return digest;
    return isHoleSlot(this.index, chunkIndex) ? undefined : patchedSlotKey(digest, patches);
  }

  /** Plaintext of one slot (chunk), or undefined for a hole. */
  private async chunk(chunkIndex: number): Promise<Buffer | undefined> {
    const key = this.slotKey(chunkIndex);
    if (key === undefined) return undefined;
    try {
      const patches = patchesOf(this.index, chunkIndex);
      if (patches.length === 0) return await this.loadChunk(key);
      // A patched slot is assembled once and cached as a whole, so small reads do not rebuild it.
      const digest = this.index.digests.get(chunkIndex);
      return await this.cache.get(key, async () => (await assembleSlot(digest, patches, this.chunkLength(chunkIndex), this.loadChunk))!);
    } catch (err) {
      if (err instanceof CairnError) {
        err.context.disk ??= this.label;
        err.context.offset ??= chunkIndex * this.blockSize;
      }
      throw err;
    }
  }

  private readAhead(fromChunk: number): void {
    const last = Math.min(this.index.digests.length, fromChunk + READ_AHEAD_CHUNKS);
    for (let i = fromChunk; i < last; i++) {
      const key = this.slotKey(i);
      if (key !== undefined && !this.cache.has(key)) {
        // Errors surface when the chunk is really read; a prefetch failure must not be reported twice.
        this.chunk(i).catch(() => undefined);
      }
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new CairnError('ERR_OUT_OF_RANGE', `read of ${length} bytes at ${offset} is outside ${this.label} (size ${this.size})`, {
        offset,
        length,
      });
    }
    const sequential = offset === this.lastReadEnd;
    this.lastReadEnd = offset + length;
    if (length === 0) return Buffer.alloc(0);
    const first = Math.floor(offset / this.blockSize);
    const last = Math.floor((offset + length - 1) / this.blockSize);
    if (sequential) this.readAhead(last + 1);
    const pieces = [];
    for (let i = first; i <= last; i++) pieces.push(this.chunk(i));
    const chunks = await Promise.all(pieces);
    if (first === last) {
      const data = chunks[0];
      const start = offset - first * this.blockSize;
      return data ? data.subarray(start, start + length) : Buffer.alloc(length);
    }
    // Every byte is written below (data copied, holes zero-filled): no need to zero the whole buffer.
    const out = Buffer.allocUnsafe(length);
    for (let i = first; i <= last; i++) {
      const data = chunks[i - first];
      const chunkStart = i * this.blockSize;
      const from = Math.max(offset, chunkStart) - chunkStart;
      const to = Math.min(offset + length, chunkStart + this.chunkLength(i)) - chunkStart;
      if (data) data.copy(out, chunkStart + from - offset, from, to);
      else out.fill(0, chunkStart + from - offset, chunkStart + to - offset);
    }
    return out;
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    const end = Math.min(this.size, offset + length);
    const extents: AllocationExtent[] = [];
    let position = offset;
    while (position < end) {
      const chunkIndex = Math.floor(position / this.blockSize);
      const next = Math.min(end, (chunkIndex + 1) * this.blockSize);
      const zero = isHoleSlot(this.index, chunkIndex);
      const previous = extents[extents.length - 1];
      if (previous && previous.zero === zero) previous.length = next - previous.offset;
      else extents.push({ offset: position, length: next - position, zero });
      position = next;
    }
    return extents;
  }
}
