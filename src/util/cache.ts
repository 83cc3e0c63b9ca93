// The decoded-chunk cache shared by every reader of a catalog; the only module that imports lru-cache.
import { LRUCache } from 'lru-cache';

/** Fills the slot that `takeSlot` hands out (called at most once, as late as possible) and returns the bytes. */
export type SlotLoader = (takeSlot: () => Buffer) => Promise<Buffer>;

/** A cached buffer held for the caller: its bytes stay valid (never reused) until `release()`. */
export interface BufferLease {
  readonly data: Buffer;
  release(): void;
}

interface SlabEntry {
  data: Buffer;
  /** The slab buffer `data` lives in; undefined when the loader returned memory of its own. */
  slot: Buffer | undefined;
  /** Leases not yet released. */
  pins: number;
  /** Still in the LRU (once dropped, its slot is reused as soon as the last lease is released). */
  cached: boolean;
  /** `data` is the loader's own memory, counted in `ownBytes` while cached. */
  own: boolean;
}

/**
 * A byte-bounded LRU of chunk-sized buffers that reuses its memory. Loads fill a slab buffer
 * ("slot") that the cache hands them; an evicted entry's slot goes to the next load once no lease
 * pins it. Every slot counts against `maxBytes` from the moment a load takes it, so loads in flight
 * are inside the bound, and memory is held, not re-allocated per chunk: with short-lived buffers the
 * process grew by the cache plus freed-but-not-returned malloc memory (the garbage between two GCs
 * and per-thread arena fragmentation), ~60 % above the cache. Concurrent misses for one key share one
 * load. Beyond the bound (every slot pinned at once) a load gets a transient buffer that is dropped
 * when released.
 */
export class ChunkCache {
  private readonly lru: LRUCache<string, SlabEntry>;
  private readonly loading = new Map<string, { promise: Promise<SlabEntry>; waiters: number }>();
  private readonly free = new Map<number, Buffer[]>();
  /** Bytes of slots allocated: cached, leased, being loaded or free. */
  private slabBytes = 0;
  /** Bytes of cached entries whose loader returned memory of its own (not a slot). */
  private ownBytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly maxBytes: number) {
    this.lru = new LRUCache<string, SlabEntry>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (entry) => Math.max(1, entry.slot?.length ?? entry.data.length),
      dispose: (entry) => {
        entry.cached = false;
        if (entry.own) this.ownBytes -= entry.data.length;
        this.unpinned(entry);
      },
    });
  }

  /**
   * The cached buffer for `key`, leased; on a miss `load` fills a slot it asks for with `takeSlot` (a
   * buffer of `slotSize` bytes) and returns the bytes (a view of that slot, or a buffer of its own).
   * A loader asks for its slot only when it has its data in hand, so loads queued behind the chunk
   * store's read limit hold no memory and evict nothing.
   */
  async acquire(key: string, slotSize: number, load: SlotLoader): Promise<BufferLease> {
    const cached = this.lru.get(key);
    if (cached !== undefined) {
      this.hits++;
      cached.pins++;
      return this.lease(cached);
    }
    let pending = this.loading.get(key);
    if (pending) {
      this.hits++;
      // Counted now: the loader pins the entry for every waiter before any of them resumes, so no
      // eviction can reuse the slot in between.
      pending.waiters++;
    } else {
      this.misses++;
      pending = { promise: this.load(key, slotSize, load), waiters: 1 };
      this.loading.set(key, pending);
    }
    return this.lease(await pending.promise);
  }

  private async load(key: string, slotSize: number, load: SlotLoader): Promise<SlabEntry> {
    let slot: Buffer | undefined;
    const takeSlot = (): Buffer => (slot ??= this.takeSlot(slotSize));
    let data: Buffer;
    try {
      data = await load(takeSlot);
    } catch (err) {
      this.loading.delete(key);
      if (slot) this.giveBack(slot);
      throw err;
    }
    const ownSlot = slot !== undefined && data.buffer === slot.buffer;
    if (slot && !ownSlot) this.giveBack(slot);
    const entry: SlabEntry = {
      data,
      slot: ownSlot ? slot : undefined,
      pins: this.loading.get(key)?.waiters ?? 1,
      cached: false,
      own: !ownSlot,
    };
    this.loading.delete(key);
    if ((entry.slot?.length ?? data.length) <= this.maxBytes) {
      entry.cached = true;
      if (entry.own) this.ownBytes += data.length;
      this.lru.set(key, entry);
    }
    return entry;
  }

  private lease(entry: SlabEntry): BufferLease {
    let released = false;
    return {
      data: entry.data,
      release: () => {
        if (released) return;
        released = true;
        entry.pins--;
        this.unpinned(entry);
      },
    };
  }

  private unpinned(entry: SlabEntry): void {
    if (entry.cached || entry.pins > 0 || entry.slot === undefined) return;
    const slot = entry.slot;
    entry.slot = undefined;
    this.giveBack(slot);
  }

  private takeSlot(size: number): Buffer {
    for (;;) {
      const reusable = this.free.get(size)?.pop();
      if (reusable) return reusable;
      if (this.slabBytes + this.ownBytes + size <= this.maxBytes) break;
      // Free slots of another size are dropped first, then the least recently used entries.
      if (!this.dropFreeSlot(size) && this.lru.pop() === undefined) break;
    }
    this.slabBytes += size;
    return Buffer.allocUnsafeSlow(size);
  }

  private dropFreeSlot(except: number): boolean {
    for (const [size, list] of this.free) {
      if (size !== except && list.pop()) {
        this.slabBytes -= size;
        return true;
      }
    }
    return false;
  }

  private giveBack(slot: Buffer): void {
    if (this.slabBytes + this.ownBytes > this.maxBytes) {
      // Allocated past the bound while everything was pinned: let it go.
      this.slabBytes -= slot.length;
      return;
    }
    const list = this.free.get(slot.length);
    if (list) list.push(slot);
    else this.free.set(slot.length, [slot]);
  }

  has(key: string): boolean {
    return this.lru.has(key) || this.loading.has(key);
  }

  /** Bytes of cached entries. */
  get sizeBytes(): number {
    return this.lru.calculatedSize;
  }

  /** Bytes of memory the cache holds: its slab (cached, leased, loading and free slots) and cached buffers of their own. */
  get heldBytes(): number {
    return this.slabBytes + this.ownBytes;
  }

  clear(): void {
    this.lru.clear();
  }
}
