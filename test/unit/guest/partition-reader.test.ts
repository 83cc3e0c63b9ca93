import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isCairnError } from '../../../src/core/errors.js';
import { PartitionReader, openPartition } from '../../../src/guest/index.js';
import { FileBlockReader, MiB, makeTempDir, sfdiskImage, writeAt } from '../../helpers/disk-images.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir('partreader');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('PartitionReader', () => {
  it('serves exactly the partition bytes, and zero/data extents shifted into the partition', async () => {
    const path = sfdiskImage(join(dir, 'd.img'), 8 * MiB, 'label: dos\n,2M,83\n,,83\n');
    const pattern = Buffer.alloc(100_000);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7) & 0xff;
    writeAt(path, 3 * MiB + 4096, pattern);
    const disk = new FileBlockReader(path);
    const { entry, reader } = await openPartition(disk, 2);
    expect(entry.offset).toBe(3 * MiB);
    expect(reader.size).toBe(8 * MiB - 3 * MiB);
    const whole = readFileSync(path);
    // Buffer.equals: vitest's deep equality takes seconds per MiB on a busy machine.
    expect((await reader.read(0, reader.size)).equals(whole.subarray(3 * MiB))).toBe(true);
    expect((await reader.read(4096, pattern.length)).equals(pattern)).toBe(true);
    const extents = await reader.allocation(0, 256 * 1024);
    expect(extents).toEqual([
      { offset: 0, length: 128 * 1024, zero: false },
      { offset: 128 * 1024, length: 128 * 1024, zero: true },
    ]);
  });

  it('refuses reads past the partition end', async () => {
    const path = sfdiskImage(join(dir, 'd.img'), 8 * MiB, 'label: dos\n,2M,83\n,,83\n');
    const reader = new PartitionReader(new FileBlockReader(path), MiB, 2 * MiB);
    const err = await reader.read(2 * MiB - 10, 11).catch((e: unknown) => e);
    expect(isCairnError(err, 'ERR_OUT_OF_RANGE')).toBe(true);
    expect(() => new PartitionReader(new FileBlockReader(path), 7 * MiB, 2 * MiB)).toThrow(/does not fit the disk/);
  });
});
