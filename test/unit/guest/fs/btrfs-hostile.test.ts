// Hostile btrfs images, each made from a real one by surgery at a place dump-tree names, with the
// damaged block re-checksummed so that only the reader's structural checks stand between the
// damage and a hang or a loop: a node that points at itself, a directory entry leading back to
// the root, a subvolume entry leading to an ancestor subvolume, an absurd compressed extent. Each
// must end promptly in ERR_FORMAT_INVALID or a placeholder, never a loop.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../../../src/core/errors.js';
import type { GuestFileSystem, GuestNodeId } from '../../../../src/core/guest-filesystem.js';
import { btrfsDriver, btrfsInodeNumber } from '../../../../src/guest/fs/btrfs/index.js';
import {
  chunkMappings,
  compressibleText,
  findItem,
  mkfsBtrfs,
  patchTreeBlock,
  physicalCopies,
  treeBlocks,
  withBtrfsMount,
} from '../../../helpers/btrfs-images.js';
import { copyImage, ImageReader, patchImage, run, tempDir } from '../../../helpers/ext4-images.js';

const MiB = 1024 * 1024;
const NODE = 4096;
const HEADER = 101;
let dir: string;
let base: string;

beforeAll(async () => {
  dir = tempDir('btrfshostile');
  // Small nodes, so that 300 entries give the FS tree an interior node.
  base = mkfsBtrfs(join(dir, 'base.img'), { size: 128 * MiB, args: ['-m', 'single', '-n', String(NODE)] });
  await withBtrfsMount(image(), ['compress=zstd'], (mnt) => {
    run('mkdir', ['-p', join(mnt, 'a', 'b', 'c')]);
    for (let i = 0; i < 300; i++) writeFileSync(join(mnt, 'a', `file-${i}`), `${i}\n`);
    writeFileSync(join(mnt, 'zstd.txt'), compressibleText(100_000, 1));
    run('btrfs', ['-q', 'subvolume', 'create', join(mnt, 'outer')]);
    run('btrfs', ['-q', 'subvolume', 'create', join(mnt, 'outer', 'inner')]);
    run('mkdir', [join(mnt, 'outer', 'inner', 'plain-dir')]);
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function image(): string {
  return base;
}

/** Opens and walks everything (at most 5000 nodes) within `ms`; returns the CairnError it ended in, or the node count. */
async function walk(path: string, ms = 3000): Promise<CairnError | number> {
  const reader = new ImageReader(path);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('deadline passed: a loop?')), ms);
  });
  const work = (async (): Promise<number> => {
    const fs: GuestFileSystem = await btrfsDriver.open(reader, { name: 'hostile' });
    const stack: GuestNodeId[] = [fs.rootId];
    let nodes = 0;
    while (stack.length > 0 && nodes < 5000) {
      const id = stack.pop()!;
      nodes++;
      const st = await fs.stat(id);
      if (st.type === 'dir') for await (const entry of fs.readdir(id)) stack.push(entry.id);
      if (st.type === 'file') await fs.read(id, 0, st.size);
    }
    return nodes;
  })();
  try {
    return await Promise.race([work, deadline]);
  } catch (err) {
    if (err instanceof CairnError) return err;
    throw err;
  } finally {
    clearTimeout(timer);
    reader.close();
  }
}

const physical = (path: string, logical: number): number => physicalCopies(chunkMappings(path), logical)[0]!;

describe('btrfs hostile images', () => {
  it('walks the undamaged image', async () => {
    expect(typeof (await walk(image()))).toBe('number');
  });

  it('a node whose child pointer names the node itself is refused by level, not followed', async () => {
    const path = copyImage(image(), 'self-pointer.img');
    const node = treeBlocks(path, ['-t', 'fs']).find((b) => b.level > 0)!;
    expect(node).toBeDefined();
    // The first key pointer's blockptr (after its 17-byte key) now names the node.
    const ptr = Buffer.alloc(8);
    ptr.writeBigUInt64LE(BigInt(node.logical));
    patchTreeBlock(path, physical(path, node.logical), NODE, HEADER + 17, ptr);
    const result = await walk(path);
    expect(result).toBeInstanceOf(CairnError);
    expect((result as CairnError).message).toMatch(
      new RegExp(`tree block at ${node.logical}: is level ${node.level}, its parent expects level ${node.level - 1}`),
    );
  });

  it('a directory entry leading back to the root directory is refused, not looped through', async () => {
    const path = copyImage(image(), 'dir-loop.img');
    // The entry "c" in a/b: its location now names inode 256 (the root, an ancestor).
    const item = findItem(path, ['-t', 'fs'], /DIR_INDEX/);
    const target = Buffer.alloc(8);
    target.writeBigUInt64LE(256n);
    patchTreeBlock(path, physical(path, item.leaf), NODE, HEADER + item.itemOffset, target);
    const result = await walk(path);
    expect(result).toBeInstanceOf(CairnError);
    expect((result as CairnError).message).toMatch(/only parent \(a loop or a second link\)|points at invalid inode/);
  });

  it('a subvolume entry leading to an ancestor subvolume is an empty placeholder, not a loop', async () => {
    const path = copyImage(image(), 'subvol-loop.img');
    const ids = run('btrfs', ['inspect-internal', 'dump-tree', '-t', 'root', path]);
    const outer = Number(/\(FS_TREE ROOT_REF (\d+)\)[^\n]*\n[^\n]*name outer/.exec(ids)![1]);
    const inner = Number(new RegExp(`\\(${outer} ROOT_REF (\\d+)\\)`).exec(ids)![1]);
    // In subvolume inner, the entry plain-dir now names subvolume outer (its parent).
    const item = findItem(path, ['-t', String(inner)], /DIR_INDEX/);
    const location = Buffer.alloc(17);
    location.writeBigUInt64LE(BigInt(outer));
    location[8] = 132; // ROOT_ITEM
    patchTreeBlock(path, physical(path, item.leaf), NODE, HEADER + item.itemOffset, location);
    const reader = new ImageReader(path);
    try {
      const fs = await btrfsDriver.open(reader, { name: 'hostile' });
      const o = (await fs.lookup(fs.rootId, Buffer.from('outer')))!;
      const i = (await fs.lookup(o.id, Buffer.from('inner')))!;
      // readdir goes by the DIR_INDEX item patched here (lookups go by the DIR_ITEM, left alone).
      let loop: GuestNodeId | undefined;
      for await (const e of fs.readdir(i.id)) if (e.name.toString() === 'plain-dir') loop = e.id;
      expect(btrfsInodeNumber(loop!)).toBe(2n);
      const entries = [];
      for await (const e of fs.readdir(loop!)) entries.push(e);
      expect(entries).toEqual([]);
    } finally {
      reader.close();
    }
    expect(typeof (await walk(path))).toBe('number');
  });

  it('a compressed extent claiming a terabyte of ram_bytes is refused before anything is allocated', async () => {
    const path = copyImage(image(), 'ram-bytes.img');
    const found = findCompressed(path);
    const ram = Buffer.alloc(8);
    ram.writeBigUInt64LE(1n << 40n);
    patchTreeBlock(path, physical(path, found.leaf), NODE, HEADER + found.itemOffset + 8, ram);
    const result = await walk(path);
    expect(result).toBeInstanceOf(CairnError);
    expect((result as CairnError).message).toMatch(/compressed \(zstd\) extent of 1099511627776 bytes exceeds 131072/);
  });

  it('refuses a checksum type it does not know by name, before trusting anything the superblock says', async () => {
    const path = copyImage(image(), 'csum-type.img');
    // In every copy: a damaged primary alone falls back to the mirror at 64 MiB.
    for (const copy of [0x10000, 0x4000000]) patchImage(path, copy + 0xc4, [9, 0]);
    const reader = new ImageReader(path);
    try {
      await expect(btrfsDriver.open(reader, { name: 'b' })).rejects.toMatchObject({
        code: 'ERR_UNSUPPORTED',
        context: { feature: 'csum type 9' },
      });
    } finally {
      reader.close();
    }
  });
});

/** The first regular extent item dump-tree shows as zstd-compressed. */
function findCompressed(path: string): { leaf: number; itemOffset: number } {
  const text = run('btrfs', ['inspect-internal', 'dump-tree', '-t', 'fs', path]);
  let leaf = -1;
  let last: { itemOffset: number } | undefined;
  for (const line of text.split('\n')) {
    const header = /^leaf (\d+) items/.exec(line);
    if (header) leaf = Number(header[1]);
    const item = /^\titem \d+ key \(\d+ EXTENT_DATA \d+\) itemoff (\d+)/.exec(line);
    if (item) last = { itemOffset: Number(item[1]) };
    if (/extent compression 3 \(zstd\)/.test(line) && last) return { leaf, itemOffset: last.itemOffset };
  }
  throw new Error('no zstd extent');
}
