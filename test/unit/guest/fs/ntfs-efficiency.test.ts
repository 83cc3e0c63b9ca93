// How the NTFS reader uses its volume: MFT records read in windows (a directory's worth of stats
// costs a few reads, not one per record), index blocks read in batches by a listing and kept for
// the lookups that follow, large file reads mapped onto one volume read per contiguous run, and no
// byte read twice for one call.
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ntfsDriver } from '../../../../src/guest/fs/ntfs/index.js';
import { ImageReader, mkntfs, pattern, tempDir, withNtfs3g } from '../../../helpers/ntfs-images.js';

const MiB = 1024 * 1024;
let dir: string;
let image: string;

beforeAll(async () => {
  dir = tempDir('ntfseff');
  image = mkntfs(join(dir, 'e.img'), { size: 256 * MiB });
  await withNtfs3g(image, [], (mnt) => {
    mkdirSync(join(mnt, 'many'));
    for (let i = 0; i < 3000; i++) writeFileSync(join(mnt, 'many', `f-${i}`), 'x');
    const fd = openSync(join(mnt, 'big.bin'), 'w');
    for (let i = 0; i < 64; i++) writeSync(fd, pattern(MiB, i));
    closeSync(fd);
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ntfs reader I/O', () => {
  it('stats a 3000-entry directory with a few dozen volume reads and looks every name up from cached index blocks', async () => {
    const reader = new ImageReader(image);
    const fs = await ntfsDriver.open(reader, { name: 'e' });
    const many = (await fs.lookup(fs.rootId, Buffer.from('many')))!.id;
    const before = reader.reads;
    const entries = [];
    for await (const entry of fs.readdir(many)) entries.push(entry);
    for (const entry of entries) expect((await fs.stat(entry.id)).size).toBe(1);
    expect(entries).toHaveLength(3000);
    // 3000 records of 1 KiB are 47 windows of 64 KiB; the index is ~40 blocks of 4 KiB in batches of 32.
    expect(reader.reads - before).toBeLessThan(60);
    const afterWalk = reader.reads;
    for (const entry of entries) expect((await fs.lookup(many, entry.name))?.id).toBe(entry.id);
    // The listing left every index block in the cache: the lookups descend without reading.
    expect(reader.reads - afterWalk).toBeLessThan(5);
    reader.close();
  });

  it('reads a 64 MiB file in one call with one volume read per run and no byte twice', async () => {
    const reader = new ImageReader(image);
    const fs = await ntfsDriver.open(reader, { name: 'e' });
    const big = (await fs.lookup(fs.rootId, Buffer.from('big.bin')))!.id;
    const extents = await fs.extents(big, 0, 64 * MiB);
    const ranges = extents.flatMap((e) => e.volumeRanges ?? []);
    const before = { reads: reader.reads, bytes: reader.bytesRead };
    const data = await fs.read(big, 0, 64 * MiB);
    expect(reader.reads - before.reads).toBe(ranges.length);
    expect(reader.bytesRead - before.bytes).toBe(64 * MiB);
    for (let i = 0; i < 64; i += 21) expect(data.subarray(i * MiB, (i + 1) * MiB).equals(pattern(MiB, i))).toBe(true);
    // ntfs-3g gives a fresh 64 MiB file on an empty volume a handful of runs at most.
    expect(ranges.length).toBeLessThanOrEqual(4);
    reader.close();
  });
});
