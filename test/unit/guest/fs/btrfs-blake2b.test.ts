// BLAKE2b-256 against the reference tool (coreutils b2sum -l 256) over lengths around the 128-byte
// block (the last block is the one compressed with the final flag, even when full), and sub-ranges.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { blake2b256 } from '../../../../src/guest/fs/btrfs/blake2b.js';
import { pattern } from '../../../helpers/ext4-images.js';

const b2sum = (data: Buffer): string => execFileSync('b2sum', ['-l', '256', '-'], { input: data, encoding: 'utf8' }).split(/\s/)[0]!;
const digest = (data: Buffer, start = 0, end = data.length): string => {
  const out = Buffer.alloc(32);
  blake2b256(data, start, end, out, 0);
  return out.toString('hex');
};

describe('blake2b-256', () => {
  it('matches b2sum -l 256 around every block boundary and on btrfs-sized blocks', () => {
    const lengths = [0, 1, 3, 63, 64, 127, 128, 129, 255, 256, 257, 383, 384, 385, 1000, 4096, 16384];
    for (const [i, n] of lengths.entries()) {
      const data = pattern(n, i + 1);
      expect(digest(data), `length ${n}`).toBe(b2sum(data));
    }
    expect(digest(Buffer.from('abc'))).toBe('bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319');
    const big = pattern(5000, 3);
    expect(digest(big, 32, 4128)).toBe(b2sum(big.subarray(32, 4128)));
  });
});
