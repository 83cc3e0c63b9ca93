import { describe, expect, it } from 'vitest';
import { chunkUses, decodeDiskIndex, DigestList, encodeDiskIndex, type DiskIndex, type SlotPatch } from '../../../src/store/disk-index.js';
import { indexChangeMap } from '../../../src/restore/change-map.js';

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

  const patched = (): DiskIndex => {
    const digests = new DigestList();
    digests.set(0, digest(1));
    digests.set(1, digest(2));
    digests.set(2, undefined);
    const patches = new Map<number, SlotPatch[]>([
      [1, [{ start: 4096, length: 8192, digest: digest(7), chunkOffset: 0 }]],
      [
        2,
        [
          { start: 0, length: 100, digest: undefined, chunkOffset: 0 },
          { start: 200, length: 300, digest: digest(8), chunkOffset: 100 },
        ],
      ],
    ]);
    return { chunkSize: 65536, diskSize: 3 * 65536 - 100, digests, patches };
  };

  it('writes version 1 without patches and version 2 with them, and round-trips the patch table', () => {
    const plain = encodeDiskIndex({ chunkSize: 65536, diskSize: 65536, digests: DigestList.fromBuffer(Buffer.alloc(32, 1)) });
    expect(plain[7]).toBe(1);
    const index = patched();
    const file = encodeDiskIndex(index);
    expect(file[7]).toBe(2);
    const decoded = decodeDiskIndex(file, 'test');
    expect(decoded.patches).toEqual(index.patches);
    expect(decoded.digests.get(1)).toBe(digest(2));
    expect([...chunkUses(decoded)].map((use) => [use.digest.slice(-1), use.offset])).toEqual([
      ['1', 0],
      ['2', 65536],
      ['7', 65536 + 4096],
      ['8', 2 * 65536 + 200],
    ]);
  });

  it('refuses a damaged patch table with a clear reason', () => {
    const file = encodeDiskIndex(patched());
    const table = 32 + 3 * 32;
    expect(() => decodeDiskIndex(file.subarray(0, file.length - 5), 'x')).toThrow(/truncated|wrong length/);
    const outOfOrder = Buffer.from(file);
    outOfOrder.writeBigUInt64BE(5n, table + 8); // first patched slot beyond the disk
    expect(() => decodeDiskIndex(outOfOrder, 'x')).toThrow(/beyond the disk/);
    const tooLong = Buffer.from(file);
    tooLong.writeUInt32BE(70000, table + 8 + 16 + 4); // patch length past the slot
    expect(() => decodeDiskIndex(tooLong, 'x')).toThrow(/does not fit slot/);
    const badFlag = Buffer.from(file);
    badFlag.writeUInt32BE(1, table + 8 + 16 + 12); // "zeros" with a digest
    expect(() => decodeDiskIndex(badFlag, 'x')).toThrow(/zero flag/);
    const version = Buffer.from(file);
    version[7] = 3;
    expect(() => decodeDiskIndex(version, 'x')).toThrow(/unknown format version 3/);
  });

  it('reports only the added patches as changed when a point is its base plus patches', async () => {
    const base = patched();
    const next = patched();
    const nextPatches = next.patches as Map<number, SlotPatch[]>;
    nextPatches.set(1, [...nextPatches.get(1)!, { start: 32768, length: 4096, digest: digest(9), chunkOffset: 0 }]);
    nextPatches.set(0, [{ start: 0, length: 512, digest: digest(9), chunkOffset: 4096 }]);
    const map = indexChangeMap(next, base);
    expect(await map.changes(0, next.diskSize)).toEqual([
      { offset: 0, length: 512, changed: true },
      { offset: 512, length: 65536 + 32768 - 512, changed: false },
      { offset: 65536 + 32768, length: 4096, changed: true },
      { offset: 65536 + 36864, length: next.diskSize - 65536 - 36864, changed: false },
    ]);
    // Against an unrelated older point (different chunk in slot 1), the whole slot is changed.
    const other = patched();
    other.digests.set(1, digest(5));
    expect(await indexChangeMap(next, other).changes(65536, 65536)).toEqual([{ offset: 65536, length: 65536, changed: true }]);
    // Patches removed relative to the older point also mark the whole slot.
    expect(await indexChangeMap(base, next).changes(0, 65536)).toEqual([{ offset: 0, length: 65536, changed: true }]);
  });
});
