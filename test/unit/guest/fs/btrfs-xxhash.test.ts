// XXH64 against the reference tool (xxhsum -H1 from the xxhash package) over lengths that reach
// every tail path (0-31 bytes, the 32-byte stripes, and 4/8-byte remainders), and its speed on
// the 16 KiB blocks and 4 KiB sectors btrfs checks.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { xxhash64 } from '../../../../src/guest/fs/btrfs/xxhash64.js';
import { pattern } from '../../../helpers/ext4-images.js';

const xxhsum = (data: Buffer): string => execFileSync('xxhsum', ['-H1', '-'], { input: data, encoding: 'utf8' }).split(/\s/)[0]!;

describe('xxhash64', () => {
  it('matches the reference values', () => {
    expect(xxhash64(Buffer.alloc(0)).toString(16)).toBe('ef46db3751d8e999');
    expect(xxhash64(Buffer.from('abc')).toString(16)).toBe('44bc2cf5ad770999');
    expect(xxhash64(Buffer.from('Nobody inspects the spammish repetition')).toString(16)).toBe('fbcea83c8a378bf1');
  });

  it('matches xxhsum on every tail length and on large inputs', () => {
    const lengths = [...Array.from({ length: 80 }, (_, i) => i), 255, 4096, 16384, 100_003];
    const inputs = lengths.map((n, i) => pattern(n, i + 1));
    // One xxhsum run hashes every input (as files named by their index).
    const expected = inputs.map((data) => xxhsum(data));
    inputs.forEach((data, i) => expect(xxhash64(data).toString(16).padStart(16, '0'), `length ${lengths[i]}`).toBe(expected[i]));
    // A sub-range hashes as the bytes alone.
    const big = pattern(5000, 99);
    expect(xxhash64(big, 100, 4196)).toBe(xxhash64(Buffer.from(big.subarray(100, 4196))));
  });
});
