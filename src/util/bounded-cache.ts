import { LRUCache } from 'lru-cache';

/**
 * A byte-bounded LRU of decoded values (guest filesystem metadata: inodes, directory blocks, B-tree
 * nodes), so that a hostile or huge filesystem cannot grow the process. Concurrent misses for one key
 * share one load; failed loads are not remembered. `sizeOf` must count what the value holds.
 */
export class BoundedCache<K extends string | number | bigint, V extends object> {
  private readonly lru: LRUCache<K, V>;
  private readonly loading = new Map<K, Promise<V>>();

  constructor(
    readonly maxBytes: number,
    private readonly sizeOf: (value: V) => number,
  ) {
    // A value larger than the whole cache is returned but not kept (lru-cache refuses it).
    this.lru = new LRUCache<K, V>({ maxSize: Math.max(1, maxBytes), sizeCalculation: (v) => Math.max(1, sizeOf(v)) });
  }

  get(key: K, load: () => Promise<V>): Promise<V> {
    const hit = this.lru.get(key);
    if (hit !== undefined) return Promise.resolve(hit);
    let pending = this.loading.get(key);
    if (!pending) {
      pending = load().then(
        (value) => {
          this.loading.delete(key);
          if (this.sizeOf(value) <= this.maxBytes) this.lru.set(key, value);
          return value;
        },
        (err: unknown) => {
          this.loading.delete(key);
          throw err;
        },
      );
      this.loading.set(key, pending);
    }
    return pending;
  }

  /** Bytes of the values held (loads in flight are not counted). */
  get heldBytes(): number {
    return this.lru.calculatedSize;
  }

  clear(): void {
    this.lru.clear();
  }
}
