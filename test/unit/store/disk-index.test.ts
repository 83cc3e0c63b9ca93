import { describe, expect, it } from 'vitest';
import { decodeDiskIndex, DigestList, encodeDiskIndex } from '../../../src/store/disk-index.js';

const digest = (n: number) => n.toString(16).padStart(64, '0');

describe('disk index', () => {
  it('round-trips digests and holes, with a short last chunk', () => {
    const digests = new DigestList();
    digests.set(0, digest(1));
    digests.set(2, digest(3));
    const file = encodeDiskIndex({ chunkSize: 65536, diskSize: 3 * 65536 - 100, digests });
    const decoded = decodeDiskIndex(file, 'test');
    expect(decoded.diskSize).toBe(3 * 65536 - 100);
    expect(decoded.digests.get(0)).toBe(digest(1));
    expect(decoded.digests.get(1)).toBeUndefined();
    expect(decoded.digests.get(2)).toBe(digest(3));
  });

  it('refuses an index whose count does not match its size', () => {
    const digests = new DigestList();
    digests.set(0, digest(1));
    expect(() => encodeDiskIndex({ chunkSize: 65536, diskSize: 3 * 65536, digests })).toThrow(/needs 3/);
    const file = encodeDiskIndex({ chunkSize: 65536, diskSize: 65536, digests });
    expect(() => decodeDiskIndex(file.subarray(0, file.length - 1), 'x')).toThrow(/wrong length/);
    const bad = Buffer.from(file);
    bad[0] = 0x41;
    expect(() => decodeDiskIndex(bad, 'x')).toThrow(/bad magic/);
  });
});
