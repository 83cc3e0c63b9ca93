// How the btrfs reader uses its volume: a directory's listing and stats read each leaf once (the
// tree block cache), lookups by name hash cost no more reads after that, a large file read is
// one volume read per extent (no data byte twice) plus its checksum leaves, and a compressed file
// read in FUSE-sized pieces reads each compressed extent once.
import { closeSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { btrfsDriver } from '../../../../src/guest/fs/btrfs/index.js';
import { compressibleText, dumpTree, mkfsBtrfs, withBtrfsMount } from '../../../helpers/btrfs-images.js';
import { ImageReader, pattern, run, tempDir } from '../../../helpers/ext4-images.js';

const MiB = 1024 * 1024;
const NODE = 16384;
let dir: string;
let image: string;

beforeAll(async () => {
  dir = tempDir('btrfseff');
  image = mkfsBtrfs(join(dir, 'e.img'), { size: 512 * MiB });
  await withBtrfsMount(image, [], (mnt) => {
    run('mkdir', [join(mnt, 'many')]);
    for (let i = 0; i < 3000; i++) writeFileSync(join(mnt, 'many', `f-${i}`), 'x');
    const fd = openSync(join(mnt, 'big.bin'), 'w');
    for (let i = 0; i < 64; i++) writeSync(fd, pattern(MiB, i));
    closeSync(fd);
    writeFileSync(join(mnt, 'zstd.txt'), '');
    run('btrfs', ['property', 'set', join(mnt, 'zstd.txt'), 'compression', 'zstd']);
    writeFileSync(join(mnt, 'zstd.txt'), compressibleText(4 * MiB, 1));
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('btrfs reader I/O', () => {
  it('lists and stats a 3000-entry directory reading each FS tree block at most once, and looks every name up reading each DIR_ITEM leaf once', async () => {
    const reader = new ImageReader(image);
    const fs = await btrfsDriver.open(reader, { name: 'e' });
    const many = (await fs.lookup(fs.rootId, Buffer.from('many')))!.id;
    const before = reader.reads;
    const entries = [];
    for await (const entry of fs.readdir(many)) entries.push(entry);
    for (const entry of entries) expect((await fs.stat(entry.id)).size).toBe(1);
    expect(entries).toHaveLength(3000);
    // The FS tree's blocks as dump-tree lists them: the walk reads each of them at most once.
    const fsBlocks = (dumpTree(image, ['-t', 'fs']).match(/^(leaf|node) \d+ (items|level)/gm) ?? []).length;
    expect(reader.reads - before).toBeLessThanOrEqual(fsBlocks);
    const afterWalk = reader.reads;
    for (const entry of entries) expect((await fs.lookup(many, entry.name))?.id).toBe(entry.id);
    // DIR_ITEMs (keyed by name hash) sort before the DIR_INDEX items the listing read: 3000 of them
    // fill a dozen leaves of their own, each read once for 3000 lookups.
    expect(reader.reads - afterWalk).toBeLessThan(25);
    reader.close();
  });

  it('reads a 64 MiB file with one volume read per extent, no data byte twice, and few checksum leaves', async () => {
    const reader = new ImageReader(image);
    const fs = await btrfsDriver.open(reader, { name: 'e' });
    const big = (await fs.lookup(fs.rootId, Buffer.from('big.bin')))!.id;
    const ranges = (await fs.extents(big, 0, 64 * MiB)).flatMap((e) => e.volumeRanges ?? []);
    const before = { reads: reader.reads, bytes: reader.bytesRead };
    const data = await fs.read(big, 0, 64 * MiB);
    const metadataReads = reader.reads - before.reads - ranges.length;
    // 64 MiB of 4 KiB sectors carry 64 KiB of crc32c sums: a handful of 16 KiB csum leaves.
    expect(metadataReads).toBeLessThanOrEqual(12);
    expect(reader.bytesRead - before.bytes).toBe(64 * MiB + metadataReads * NODE);
    for (let i = 0; i < 64; i += 21) expect(data.subarray(i * MiB, (i + 1) * MiB).equals(pattern(MiB, i))).toBe(true);
    expect(ranges.length).toBeLessThanOrEqual(64);
    reader.close();
  });

  it('reads a compressed file in 128 KiB pieces, each compressed extent once', async () => {
    const reader = new ImageReader(image);
    const fs = await btrfsDriver.open(reader, { name: 'e' });
    const id = (await fs.lookup(fs.rootId, Buffer.from('zstd.txt')))!.id;
    const extents = await fs.extents(id, 0, 4 * MiB);
    const runs = extents.flatMap((e) => e.volumeRanges ?? []);
    const compressedBytes = runs.reduce((n, r) => n + r.length, 0);
    expect(compressedBytes).toBeLessThan(MiB);
    const before = reader.bytesRead;
    const expected = compressibleText(4 * MiB, 1);
    for (let at = 0; at < 4 * MiB; at += 128 * 1024) {
      expect((await fs.read(id, at, 128 * 1024)).equals(expected.subarray(at, at + 128 * 1024))).toBe(true);
    }
    // Every compressed run once, plus a few extent and checksum leaves.
    expect(reader.bytesRead - before).toBeLessThanOrEqual(compressedBytes + 16 * NODE);
    reader.close();
  });
});
