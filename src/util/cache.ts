import { LRUCache } from 'lru-cache';

/**
 * A byte-bounded LRU of buffers with coalesced loads: concurrent misses for one key share one load.
 * The only module that imports lru-cache.
 */
export class ByteCache<V extends { length: number }> {
  private readonly lru: LRUCache<string, V>;
  private readonly loading = new Map<string, Promise<V>>();
  hits = 0;
  misses = 0;

  constructor(readonly maxBytes: number) {
    this.lru = new LRUCache<string, V>({
      maxSize: Math.max(1, maxBytes),
      // A zero-length value still occupies an entry; count it as one byte.
      sizeCalculation: (value) => Math.max(1, value.length),
    });
  }

  /** Returns the cached value or runs `load` once for all concurrent callers of the same key. */
  async get(key: string, load: () => Promise<V>): Promise<V> {
    const cached = this.lru.get(key);
    if (cached !== undefined) {
      this.hits++;
      return cached;
    }
    const pending = this.loading.get(key);
    if (pending) {
      this.hits++;
      return pending;
    }
    this.misses++;
    const promise = load().then(
      (value) => {
        this.loading.delete(key);
        if (value.length <= this.maxBytes) this.lru.set(key, value);
        return value;
      },
      (err: unknown) => {
        this.loading.delete(key);
        throw err;
      },
    );
    this.loading.set(key, promise);
    return promise;
  }

  has(key: string): boolean {
    return this.lru.has(key) || this.loading.has(key);
  }

  get sizeBytes(): number {
    return this.lru.calculatedSize;
  }

  clear(): void {
    this.lru.clear();
  }
}
