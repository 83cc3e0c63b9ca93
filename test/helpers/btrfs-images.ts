// btrfs fixtures made with the real tools: mkfs.btrfs (optionally populating with --rootdir), and
// the kernel through a loop mount (compressed extents with compress=zstd|zlib|lzo, subvolumes,
// snapshots, reflinks, prealloc extents). The layout of blocks comes from `btrfs inspect-internal
// dump-tree`, never from Cairn's reader. Images are sparse files in a temp dir, never committed.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '../../src/util/crc32c.js';
import { makeTree, patchImage, pattern, peekImage, run, tempDir, type TreeOptions } from './ext4-images.js';

/** The fsid of images that must come out the same every run (fuzz bases, never mounted). */
export const FIXED_FSID = '5ca1ab1e-0000-4000-8000-00000000b7f5';

export interface BtrfsMkfsOptions {
  /** Image size in bytes. */
  readonly size: number;
  /** Extra mkfs.btrfs arguments (-m, -d, --csum, -O, -n …). */
  readonly args?: readonly string[];
  /** Populate from this directory (mkfs.btrfs --rootdir). */
  readonly from?: string;
  /**
   * The fsid; a fresh one by default. The kernel refuses to mount (and mkfs to make) a second
   * filesystem whose fsid is in use, so images mounted while other tests run must not share one.
   */
  readonly fsid?: string;
}

/** mkfs.btrfs (with `fsid` fixed, the same inputs give the same layout). */
export function mkfsBtrfs(path: string, options: BtrfsMkfsOptions): string {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, options.size);
  closeSync(fd);
  const args = ['-q', '-f', '-U', options.fsid ?? randomUUID(), ...(options.args ?? [])];
  if (options.from) args.push('--rootdir', options.from);
  run('mkfs.btrfs', [...args, path]);
  return path;
}

/** Loop-mounts `image` at a fresh directory with `options` (ro, compress=zstd, subvolid=5 …), runs `fn`, unmounts. */
export async function withBtrfsMount<T>(image: string, options: readonly string[], fn: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = tempDir('btrfsmnt');
  run('mount', ['-t', 'btrfs', '-o', ['loop', ...options].join(','), image, dir]);
  try {
    return await fn(dir);
  } finally {
    run('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface BtrfsTreeOptions extends TreeOptions {
  /** Files that compress well (so a compress= mount really writes compressed extents). */
  readonly compressible?: boolean;
  /** Reflinked copies (cp --reflink=always): two inodes sharing extents, one partly rewritten. */
  readonly reflinks?: boolean;
  /** Subvolumes (one nested), and a snapshot of the outer one (whose nested subvolume becomes a placeholder). */
  readonly subvolumes?: boolean;
}

/** Text that zstd, zlib and lzo all shrink a lot, different per seed. */
export function compressibleText(length: number, seed: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < length; i++) {
    const line = `line ${i} of compressible file ${seed}: the quick brown fox jumps over the lazy dog\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, length);
}

/**
 * Fills `root` (a kernel mount, or a directory for --rootdir) with the ext4 oracle's cases
 * (makeTree) and btrfs's own: compressible files of several sizes, reflinks, subvolumes and a
 * snapshot. Subvolumes need the kernel (`btrfs subvolume create` on a mount).
 */
export function makeBtrfsTree(root: string, options: BtrfsTreeOptions = {}): void {
  makeTree(root, options);
  const p = (...parts: string[]): string => join(root, ...parts);
  if (options.compressible) {
    mkdirSync(p('compressible'));
    writeFileSync(p('compressible', 'inline-small.txt'), compressibleText(1800, 1));
    writeFileSync(p('compressible', 'one-extent.txt'), compressibleText(100 * 1024, 2));
    writeFileSync(p('compressible', 'many-extents.txt'), compressibleText(3 * 1024 * 1024 + 17, 3));
    // Compressible runs between incompressible ones, and a compressed run after a hole.
    const fd = openSync(p('compressible', 'mixed.bin'), 'w');
    writeSync(fd, compressibleText(300 * 1024, 4), 0, 300 * 1024, 0);
    writeSync(fd, pattern(200 * 1024, 40), 0, 200 * 1024, 300 * 1024);
    writeSync(fd, compressibleText(256 * 1024, 5), 0, 256 * 1024, 2 * 1024 * 1024);
    ftruncateSync(fd, 3 * 1024 * 1024);
    closeSync(fd);
  }
  if (options.reflinks) {
    writeFileSync(p('reflink-source.bin'), Buffer.concat([pattern(512 * 1024, 50), compressibleText(512 * 1024, 51)]));
    run('cp', ['--reflink=always', p('reflink-source.bin'), p('reflink-copy.bin')]);
    run('cp', ['--reflink=always', p('reflink-source.bin'), p('reflink-partly-rewritten.bin')]);
    // Rewrite the middle of one copy: its extent items now point into the middle of shared extents.
    const fd = openSync(p('reflink-partly-rewritten.bin'), 'r+');
    writeSync(fd, pattern(8192, 52), 0, 8192, 300 * 1024);
    writeSync(fd, pattern(4096, 53), 0, 4096, 700 * 1024);
    closeSync(fd);
  }
  if (options.subvolumes) {
    run('btrfs', ['-q', 'subvolume', 'create', p('subvol')]);
    writeFileSync(p('subvol', 'inside.txt'), 'in a subvolume\n');
    mkdirSync(p('subvol', 'dir'));
    writeFileSync(p('subvol', 'dir', 'deeper.bin'), pattern(70_000, 60));
    run('btrfs', ['-q', 'subvolume', 'create', p('subvol', 'nested')]);
    writeFileSync(p('subvol', 'nested', 'nested.txt'), 'in a nested subvolume\n');
    run('btrfs', ['-q', 'subvolume', 'snapshot', p('subvol'), p('snapshot')]);
    // Diverge the snapshot from its source.
    writeFileSync(p('snapshot', 'inside.txt'), 'changed in the snapshot\n');
    writeFileSync(p('snapshot', 'only-in-snapshot.txt'), 'new\n');
    run('btrfs', ['-q', 'subvolume', 'snapshot', '-r', p('subvol'), p('readonly-snapshot')]);
  }
}

/** Subvolumes `root` and `home` at the top level with a small system in them, as Fedora installs. */
export function makeFedoraLayout(top: string): void {
  run('btrfs', ['-q', 'subvolume', 'create', join(top, 'root')]);
  run('btrfs', ['-q', 'subvolume', 'create', join(top, 'home')]);
  mkdirSync(join(top, 'root', 'etc'));
  writeFileSync(join(top, 'root', 'etc', 'fstab'), 'UUID=x / btrfs subvol=root,compress=zstd:1 0 0\nUUID=x /home btrfs subvol=home 0 0\n');
  writeFileSync(join(top, 'root', 'etc', 'os-release'), 'NAME="Fedora Linux"\n');
  mkdirSync(join(top, 'root', 'home'));
  mkdirSync(join(top, 'home', 'user'));
  writeFileSync(join(top, 'home', 'user', 'notes.txt'), compressibleText(50_000, 9));
}

/** Mulberry32: a tiny seeded PRNG, so that a fuzz seed names its case. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `btrfs inspect-internal dump-tree ARGS image`, for tests to find where structures are. */
export function dumpTree(image: string, args: readonly string[]): string {
  // A tree of thousands of entries prints tens of megabytes.
  return execFileSync('btrfs', ['inspect-internal', 'dump-tree', ...args, image], { encoding: 'utf8', maxBuffer: 1 << 30 });
}

export interface ChunkMapping {
  readonly logical: number;
  readonly length: number;
  readonly type: string;
  readonly copies: readonly number[];
}

/** The chunk tree as dump-tree prints it: logical ranges and the physical offset of each stripe. */
export function chunkMappings(image: string): ChunkMapping[] {
  const out: ChunkMapping[] = [];
  const text = dumpTree(image, ['-t', 'chunk']);
  for (const m of text.matchAll(
    /CHUNK_ITEM (\d+)\) itemoff \d+ itemsize \d+\n\s+length (\d+) owner \d+ stripe_len \d+ type (\S+)[\s\S]*?(?=\titem|\n\S|$)/g,
  )) {
    const copies = [...m[0].matchAll(/stripe \d+ devid \d+ offset (\d+)/g)].map((s) => Number(s[1]));
    out.push({ logical: Number(m[1]), length: Number(m[2]), type: m[3]!, copies });
  }
  return out;
}

/** Physical offsets of every copy of logical byte `logical`. */
export function physicalCopies(chunks: readonly ChunkMapping[], logical: number): number[] {
  const chunk = chunks.find((c) => logical >= c.logical && logical < c.logical + c.length);
  if (!chunk) throw new Error(`logical ${logical} is in no chunk`);
  return chunk.copies.map((c) => c + logical - chunk.logical);
}

/** Logical addresses of the tree blocks dump-tree prints for `args` (e.g. ['-t', 'fs']). */
export function treeBlocks(image: string, args: readonly string[]): { logical: number; level: number; owner: string }[] {
  const seen = new Map<number, { logical: number; level: number; owner: string }>();
  for (const m of dumpTree(image, args).matchAll(/^(leaf|node) (\d+) (?:items|level) .*?owner (\S+)/gm)) {
    const level = m[1] === 'leaf' ? 0 : Number(/level (\d+)/.exec(m[0])?.[1] ?? 1);
    seen.set(Number(m[2]), { logical: Number(m[2]), level, owner: m[3]! });
  }
  return [...seen.values()];
}

/** The disk extents (logical address, disk bytes) a file's EXTENT_DATA items name, from dump-tree of its tree. */
export function fileDiskExtents(image: string, treeArgs: readonly string[], ino: number): { logical: number; length: number }[] {
  const text = dumpTree(image, treeArgs);
  const out: { logical: number; length: number }[] = [];
  const re = new RegExp(`key \\(${ino} EXTENT_DATA \\d+\\)[^\\n]*\\n[^\\n]*\\n\\s+extent data disk byte (\\d+) nr (\\d+)`, 'g');
  for (const m of text.matchAll(re)) if (m[1] !== '0') out.push({ logical: Number(m[1]), length: Number(m[2]) });
  return out;
}

/** Where dump-tree puts the first item whose key line matches `keyPattern`: its leaf and data range. */
export function findItem(
  image: string,
  treeArgs: readonly string[],
  keyPattern: RegExp,
): { leaf: number; itemOffset: number; itemSize: number; text: string } {
  let leaf = -1;
  const lines = dumpTree(image, treeArgs).split('\n');
  for (const [i, line] of lines.entries()) {
    const header = /^leaf (\d+) items/.exec(line);
    if (header) leaf = Number(header[1]);
    const item = /^\titem \d+ key (\(.*\)) itemoff (\d+) itemsize (\d+)/.exec(line);
    if (item && keyPattern.test(item[1]!)) {
      return { leaf, itemOffset: Number(item[2]), itemSize: Number(item[3]), text: lines.slice(i, i + 4).join('\n') };
    }
  }
  throw new Error(`no item matches ${keyPattern}`);
}

/** Writes `patch` at `offset` inside the tree block at physical `block` and re-checksums it (crc32c), as a hostile image would. */
export function patchTreeBlock(image: string, block: number, nodeSize: number, offset: number, patch: Buffer): void {
  const bytes = peekImage(image, block, nodeSize);
  patch.copy(bytes, offset);
  bytes.writeUInt32LE(crc32c(bytes.subarray(32)), 0);
  patchImage(image, block, bytes);
}
