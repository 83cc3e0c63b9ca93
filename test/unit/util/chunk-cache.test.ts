import { describe, expect, it } from 'vitest';
import { ChunkCache } from '../../../src/util/cache.js';

const SLOT = 1024;
/** A loader that fills its slot with `byte` and returns the view. */
const fill = (byte: number, calls?: { n: number }) => async (takeSlot: () => Buffer) => {
  if (calls) calls.n++;
  await new Promise((resolve) => setImmediate(resolve));
  return takeSlot().fill(byte).subarray(0, SLOT);
};

describe('ChunkCache', () => {
  it('coalesces concurrent misses and serves hits from the same slot', async () => {
    const cache = new ChunkCache(4 * SLOT);
    const calls = { n: 0 };
    const [a, b] = await Promise.all([cache.acquire('k', SLOT, fill(1, calls)), cache.acquire('k', SLOT, fill(9, calls))]);
    expect(calls.n).toBe(1);
    expect(a.data[0]).toBe(1);
    expect(b.data.buffer).toBe(a.data.buffer);
    a.release();
    b.release();
    const c = await cache.acquire('k', SLOT, fill(9, calls));
    expect(calls.n).toBe(1);
    expect(c.data[0]).toBe(1);
    c.release();
  });

  it('reuses an evicted slot, never while a lease pins it, and stays within its bound', async () => {
    const cache = new ChunkCache(2 * SLOT);
    const first = await cache.acquire('a', SLOT, fill(1));
    (await cache.acquire('b', SLOT, fill(2))).release();
    // 'c' needs a slot: 'a' is least recently used but pinned, so its bytes must survive.
    const c = await cache.acquire('c', SLOT, fill(3));
    expect(first.data.every((x) => x === 1)).toBe(true);
    expect(c.data.every((x) => x === 3)).toBe(true);
    expect(cache.heldBytes).toBeLessThanOrEqual(3 * SLOT);
    first.release();
    c.release();
    for (const key of ['d', 'e', 'f', 'g']) (await cache.acquire(key, SLOT, fill(key.charCodeAt(0)))).release();
    expect(cache.heldBytes).toBeLessThanOrEqual(2 * SLOT);
    expect(cache.sizeBytes).toBeLessThanOrEqual(2 * SLOT);
  });

  it('gives the slot back when a load fails, and loads again next time', async () => {
    const cache = new ChunkCache(SLOT);
    await expect(
      cache.acquire('x', SLOT, async (takeSlot) => {
        takeSlot();
        throw new Error('damaged');
      }),
    ).rejects.toThrow('damaged');
    expect(cache.has('x')).toBe(false);
    const lease = await cache.acquire('x', SLOT, fill(5));
    expect(lease.data[0]).toBe(5);
    expect(cache.heldBytes).toBe(SLOT);
    lease.release();
  });

  it('caches a loader result of its own memory, counted by its length', async () => {
    const cache = new ChunkCache(4 * SLOT);
    const own = Buffer.alloc(100, 7);
    const lease = await cache.acquire('own', SLOT, async () => own);
    expect(lease.data).toBe(own);
    expect(cache.sizeBytes).toBe(100);
    expect(cache.heldBytes).toBe(100);
    lease.release();
  });
});
