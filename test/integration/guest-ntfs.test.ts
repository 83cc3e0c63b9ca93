// The NTFS reader against ntfs-3g: each image is made by mkntfs with one geometry, filled through an
// ntfs-3g mount (names, trees, sparse, compressed and fragmented files, hard links, symlinks of
// every kind, streams, attributes, exact times), then mounted read-only by ntfs-3g and walked side
// by side with the reader. Any difference in listings, metadata, times, targets or bytes fails.
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuestFileSystem } from '../../src/core/guest-filesystem.js';
import { openFileSystem } from '../../src/guest/fs/drivers.js';
import { findPartition, PartitionReader, readPartitionTable } from '../../src/guest/index.js';
import { compareWithKernel } from '../helpers/guest-fs-oracle.js';
import {
  compareAttributes,
  ImageReader,
  makeFragmentedMft,
  makeNtfsTree,
  makeWslSpecials,
  MiB,
  mftRunCount,
  mkntfs,
  ntfsExpectations,
  ntfsFacts,
  ntfsinfoAttributes,
  ntfsLinkTarget,
  resolvePath,
  run,
  tempDir,
  TREE,
  withNtfs3g,
  type NtfsTreeOptions,
} from '../helpers/ntfs-images.js';

let dir: string;
beforeAll(() => {
  dir = tempDir('ntfsit');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Variant {
  readonly name: string;
  readonly size: number;
  readonly clusterSize?: number;
  readonly tree: NtfsTreeOptions;
}

const VARIANTS: Variant[] = [
  {
    name: '4 KiB clusters, 3000-entry directory, compressed, fragmented and heavily linked files',
    size: 128 * MiB,
    tree: { manyEntries: 3000, compressed: true, fragments: 3000, hardLinks: 40 },
  },
  {
    name: '512-byte clusters (records and index blocks span clusters)',
    size: 96 * MiB,
    clusterSize: 512,
    tree: { manyEntries: 800, compressed: true },
  },
  { name: '64 KiB clusters (index VCNs in 512-byte units)', size: 256 * MiB, clusterSize: 65536, tree: { manyEntries: 800 } },
];

async function fill(image: string, tree: NtfsTreeOptions): Promise<void> {
  await withNtfs3g(image, ['streams_interface=windows'], (mnt) => makeNtfsTree(mnt, tree));
  await withNtfs3g(image, ['special_files=wsl'], (mnt) => makeWslSpecials(mnt));
}

/** Walks the volume against ntfs-3g (read-only) and checks what the generic oracle does not. */
async function compareVolume(fs: GuestFileSystem, image: string, tree: NtfsTreeOptions): Promise<void> {
  await withNtfs3g(image, ['ro', 'streams_interface=windows'], async (mnt) => {
    const facts = ntfsFacts(mnt);
    const report = await compareWithKernel(fs, mnt, {
      expected: ntfsExpectations(facts, mnt),
      linkTarget: ntfsLinkTarget(mnt),
      compressedExtents: true,
    });
    expect(report.differences).toEqual([]);
    expect(report.files).toBeGreaterThan(tree.manyEntries ?? 0);
    expect(report.symlinks).toBeGreaterThanOrEqual(8);
    expect(await compareAttributes(fs, mnt, facts)).toEqual([]);

    // Alternate data streams: reachable as `file:stream`, not listed, the same bytes as ntfs-3g's.
    const names: string[] = [];
    for await (const e of fs.readdir(fs.rootId)) names.push(e.name.toString());
    expect(names.filter((n) => n.includes(':'))).toEqual([]);
    for (const stream of [...Object.keys(TREE.streams), 'big-stream']) {
      const path = `${TREE.streamFile}:${stream}`;
      const id = (await resolvePath(fs, path))!;
      expect(id).toBeDefined();
      const st = await fs.stat(id);
      expect(st.type).toBe('file');
      expect(st.size).toBe(statSync(join(mnt, path)).size);
      expect((await fs.read(id, 0, st.size)).equals(readFileSync(join(mnt, path)))).toBe(true);
    }
    const onDir = (await resolvePath(fs, 'dir-with-stream:on-a-dir'))!;
    expect((await fs.read(onDir, 0, 1000)).toString()).toBe(readFileSync(join(mnt, 'dir-with-stream:on-a-dir'), 'utf8'));
    expect(await resolvePath(fs, `${TREE.streamFile}:no-such-stream`)).toBeUndefined();
    // A stream name matches ignoring case, as Windows (and ntfs-3g) match them.
    expect(await resolvePath(fs, `${TREE.streamFile}:ZONE.IDENTIFIER`)).toBe(await resolvePath(fs, `${TREE.streamFile}:Zone.Identifier`));

    // The 8.3 alias resolves to the same file but is not listed.
    const alias = await resolvePath(fs, 'ALONGF~1.TEX');
    expect(existsSync(join(mnt, 'ALONGF~1.TEX'))).toBe(true);
    expect(alias).toBe(await resolvePath(fs, TREE.dosNamed));
    expect(names).not.toContain('ALONGF~1.TEX');
    // The metadata files are hidden from the root listing but reachable, as in ntfs-3g.
    expect(names.filter((n) => n.startsWith('$'))).toEqual([]);
    expect((await fs.stat((await resolvePath(fs, '$MFT'))!)).size).toBe(statSync(join(mnt, '$MFT')).size);

    if (tree.compressed) {
      const id = (await resolvePath(fs, TREE.compressedFile))!;
      const st = await fs.stat(id);
      expect(st.attributes).toContain('compressed');
      const extents = await fs.extents(id, 0, st.size);
      const stored = extents.reduce((n, e) => n + (e.volumeRanges ?? []).reduce((m, r) => m + r.length, 0), 0);
      // Text compresses: the volume ranges (the stored clusters) are a fraction of the file.
      expect(stored).toBeLessThan(st.size / 4);
      // Reads that start and end inside compression units give the same bytes as ntfs-3g.
      for (const name of ['text.txt', 'mixed.bin', 'sparse-compressed.bin']) {
        const path = join(TREE.compressedDir, name);
        const file = (await resolvePath(fs, path))!;
        const want = readFileSync(join(mnt, path));
        const pieces: Buffer[] = [];
        for (let at = 0; at < want.length; at += 10_007) pieces.push(await fs.read(file, at, 10_007));
        expect(Buffer.concat(pieces).equals(want)).toBe(true);
      }
    }
  });
}

describe.each(VARIANTS)('ntfs reader vs ntfs-3g: $name', (variant) => {
  it('reads every file, directory, link, stream and attribute as ntfs-3g does', async () => {
    const image = join(dir, `${variant.name.replace(/[^a-z0-9]+/gi, '-')}.img`);
    mkntfs(image, { size: variant.size, clusterSize: variant.clusterSize, label: 'Cairn Test' });
    await fill(image, variant.tree);
    if (variant.tree.fragments) {
      // The fragmented file's runlist outgrew its record: $DATA sits in extension records.
      const attrs = ntfsinfoAttributes(image, `/${TREE.fragmented}`);
      expect(attrs.some((a) => a.startsWith('$ATTRIBUTE_LIST'))).toBe(true);
      expect(new Set(attrs.filter((a) => a.startsWith('$DATA')).map((a) => a.split('@')[1])).size).toBeGreaterThan(1);
      // So did the names of the much-linked file.
      expect(ntfsinfoAttributes(image, `/${TREE.linked}`).filter((a) => a.startsWith('$FILE_NAME')).length).toBeGreaterThan(40);
      // Many small files after the first ones grew the MFT in pieces.
      expect(mftRunCount(image)).toBeGreaterThan(1);
    }
    const reader = new ImageReader(image);
    try {
      const fs = await openFileSystem(reader, { name: variant.name });
      expect(fs.type).toBe('ntfs');
      expect(fs.label).toBe('Cairn Test');
      expect(fs.uuid).toBe(/UUID="([0-9A-F]+)"/.exec(run('blkid', ['-p', image]))![1]);
      await compareVolume(fs, image, variant.tree);
    } finally {
      reader.close();
      rmSync(image, { force: true });
    }
  });
});

describe('ntfs reader on a partitioned disk', () => {
  it('opens the filesystem in a GPT partition of type Microsoft basic data', async () => {
    const part = join(dir, 'part.img');
    mkntfs(part, { size: 40 * MiB, label: 'Cairn Test' });
    await fill(part, { manyEntries: 100 });
    const disk = join(dir, 'disk.img');
    run('truncate', ['-s', String(64 * MiB), disk]);
    run('sgdisk', ['-o', '-n', '1:2048:+40M', '-t', '1:0700', disk]);
    run('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
    const reader = new ImageReader(disk);
    try {
      const entry = findPartition(await readPartitionTable(reader), 1);
      expect(entry.typeName).toMatch(/Microsoft basic data/i);
      const fs = await openFileSystem(new PartitionReader(reader, entry.offset, entry.length), { name: 'disk/p1' });
      await compareVolume(fs, part, { manyEntries: 100 });
    } finally {
      reader.close();
    }
  });
});

describe('ntfs reader on an MFT in thousands of pieces', () => {
  it("follows $MFT's own attribute list to the extension records that map the rest of the MFT", async () => {
    const image = join(dir, 'mft-list.img');
    mkntfs(image, { size: 64 * MiB });
    await withNtfs3g(image, [], (mnt) => makeFragmentedMft(mnt));
    const attrs = ntfsinfoAttributes(image, '/$MFT');
    expect(attrs).toContain('$ATTRIBUTE_LIST@0');
    expect(attrs.filter((a) => a.startsWith('$DATA') && a !== '$DATA@0').length).toBeGreaterThan(0);
    const reader = new ImageReader(image);
    try {
      const fs = await openFileSystem(reader, { name: 'mft-list' });
      await withNtfs3g(image, ['ro'], async (mnt) => {
        const facts = ntfsFacts(mnt);
        const report = await compareWithKernel(fs, mnt, { expected: ntfsExpectations(facts, mnt), lookups: false });
        expect(report.differences).toEqual([]);
        expect(report.files).toBeGreaterThan(12_000);
      });
    } finally {
      reader.close();
      rmSync(image, { force: true });
    }
  });
});
