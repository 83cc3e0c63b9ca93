import type { ChunkStore } from '../core/chunk-store.js';
import type { WriteMark } from './chunk-mark.js';
import type { FsChunkStore } from './fs-chunk-store.js';

/**
 * One backup's view of the chunk store. It remembers the chunk files it created, so a backup that
 * fails (a full filesystem, a dead source, an interrupt) takes back the space it used at once,
 * instead of leaving it for a GC after the grace period. Reading and touching go to the store; a
 * chunk this session created is not touched again (that would erase its mark, and its mark already
 * keeps GC away while the backup runs).
 */
export class ChunkWriteSession implements ChunkStore {
  private readonly created = new Map<string, WriteMark>();

  constructor(
    private readonly store: FsChunkStore,
    private readonly startedMs: number,
  ) {}

  readChunk(digest: string): Promise<Buffer> {
    return this.store.readChunk(digest);
  }

  async touchChunk(digest: string): Promise<boolean> {
    if (this.created.has(digest)) return true;
    return this.store.touchChunk(digest);
  }

  async writeChunk(digest: string, plain: Buffer): Promise<number> {
    const result = await this.store.writeChunkFile(digest, plain, this.startedMs);
    if (result.owned) this.created.set(digest, result.owned);
    return result.bytes;
  }

  syncNewChunks(): Promise<void> {
    return this.store.syncNewChunks();
  }

  /** The backup published its point: its chunks are referenced now, nothing is taken back. */
  keep(): void {
    this.created.clear();
  }

  /**
   * Removes the chunk files this session created that nobody else has come to rely on (see
   * FsChunkStore.discardOwnedChunk). Call it while still holding the backup lock. Returns how many
   * were removed.
   */
  async discard(): Promise<number> {
    let removed = 0;
    for (const [digest, mark] of this.created) {
      if (await this.store.discardOwnedChunk(digest, mark)) removed++;
    }
    this.created.clear();
    return removed;
  }
}
