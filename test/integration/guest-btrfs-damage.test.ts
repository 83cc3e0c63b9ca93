// Damaged btrfs images: a flipped byte in a metadata block or a data extent must end in
// ERR_FORMAT_INVALID naming the block or the inode and extent, never in wrong bytes, and the real
// tools must agree it is damaged (btrfs check --readonly, or the kernel's EIO). DUP copies repair
// as the kernel repairs; nodatasum files are read as they are; a damaged primary superblock falls
// back to its mirror; profiles and devices the reader cannot map are refused by name.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import type { GuestFileSystem, GuestNodeId } from '../../src/core/guest-filesystem.js';
import { btrfsDriver } from '../../src/guest/fs/btrfs/index.js';
import { crc32c } from '../../src/util/crc32c.js';
import {
  chunkMappings,
  compressibleText,
  dumpTree,
  fileDiskExtents,
  mkfsBtrfs,
  physicalCopies,
  treeBlocks,
  withBtrfsMount,
} from '../helpers/btrfs-images.js';
import { copyImage, ImageReader, pattern, patchImage, peekImage, run, tempDir } from '../helpers/ext4-images.js';

const MiB = 1024 * 1024;
const NODE = 16384;
let dir: string;
beforeAll(() => {
  dir = tempDir('btrfsdmg');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withFs<T>(image: string, fn: (fs: GuestFileSystem) => Promise<T>): Promise<T> {
  const reader = new ImageReader(image);
  try {
    return await fn(await btrfsDriver.open(reader, { name: 'damaged' }));
  } finally {
    reader.close();
  }
}

/** Opens, lists every directory and reads every file; returns the first CairnError, or undefined. */
async function walkImage(image: string): Promise<CairnError | undefined> {
  return withFs(image, walkAll).catch((err: unknown) => {
    if (err instanceof CairnError) return err;
    throw err;
  });
}

async function walkAll(fs: GuestFileSystem): Promise<CairnError | undefined> {
  try {
    const stack: GuestNodeId[] = [fs.rootId];
    while (stack.length > 0) {
      const id = stack.pop()!;
      for await (const entry of fs.readdir(id)) {
        const st = await fs.stat(entry.id);
        if (st.type === 'dir') stack.push(entry.id);
        if (st.type === 'file') await fs.read(entry.id, 0, st.size);
      }
    }
    return undefined;
  } catch (err) {
    if (err instanceof CairnError) return err;
    throw err;
  }
}

async function fileId(fs: GuestFileSystem, name: string): Promise<GuestNodeId> {
  return (await fs.lookup(fs.rootId, Buffer.from(name)))!.id;
}

function flip(image: string, offset: number): void {
  patchImage(image, offset, [peekImage(image, offset, 1)[0]! ^ 0x5a]);
}

function kernelReadFails(image: string, name: string): boolean {
  return withBtrfsMountSync(image, (mnt) => {
    try {
      readFileSync(join(mnt, name));
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EIO';
    }
  });
}

function withBtrfsMountSync<T>(image: string, fn: (mnt: string) => T): T {
  const mnt = tempDir('btrfsdmgmnt');
  run('mount', ['-t', 'btrfs', '-o', 'loop,ro', image, mnt]);
  try {
    return fn(mnt);
  } finally {
    run('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
}

function btrfsCheckFails(image: string): boolean {
  try {
    execFileSync('btrfs', ['check', '--readonly', image], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
}

/** Inode number of `name` at the top of the FS tree, as the kernel reports it. */
function kernelIno(image: string, name: string): number {
  return withBtrfsMountSync(image, (mnt) => statSync(join(mnt, name)).ino);
}

async function populate(image: string, options: string[] = []): Promise<void> {
  await withBtrfsMount(image, options, (mnt) => {
    writeFileSync(join(mnt, 'plain.bin'), pattern(256 * 1024, 1));
    writeFileSync(join(mnt, 'text.txt'), compressibleText(200 * 1024, 2));
    for (let i = 0; i < 40; i++) writeFileSync(join(mnt, `file-${i}`), `file ${i}\n`);
  });
}

describe('btrfs metadata damage', () => {
  it('a flipped byte in an FS tree leaf (single metadata) is ERR_FORMAT_INVALID naming the block; btrfs check agrees', async () => {
    const base = mkfsBtrfs(join(dir, 'meta-single.img'), { size: 256 * MiB, args: ['-m', 'single'] });
    await populate(base);
    const leaf = treeBlocks(base, ['-t', 'fs']).find((b) => b.level === 0)!;
    const [physical] = physicalCopies(chunkMappings(base), leaf.logical);
    const image = copyImage(base, 'meta-single-bad.img');
    flip(image, physical! + NODE - 200);
    expect(btrfsCheckFails(image)).toBe(true);
    const err = await walkImage(image);
    expect(err?.code).toBe('ERR_FORMAT_INVALID');
    expect(err?.message).toContain(`tree block at ${leaf.logical}`);
    expect(err?.message).toContain('crc32c checksum mismatch');
    // The undamaged image walks cleanly.
    expect(await walkImage(base)).toBeUndefined();
  });

  it('DUP metadata: one damaged copy is read from the other (as the kernel does), both damaged is an error', async () => {
    const base = mkfsBtrfs(join(dir, 'meta-dup.img'), { size: 256 * MiB });
    await populate(base);
    const leaf = treeBlocks(base, ['-t', 'fs']).find((b) => b.level === 0)!;
    const copies = physicalCopies(chunkMappings(base), leaf.logical);
    expect(copies).toHaveLength(2);
    const one = copyImage(base, 'meta-dup-one.img');
    flip(one, copies[0]! + NODE - 200);
    expect(await walkImage(one)).toBeUndefined();
    expect(kernelReadFails(one, 'file-3')).toBe(false);
    const both = copyImage(base, 'meta-dup-both.img');
    flip(both, copies[0]! + NODE - 200);
    flip(both, copies[1]! + NODE - 200);
    const err = await walkImage(both);
    expect(err?.code).toBe('ERR_FORMAT_INVALID');
    expect(err?.message).toContain(`tree block at ${leaf.logical} (copy 1 of 2)`);
    expect(btrfsCheckFails(both)).toBe(true);
  });
});

describe('btrfs data damage', () => {
  it('a flipped byte in a checksummed extent (plain or compressed) is ERR_FORMAT_INVALID naming the inode; the kernel reads EIO', async () => {
    const base = mkfsBtrfs(join(dir, 'data.img'), { size: 256 * MiB });
    await populate(base, ['compress=zstd']);
    const chunks = chunkMappings(base);
    expect(dumpTree(base, ['-t', 'fs'])).toMatch(/extent compression 3 \(zstd\)/);
    for (const name of ['plain.bin', 'text.txt']) {
      const ino = kernelIno(base, name);
      const [extent] = fileDiskExtents(base, ['-t', 'fs'], ino);
      const image = copyImage(base, `data-bad-${name}.img`);
      flip(image, physicalCopies(chunks, extent!.logical)[0]! + 100);
      expect(kernelReadFails(image, name)).toBe(true);
      await withFs(image, async (fs) => {
        const id = await fileId(fs, name);
        const err = await fs.read(id, 0, 1 << 20).then(
          () => undefined,
          (e: unknown) => e as CairnError,
        );
        expect(err?.code).toBe('ERR_FORMAT_INVALID');
        expect(err?.message).toContain(`subvolume 5 inode ${ino} extent at 0`);
        expect(err?.message).toContain('data checksum mismatch');
      });
    }
  });

  it('DUP data: a damaged copy is read from the other', async () => {
    const base = mkfsBtrfs(join(dir, 'data-dup.img'), { size: 256 * MiB, args: ['-d', 'dup'] });
    await populate(base);
    const ino = kernelIno(base, 'plain.bin');
    const [extent] = fileDiskExtents(base, ['-t', 'fs'], ino);
    const copies = physicalCopies(chunkMappings(base), extent!.logical);
    expect(copies).toHaveLength(2);
    const image = copyImage(base, 'data-dup-one.img');
    flip(image, copies[0]! + 100);
    await withFs(image, async (fs) => {
      expect((await fs.read(await fileId(fs, 'plain.bin'), 0, 1 << 20)).equals(pattern(256 * 1024, 1))).toBe(true);
    });
    flip(image, copies[1]! + 100);
    await withFs(image, async (fs) => {
      await expect(fs.read(await fileId(fs, 'plain.bin'), 0, 1 << 20)).rejects.toThrow(/data checksum mismatch.*2 copies tried/);
    });
  });

  it('a nodatasum file is read as stored, damage and all, as the kernel reads it', async () => {
    const base = mkfsBtrfs(join(dir, 'nodatasum.img'), { size: 256 * MiB });
    await populate(base, ['nodatasum']);
    const ino = kernelIno(base, 'plain.bin');
    const [extent] = fileDiskExtents(base, ['-t', 'fs'], ino);
    flip(base, physicalCopies(chunkMappings(base), extent!.logical)[0]! + 100);
    const kernel = withBtrfsMountSync(base, (mnt) => readFileSync(join(mnt, 'plain.bin')));
    expect(kernel.equals(pattern(256 * 1024, 1))).toBe(false);
    await withFs(base, async (fs) => {
      expect((await fs.read(await fileId(fs, 'plain.bin'), 0, 1 << 20)).equals(kernel)).toBe(true);
    });
  });
});

describe('btrfs superblocks, profiles and devices', () => {
  it('a damaged primary superblock falls back to the mirror at 64 MiB; with both damaged the error names the primary', async () => {
    const base = mkfsBtrfs(join(dir, 'super.img'), { size: 256 * MiB });
    await populate(base);
    const image = copyImage(base, 'super-bad.img');
    flip(image, 0x10000 + 0x100);
    expect(run('btrfs', ['inspect-internal', 'dump-super', '-s', '1', image])).toMatch(/csum\s+0x[0-9a-f]+ \[match\]/);
    await withFs(image, async (fs) => {
      expect((await fs.read(await fileId(fs, 'plain.bin'), 0, 1 << 20)).equals(pattern(256 * 1024, 1))).toBe(true);
    });
    flip(image, 0x4000000 + 0x100);
    const reader = new ImageReader(image);
    try {
      await expect(btrfsDriver.open(reader, { name: 'x' })).rejects.toMatchObject({
        code: 'ERR_FORMAT_INVALID',
        message: /btrfs superblock: crc32c checksum mismatch/,
      });
    } finally {
      reader.close();
    }
  });

  it('refuses a striped or mirrored profile by name (the sys_chunk_array patched to raid1 and re-checksummed)', async () => {
    const image = mkfsBtrfs(join(dir, 'raid.img'), { size: 128 * MiB, args: ['-m', 'single'] });
    const sb = peekImage(image, 0x10000, 4096);
    // sys_chunk_array at 0x32b: a 17-byte key, then struct btrfs_chunk with its type at 0x18.
    const typeAt = 0x32b + 17 + 0x18;
    sb.writeUInt32LE(sb.readUInt32LE(typeAt) | 0x10, typeAt);
    sb.writeUInt32LE(crc32c(sb.subarray(0x20)), 0);
    patchImage(image, 0x10000, sb);
    const reader = new ImageReader(image);
    try {
      await expect(btrfsDriver.open(reader, { name: 'x' })).rejects.toMatchObject({
        code: 'ERR_UNSUPPORTED',
        context: { feature: 'raid1' },
      });
    } finally {
      reader.close();
    }
  });

  it('refuses one device of a two-device filesystem whose chunks lie on both', async () => {
    const a = join(dir, 'dev-a.img');
    const b = join(dir, 'dev-b.img');
    for (const path of [a, b]) run('truncate', ['-s', String(256 * MiB), path]);
    run('mkfs.btrfs', ['-q', '-f', '-d', 'single', '-m', 'single', a, b]);
    const loopA = run('losetup', ['--find', '--show', a]).trim();
    const loopB = run('losetup', ['--find', '--show', b]).trim();
    const mnt = tempDir('btrfsmulti');
    try {
      run('mount', ['-t', 'btrfs', '-o', `device=${loopB}`, loopA, mnt]);
      try {
        for (let i = 0; i < 6; i++) writeFileSync(join(mnt, `big-${i}`), pattern(48 * MiB, i));
      } finally {
        run('umount', [mnt]);
      }
    } finally {
      run('losetup', ['-d', loopA]);
      run('losetup', ['-d', loopB]);
      rmSync(mnt, { recursive: true, force: true });
    }
    const chunks = dumpTree(a, ['-t', 'chunk']);
    expect(chunks).toMatch(/stripe 0 devid 2/);
    const reader = new ImageReader(a);
    try {
      await expect(btrfsDriver.open(reader, { name: 'x' })).rejects.toMatchObject({
        code: 'ERR_UNSUPPORTED',
        context: { feature: 'multi-device' },
      });
    } finally {
      reader.close();
    }
  });
});
