// The btrfs reader against the kernel: each image is made by mkfs.btrfs with one profile/checksum
// set, filled through a kernel loop mount (compress=zstd|zlib|lzo, subvolumes, a snapshot,
// reflinks, prealloc, sparse files, thousands of entries, devices) or by mkfs --rootdir, then
// loop-mounted read-only and walked side by side with the reader. Any difference in listings,
// metadata, times, targets or bytes fails. dump-tree proves the extents really are compressed.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuestFileSystem, GuestNodeId } from '../../src/core/guest-filesystem.js';
import { BtrfsFileSystem, btrfsInodeNumber, TOP_LEVEL_NAME } from '../../src/guest/fs/btrfs/index.js';
import { openFileSystem } from '../../src/guest/fs/drivers.js';
import { dumpTree, makeBtrfsTree, makeFedoraLayout, mkfsBtrfs, withBtrfsMount, type BtrfsTreeOptions } from '../helpers/btrfs-images.js';
import { ImageReader, run, tempDir } from '../helpers/ext4-images.js';
import { compareWithKernel, type OracleOptions } from '../helpers/guest-fs-oracle.js';

const MiB = 1024 * 1024;
let dir: string;
beforeAll(() => {
  dir = tempDir('btrfsit');
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** btrfs ids are (subvolume, objectid): compare the objectid with st_ino; placeholders' times are the kernel's clock. */
const ORACLE: OracleOptions = {
  inodeNumber: btrfsInodeNumber,
  compressedExtents: true,
  skipField: (_path, field, stat) => btrfsInodeNumber(stat.id) === 2n && /^(mtime|ctime|birthtime)Ns$/.test(field),
};

interface Variant {
  readonly name: string;
  readonly args: string[];
  /** Kernel mount options while filling (compress=…); none means mkfs --rootdir. */
  readonly fill?: string[];
  readonly tree: BtrfsTreeOptions;
  /** dump-tree of the FS tree must show this (compressed extents, explicit holes). */
  readonly dumpShows?: RegExp[];
  /** dump-super must show this. */
  readonly superShows?: RegExp;
}

const full: BtrfsTreeOptions = {
  manyEntries: 3000,
  hugeSparse: true,
  fallocate: true,
  specials: true,
  invalidUtf8: true,
  extremeTimes: true,
  compressible: true,
  reflinks: true,
  subvolumes: true,
};

const VARIANTS: Variant[] = [
  {
    name: 'default mkfs (single data, DUP metadata, no-holes), compress=zstd',
    args: [],
    fill: ['compress=zstd'],
    tree: full,
    dumpShows: [/extent compression 3 \(zstd\)/, /inline extent data size \d+ ram_bytes \d+ compression 3/],
    superShows: /NO_HOLES/,
  },
  {
    name: 'metadata single, compress=zlib',
    args: ['-m', 'single'],
    fill: ['compress=zlib'],
    tree: full,
    dumpShows: [/extent compression 1 \(zlib\)/],
  },
  {
    name: 'data and metadata DUP, compress=lzo',
    args: ['-d', 'dup', '-m', 'dup'],
    fill: ['compress=lzo'],
    tree: full,
    dumpShows: [/extent compression 2 \(lzo\)/, /inline extent data size \d+ ram_bytes \d+ compression 2/],
  },
  {
    name: 'xxhash64 checksums, 4 KiB nodes, compress-force=zstd',
    args: ['--csum', 'xxhash', '-n', '4096'],
    fill: ['compress-force=zstd'],
    tree: { ...full, manyEntries: 1000 },
    superShows: /csum_type\s+1 \(xxhash64\)/,
  },
  {
    name: 'sha256 checksums, without no-holes (explicit hole extents)',
    args: ['--csum', 'sha256', '-O', '^no-holes'],
    fill: [],
    tree: { ...full, manyEntries: 1000 },
    dumpShows: [/extent data disk byte 0 nr 0/],
    superShows: /csum_type\s+2 \(sha256\)/,
  },
  {
    name: 'blake2b checksums, compress=zstd',
    args: ['--csum', 'blake2'],
    fill: ['compress=zstd'],
    tree: { ...full, manyEntries: 500 },
    superShows: /csum_type\s+3 \(blake2\)/,
  },
  {
    name: 'populated by mkfs.btrfs --rootdir',
    args: [],
    // mkfs --rootdir copies files whole (holes become zeros): no huge sparse file.
    tree: { ...full, fallocate: false, subvolumes: false, reflinks: false, hugeSparse: false },
  },
];

async function buildVariant(variant: Variant, image: string): Promise<void> {
  if (!variant.fill) {
    const src = tempDir('btrfssrc');
    try {
      makeBtrfsTree(src, variant.tree);
      mkfsBtrfs(image, { size: 512 * MiB, args: variant.args, from: src });
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
    return;
  }
  mkfsBtrfs(image, { size: 512 * MiB, args: variant.args });
  await withBtrfsMount(image, variant.fill, (mnt) => makeBtrfsTree(mnt, variant.tree));
}

describe.each(VARIANTS)('btrfs reader vs the kernel: $name', (variant) => {
  it('reads every file, directory, link, device and subvolume as the kernel does', async () => {
    const image = join(dir, `${variant.name.replace(/[^a-z0-9]+/gi, '-')}.img`);
    await buildVariant(variant, image);
    const fsDump = dumpTree(image, ['-t', 'fs']);
    for (const shows of variant.dumpShows ?? []) expect(fsDump).toMatch(shows);
    if (variant.superShows) expect(run('btrfs', ['inspect-internal', 'dump-super', image])).toMatch(variant.superShows);
    const reader = new ImageReader(image);
    try {
      const fs = await openFileSystem(reader, { name: variant.name });
      expect(fs.type).toBe('btrfs');
      const report = await withBtrfsMount(image, ['ro'], (mnt) => compareWithKernel(fs, mnt, ORACLE));
      expect(report.differences).toEqual([]);
      expect(report.files).toBeGreaterThan(variant.tree.manyEntries ?? 0);
      expect(report.symlinks).toBeGreaterThanOrEqual(3);
      if (variant.tree.subvolumes) {
        // The snapshot's copy of the nested subvolume is the kernel's empty placeholder (inode 2).
        const snap = (await fs.lookup(fs.rootId, Buffer.from('snapshot')))!;
        const nested = (await fs.lookup(snap.id, Buffer.from('nested')))!;
        expect(btrfsInodeNumber(nested.id)).toBe(2n);
        const inner = (await fs.lookup((await fs.lookup(fs.rootId, Buffer.from('subvol')))!.id, Buffer.from('nested')))!;
        expect(btrfsInodeNumber(inner.id)).toBe(256n);
      }
    } finally {
      reader.close();
      rmSync(image, { force: true });
    }
  });
});

/** A view of `fs` rooted at `rootId`, with `hide` left out of the root's listing (what a kernel mount of one subvolume shows). */
function view(fs: GuestFileSystem, rootId: GuestNodeId, hide?: Buffer): GuestFileSystem {
  return {
    type: fs.type,
    rootId,
    stat: (id) => fs.stat(id),
    lookup: async (dirId, name) => (hide && dirId === rootId && name.equals(hide) ? undefined : fs.lookup(dirId, name)),
    readdir: async function* (dirId) {
      for await (const entry of fs.readdir(dirId)) if (!(hide && dirId === rootId && entry.name.equals(hide))) yield entry;
    },
    read: (id, offset, length) => fs.read(id, offset, length),
    readlink: (id) => fs.readlink(id),
    extents: (id, offset, length) => fs.extents(id, offset, length),
  };
}

describe('btrfs subvolume layouts', () => {
  it("Fedora's layout: subvolumes root and home in the top level (the default), both reachable at their places", async () => {
    const image = mkfsBtrfs(join(dir, 'fedora.img'), { size: 256 * MiB });
    await withBtrfsMount(image, ['compress=zstd:1'], (mnt) => makeFedoraLayout(mnt));
    const reader = new ImageReader(image);
    try {
      const fs = (await openFileSystem(reader, { name: 'fedora' })) as BtrfsFileSystem;
      expect(fs.defaultSubvolume).toBe(5n);
      const names = [];
      for await (const entry of fs.readdir(fs.rootId)) names.push(entry.name.toString());
      expect(names.sort()).toEqual(['home', 'root']);
      const root = (await fs.lookup(fs.rootId, Buffer.from('root')))!;
      const etc = (await fs.lookup(root.id, Buffer.from('etc')))!;
      const fstab = (await fs.lookup(etc.id, Buffer.from('fstab')))!;
      expect((await fs.read(fstab.id, 0, 4096)).toString()).toContain('subvol=root');
      const report = await withBtrfsMount(image, ['ro'], (mnt) => compareWithKernel(fs, mnt, ORACLE));
      expect(report.differences).toEqual([]);
      // What the guest mounts as / and /home: each subvolume alone matches its own kernel mount.
      for (const sub of ['root', 'home']) {
        const id = (await fs.lookup(fs.rootId, Buffer.from(sub)))!.id;
        const one = await withBtrfsMount(image, ['ro', `subvol=${sub}`], (mnt) => compareWithKernel(view(fs, id), mnt, ORACLE));
        expect(one.differences).toEqual([]);
      }
    } finally {
      reader.close();
    }
  });

  it('a default subvolume other than the top level (openSUSE): it is the root, and @top-level leads to subvolume 5', async () => {
    const image = mkfsBtrfs(join(dir, 'suse.img'), { size: 256 * MiB });
    await withBtrfsMount(image, [], (mnt) => {
      run('btrfs', ['-q', 'subvolume', 'create', join(mnt, '@')]);
      run('mkdir', ['-p', join(mnt, '@', '.snapshots', '1')]);
      run('btrfs', ['-q', 'subvolume', 'create', join(mnt, '@', 'home')]);
      run('sh', ['-c', `echo user > ${join(mnt, '@', 'home', 'file')}`]);
      run('btrfs', ['-q', 'subvolume', 'create', join(mnt, '@', '.snapshots', '1', 'snapshot')]);
      makeFedoraLayout(join(mnt, '@', '.snapshots', '1', 'snapshot'));
      const id = /ID (\d+) .* path @\/.snapshots\/1\/snapshot$/m.exec(run('btrfs', ['subvolume', 'list', mnt]))![1]!;
      run('btrfs', ['subvolume', 'set-default', id, mnt]);
    });
    const reader = new ImageReader(image);
    try {
      const fs = (await openFileSystem(reader, { name: 'suse' })) as BtrfsFileSystem;
      expect(fs.defaultSubvolume).toBeGreaterThan(256n);
      const top = (await fs.lookup(fs.rootId, TOP_LEVEL_NAME))!;
      expect(top.type).toBe('dir');
      // The root is what the kernel mounts by default, plus the synthetic entry.
      const asMounted = await withBtrfsMount(image, ['ro'], (mnt) => compareWithKernel(view(fs, fs.rootId, TOP_LEVEL_NAME), mnt, ORACLE));
      expect(asMounted.differences).toEqual([]);
      // @top-level is subvolume 5 as subvolid=5 mounts it; the default subvolume appears there at its
      // real place, under an id other than the root's, so no walk loops.
      const whole = await withBtrfsMount(image, ['ro', 'subvolid=5'], (mnt) => compareWithKernel(view(fs, top.id), mnt, ORACLE));
      expect(whole.differences).toEqual([]);
      expect(whole.dirs).toBeGreaterThan(asMounted.dirs);
    } finally {
      reader.close();
    }
  });
});
