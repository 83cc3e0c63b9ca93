// How the ext4 reader uses its volume: inode tables read in windows (a directory's worth of stats
// costs a few reads, not one per inode), large file reads mapped onto one volume read per
// contiguous run, and no block read twice for one call.
import { closeSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ext4Driver } from '../../../../src/guest/fs/ext4/index.js';
import { ImageReader, mkfs, pattern, run, tempDir, withMount } from '../../../helpers/ext4-images.js';

const MiB = 1024 * 1024;
let dir: string;
let image: string;

beforeAll(async () => {
  dir = tempDir('ext4eff');
  image = mkfs(join(dir, 'e.img'), { size: 256 * MiB, args: ['-b', '4096'] });
  await withMount(image, false, (mnt) => {
    run('mkdir', [join(mnt, 'many')]);
    for (let i = 0; i < 3000; i++) writeFileSync(join(mnt, 'many', `f-${i}`), 'x');
    const fd = openSync(join(mnt, 'big.bin'), 'w');
    for (let i = 0; i < 64; i++) writeSync(fd, pattern(MiB, i));
    closeSync(fd);
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ext4 reader I/O', () => {
  it('stats a 3000-entry directory with a few dozen volume reads and looks every name up through the htree', async () => {
    const reader = new ImageReader(image);
    const fs = await ext4Driver.open(reader, { name: 'e' });
    const many = (await fs.lookup(fs.rootId, Buffer.from('many')))!.id;
    const before = reader.reads;
    const entries = [];
    for await (const entry of fs.readdir(many)) entries.push(entry);
    for (const entry of entries) expect((await fs.stat(entry.id)).size).toBe(1);
    expect(entries).toHaveLength(3000);
    // 3000 inodes of 256 bytes are 12 windows of 64 KiB; the directory is ~20 blocks in a few batches.
    expect(reader.reads - before).toBeLessThan(40);
    const afterWalk = reader.reads;
    for (const entry of entries) expect((await fs.lookup(many, entry.name))?.id).toBe(entry.id);
    // Each lookup reads at most the root and one leaf, and those are cached after the first time.
    expect(reader.reads - afterWalk).toBeLessThan(40);
    reader.close();
  });

  it('reads a 64 MiB file in one call with one volume read per extent and no byte twice', async () => {
    const reader = new ImageReader(image);
    const fs = await ext4Driver.open(reader, { name: 'e' });
    const big = (await fs.lookup(fs.rootId, Buffer.from('big.bin')))!.id;
    const extents = await fs.extents(big, 0, 64 * MiB);
    const ranges = extents.flatMap((e) => e.volumeRanges ?? []);
    const before = { reads: reader.reads, bytes: reader.bytesRead };
    const data = await fs.read(big, 0, 64 * MiB);
    expect(reader.reads - before.reads).toBe(ranges.length);
    expect(reader.bytesRead - before.bytes).toBe(64 * MiB);
    for (let i = 0; i < 64; i += 21) expect(data.subarray(i * MiB, (i + 1) * MiB).equals(pattern(MiB, i))).toBe(true);
    // The kernel's allocator gives a fresh 64 MiB file a handful of extents at most.
    expect(ranges.length).toBeLessThanOrEqual(4);
    reader.close();
  });
});
