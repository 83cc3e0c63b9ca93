// The ext2/3/4 reader against the kernel: each image is made by mkfs.ext4 with one feature set,
// populated through a kernel loop mount (or mke2fs -d), then loop-mounted read-only and walked side
// by side with the reader. Any difference in listings, metadata, times, targets or bytes fails.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileSystem } from '../../src/guest/fs/drivers.js';
import { PartitionReader } from '../../src/guest/index.js';
import { ImageReader, makeTree, mkfs, run, tempDir, withMount, type TreeOptions } from '../helpers/ext4-images.js';
import { compareWithKernel } from '../helpers/guest-fs-oracle.js';

const MiB = 1024 * 1024;
let dir: string;
beforeAll(() => {
  dir = tempDir('ext4it');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface Variant {
  readonly name: string;
  readonly args: string[];
  readonly type: 'ext2' | 'ext3' | 'ext4';
  /** Populate with mke2fs -d instead of through the kernel. */
  readonly viaMkfs?: boolean;
  readonly tree: TreeOptions;
  readonly features?: RegExp;
  readonly size?: number;
  /** Some inode must live in this group or beyond (descriptor blocks past the first meta group get read). */
  readonly reachGroup?: number;
}

const full: TreeOptions = { manyEntries: 3000, hugeSparse: true, fallocate: true, specials: true, invalidUtf8: true, extremeTimes: true };
const VARIANTS: Variant[] = [
  {
    name: 'default ext4 (64bit, metadata_csum, flex_bg), 4 KiB',
    args: ['-b', '4096'],
    type: 'ext4',
    tree: full,
    features: /metadata_csum/,
  },
  { name: 'ext4 without 64bit (32-byte descriptors)', args: ['-b', '4096', '-O', '^64bit'], type: 'ext4', tree: full },
  { name: 'ext4 with inline_data', args: ['-b', '4096', '-O', 'inline_data'], type: 'ext4', tree: full, features: /inline_data/ },
  {
    name: 'ext4 with meta_bg, 1 KiB blocks, 64 groups',
    args: ['-b', '1024', '-O', 'meta_bg,^resize_inode'],
    type: 'ext4',
    tree: { ...full, topDirs: 40 },
    features: /meta_bg/,
    size: 512 * MiB,
    reachGroup: 16,
  },
  {
    name: 'ext4 with meta_bg and sparse_super2, 32-byte descriptors, 1 KiB',
    args: ['-b', '1024', '-O', 'meta_bg,^resize_inode,sparse_super2,^64bit'],
    type: 'ext4',
    tree: { ...full, topDirs: 40 },
    features: /sparse_super2/,
    size: 768 * MiB,
    reachGroup: 32,
  },
  {
    name: 'ext4 without metadata_csum (gdt_csum), 1 KiB',
    args: ['-b', '1024', '-O', '^metadata_csum,uninit_bg'],
    type: 'ext4',
    tree: full,
  },
  { name: 'ext3 (block map, journal), 1 KiB', args: ['-t', 'ext3', '-b', '1024'], type: 'ext3', tree: { ...full, fallocate: false } },
  {
    name: 'ext2, 4 KiB, 128-byte inodes',
    args: ['-t', 'ext2', '-b', '4096', '-I', '128'],
    type: 'ext2',
    tree: { ...full, fallocate: false, extremeTimes: false },
  },
  {
    name: 'ext4 bigalloc (16 KiB clusters)',
    args: ['-b', '4096', '-O', 'bigalloc', '-C', '16384'],
    type: 'ext4',
    tree: full,
    features: /bigalloc/,
  },
  { name: 'ext4 populated by mke2fs -d', args: ['-b', '4096'], type: 'ext4', viaMkfs: true, tree: { ...full, fallocate: false } },
  {
    name: 'ext4 inline_data populated by mke2fs -d, 1 KiB',
    args: ['-b', '1024', '-O', 'inline_data'],
    type: 'ext4',
    viaMkfs: true,
    tree: { ...full, fallocate: false },
  },
  {
    name: 'ext2 populated by mke2fs -d (indirect blocks), 1 KiB',
    args: ['-t', 'ext2', '-b', '1024'],
    type: 'ext2',
    viaMkfs: true,
    tree: { ...full, fallocate: false },
  },
];

async function buildVariant(variant: Variant, image: string): Promise<void> {
  if (variant.viaMkfs) {
    const src = tempDir('ext4src');
    try {
      makeTree(src, variant.tree);
      mkfs(image, { size: variant.size ?? 128 * MiB, args: variant.args, from: src });
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
    return;
  }
  mkfs(image, { size: variant.size ?? 128 * MiB, args: variant.args });
  await withMount(image, false, (mnt) => makeTree(mnt, variant.tree));
}

describe.each(VARIANTS)('ext4 reader vs the kernel: $name', (variant) => {
  it('reads every file, directory, link and device as the kernel does', async () => {
    const image = join(dir, `${variant.name.replace(/[^a-z0-9]+/gi, '-')}.img`);
    await buildVariant(variant, image);
    if (variant.features) expect(run('dumpe2fs', ['-h', image])).toMatch(variant.features);
    const reader = new ImageReader(image);
    try {
      const fs = await openFileSystem(reader, { name: variant.name });
      expect(fs.type).toBe(variant.type);
      const report = await withMount(image, true, (mnt) => compareWithKernel(fs, mnt));
      expect(report.differences).toEqual([]);
      expect(report.files).toBeGreaterThan(variant.tree.manyEntries ?? 0);
      expect(report.symlinks).toBeGreaterThanOrEqual(3);
      if (variant.reachGroup !== undefined) {
        const perGroup = Number(/Inodes per group:\s+(\d+)/.exec(run('dumpe2fs', ['-h', image]))![1]);
        let highest = 0n;
        for await (const entry of fs.readdir(fs.rootId)) if (entry.id > highest) highest = entry.id;
        expect(Math.floor(Number(highest - 1n) / perGroup)).toBeGreaterThanOrEqual(variant.reachGroup);
      }
    } finally {
      reader.close();
      rmSync(image, { force: true });
    }
  });
});

describe('ext4 reader on a partitioned disk', () => {
  it('opens the filesystem in p1 of an sfdisk-made disk', async () => {
    const disk = join(dir, 'disk.img');
    mkfs(disk, { size: 64 * MiB, args: [] });
    rmSync(disk);
    run('truncate', ['-s', String(64 * MiB), disk]);
    execSfdisk(disk);
    const part = join(dir, 'p1.img');
    mkfs(part, { size: 40 * MiB, args: ['-b', '4096'] });
    await withMount(part, false, (mnt) => makeTree(mnt, { manyEntries: 100 }));
    run('dd', [`if=${part}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
    const reader = new ImageReader(disk);
    try {
      const fs = await openFileSystem(new PartitionReader(reader, MiB, 40 * MiB), { name: 'disk/p1' });
      const report = await withMount(part, true, (mnt) => compareWithKernel(fs, mnt));
      expect(report.differences).toEqual([]);
    } finally {
      reader.close();
    }
  });
});

function execSfdisk(disk: string): void {
  run('sh', ['-c', `printf 'label: dos\\nstart=2048, size=81920, type=83\\n' | sfdisk -q --no-reread --no-tell-kernel ${disk}`]);
}
