import type { BlockReader } from '../core/block-reader.js';
import type { ChunkReader } from '../core/chunk-store.js';
import { CairnError } from '../core/errors.js';
import type { AllocationExtent } from '../core/extent.js';
import type { BufferLease, ChunkCache } from '../util/cache.js';
import { isHoleSlot, patchesOf, type DiskIndex } from '../store/disk-index.js';
import { assembleSlot, patchedSlotKey } from '../store/slot-content.js';

/** How many chunks to fetch ahead once reads are sequential. */
const READ_AHEAD_CHUNKS = 4;

/** A chunk reader that can also decode straight into a buffer it is given (FsChunkStore can). */
export type SlotChunkReader = ChunkReader & { readChunkInto?(digest: string, target: () => Buffer): Promise<Buffer> };

/**
 * A restore point's disk as a BlockReader: chunks come from a byte-bounded cache shared by every
 * reader (NBD connections, FUSE, cat), concurrent misses for one chunk are loaded once, and
 * sequential access triggers read-ahead of the next chunks. The cache reuses its memory, so every
 * read copies its bytes out (a memcpy, far cheaper than the decode and hash behind each chunk).
 */
export class DiskReader implements BlockReader {
  readonly size: number;
  readonly blockSize: number;
  private lastReadEnd = -1;

  constructor(
    private readonly index: DiskIndex,
    private readonly chunks: SlotChunkReader,
    private readonly cache: ChunkCache,
    private readonly label: string,
  ) {
    this.size = index.diskSize;
    this.blockSize = index.chunkSize;
  }

  private chunkLength(chunkIndex: number): number {
    return Math.min(this.blockSize, this.size - chunkIndex * this.blockSize);
  }

  private loadChunk = (digest: string): Promise<BufferLease> =>
    this.cache.acquire(digest, this.blockSize, (takeSlot) =>
      this.chunks.readChunkInto ? this.chunks.readChunkInto(digest, takeSlot) : this.chunks.readChunk(digest),
    );

  /** The cache key of a slot's content; undefined for a hole. */
  private slotKey(chunkIndex: number): string | undefined {
    const digest = this.index.digests.get(chunkIndex);
    const patches = patchesOf(this.index, chunkIndex);
    if (patches.length === 0) return digest;
    return isHoleSlot(this.index, chunkIndex) ? undefined : patchedSlotKey(digest, patches);
  }

  /** Plaintext of one slot (chunk), leased from the cache, or undefined for a hole. */
  private async chunk(chunkIndex: number): Promise<BufferLease | undefined> {
    const key = this.slotKey(chunkIndex);
    if (key === undefined) return undefined;
    try {
      const patches = patchesOf(this.index, chunkIndex);
      if (patches.length === 0) return await this.loadChunk(key);
      // A patched slot is assembled once and cached as a whole, so small reads do not rebuild it.
      const digest = this.index.digests.get(chunkIndex);
      return await this.cache.acquire(key, this.blockSize, async (takeSlot) => {
        const leases: BufferLease[] = [];
        try {
          const assembled = await assembleSlot(digest, patches, this.chunkLength(chunkIndex), async (d) => {
            const lease = await this.loadChunk(d);
            leases.push(lease);
            return lease.data;
          });
          // Not a hole (slotKey said so); kept in a slot so the cache counts it like any chunk.
          const slot = takeSlot();
          return assembled!.copy(slot) === assembled!.length ? slot.subarray(0, assembled!.length) : assembled!;
        } finally {
          for (const lease of leases) lease.release();
        }
      });
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
        this.chunk(i).then(
          (lease) => lease?.release(),
          () => undefined,
        );
      }
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.checkRange(offset, length);
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, length, out);
    return out;
  }

  /** Reads `length` bytes at `offset` into `target` (at `targetOffset`); every byte is written. */
  async readInto(offset: number, length: number, target: Buffer, targetOffset = 0): Promise<void> {
    this.checkRange(offset, length);
    if (targetOffset < 0 || targetOffset + length > target.length) {
      throw new CairnError('ERR_INVALID_ARGUMENT', `target of ${target.length} bytes cannot take ${length} at ${targetOffset}`);
    }
    const sequential = offset === this.lastReadEnd;
    this.lastReadEnd = offset + length;
    if (length === 0) return;
    const first = Math.floor(offset / this.blockSize);
    const last = Math.floor((offset + length - 1) / this.blockSize);
    if (sequential) this.readAhead(last + 1);
    const pieces = [];
    for (let i = first; i <= last; i++) pieces.push(this.chunk(i));
    // Settled, not all: every lease that was granted must be released, even when a sibling failed.
    const settled = await Promise.allSettled(pieces);
    try {
      for (let i = first; i <= last; i++) {
        const result = settled[i - first]!;
        if (result.status === 'rejected') throw result.reason;
        const chunkStart = i * this.blockSize;
        const from = Math.max(offset, chunkStart) - chunkStart;
        const to = Math.min(offset + length, chunkStart + this.chunkLength(i)) - chunkStart;
        const at = targetOffset + chunkStart + from - offset;
        if (result.value) result.value.data.copy(target, at, from, to);
        else target.fill(0, at, at + to - from);
      }
    } finally {
      for (const result of settled) if (result.status === 'fulfilled') result.value?.release();
    }
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new CairnError('ERR_OUT_OF_RANGE', `read of ${length} bytes at ${offset} is outside ${this.label} (size ${this.size})`, {
        offset,
        length,
      });
    }
  }

  async contentKey(offset: number, length: number): Promise<string | undefined> {
    this.checkRange(offset, length);
    if (length === 0) return 'empty';
    const first = Math.floor(offset / this.blockSize);
    const last = Math.floor((offset + length - 1) / this.blockSize);
    const keys: string[] = [`${offset - first * this.blockSize}+${length}`];
    for (let i = first; i <= last; i++) keys.push(this.slotKey(i) ?? 'hole');
    return keys.join(':');
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
