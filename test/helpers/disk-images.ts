// Fixture disks made with the real tools (sfdisk, sgdisk, mkfs.ext4, mkfs.vfat), kept to a few MiB.
// Tests compare what Cairn reads against what these tools report, so a missing tool fails the test.
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readSync,
  writeFileSync,
  readFileSync,
  ftruncateSync,
  writeSync,
  statSync,
  readdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockReader } from '../../src/core/block-reader.js';
import type { AllocationExtent } from '../../src/core/extent.js';

export const MiB = 1024 * 1024;

// mtools refuses images whose geometry it does not like unless told not to check.
process.env.MTOOLS_SKIP_CHECK = '1';

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `cairn-${prefix}-`));
}

export function makeSparseFile(path: string, size: number): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  closeSync(fd);
}

/** Writes `sfdisk` script lines to a new sparse image and returns the path. */
export function sfdiskImage(path: string, size: number, script: string): string {
  makeSparseFile(path, size);
  run('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', path], script);
  return path;
}

export interface SfdiskPartition {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
  bootable?: boolean;
}

export interface SfdiskTable {
  label: 'gpt' | 'dos';
  id: string;
  sectorsize: number;
  partitions: SfdiskPartition[];
}

/** What sfdisk itself reads from the image: the oracle the parsers are compared against. */
export function sfdiskJson(path: string): SfdiskTable {
  return (JSON.parse(run('sfdisk', ['-J', path])) as { partitiontable: SfdiskTable }).partitiontable;
}

/** Partition number from sfdisk's node name (`disk.img5` → 5). */
export function nodeNumber(node: string): number {
  const match = /(\d+)$/.exec(node);
  if (!match) throw new Error(`unexpected sfdisk node ${node}`);
  return Number(match[1]);
}

/** Flips one byte of a file in place (to damage a table or a chunk). */
export function flipByte(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, offset);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    writeSync(fd, byte, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

export function writeAt(path: string, offset: number, data: Buffer): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Copies a filesystem image into a disk image at `offset` without truncating it. */
export function placeImage(disk: string, offset: number, image: string): void {
  writeAt(disk, offset, readFileSync(image));
}

/** A deterministic tree of files (text, binary, a sparse-ish one, a nested folder) to copy into filesystems. */
export function makeSampleTree(dir: string, seed = 1): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  let state = seed >>> 0 || 1;
  const random = (length: number): Buffer => {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      out[i] = state >>> 24;
    }
    return out;
  };
  files['hello.txt'] = Buffer.from(`hello from cairn fixture ${seed}\n`);
  files['random.bin'] = random(300 * 1024 + 17);
  files['docs/readme.md'] = Buffer.from('# nested\n'.repeat(500));
  files['docs/zeros.bin'] = Buffer.alloc(200 * 1024);
  for (const [name, data] of Object.entries(files)) {
    const path = join(dir, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, data);
  }
  return files;
}

/** An ext4 filesystem image of `size` bytes holding the files of `sourceDir` (mkfs.ext4 -d, no mount). */
export function makeExt4Image(path: string, size: number, sourceDir: string): void {
  makeSparseFile(path, size);
  run('mkfs.ext4', ['-q', '-F', '-d', sourceDir, path]);
}

/**
 * A FAT filesystem image holding the files of `sourceDir`, populated with mtools (no mount needed:
 * the test kernel may lack vfat, so FAT content is also read back with mtools).
 */
export function makeFatImage(path: string, size: number, sourceDir: string): void {
  makeSparseFile(path, size);
  run('mkfs.vfat', [path]);
  const entries = readdirSync(sourceDir).map((name) => join(sourceDir, name));
  run('mcopy', ['-s', '-Q', '-i', path, ...entries, '::/']);
}

/** Whether this kernel can mount a filesystem type (test kernels often lack vfat). */
export function kernelSupports(fstype: string): boolean {
  return readFileSync('/proc/filesystems', 'utf8')
    .split('\n')
    .some((line) => line.trim().split(/\s+/).pop() === fstype);
}

/**
 * A 32 MiB GPT disk (sfdisk): p1 = 16 MiB ext4 with the sample files, p2 = 4 MiB of patterned bytes.
 */
export function makeGptExt4Disk(dir: string): { disk: string; files: Record<string, Buffer> } {
  const disk = sfdiskImage(join(dir, 'gpt-ext4.img'), 32 * MiB, 'label: gpt\nsize=16M, type=L, name=root\nsize=4M, type=L, name=data\n');
  const tree = join(dir, 'gpt-tree');
  const files = makeSampleTree(tree, 11);
  const table = sfdiskJson(disk);
  const [p1, p2] = table.partitions;
  if (!p1 || !p2) throw new Error('sfdisk made fewer partitions than asked');
  makeExt4Image(join(dir, 'p1.ext4'), p1.size * table.sectorsize, tree);
  placeImage(disk, p1.start * table.sectorsize, join(dir, 'p1.ext4'));
  writeAt(disk, p2.start * table.sectorsize, Buffer.alloc(64 * 1024, 0x5a));
  return { disk, files };
}

/** A 32 MiB DOS disk (sfdisk): p1 = 12 MiB FAT with the sample files, extended with logical p5, p6. */
export function makeMbrFatDisk(dir: string): { disk: string; files: Record<string, Buffer> } {
  const disk = sfdiskImage(join(dir, 'mbr-fat.img'), 32 * MiB, 'label: dos\n,12M,c\n,,E\n,6M,83\n,,83\n');
  const tree = join(dir, 'mbr-tree');
  const files = makeSampleTree(tree, 22);
  const table = sfdiskJson(disk);
  const p1 = table.partitions[0];
  if (!p1) throw new Error('sfdisk made no partition');
  makeFatImage(join(dir, 'p1.fat'), p1.size * table.sectorsize, tree);
  placeImage(disk, p1.start * table.sectorsize, join(dir, 'p1.fat'));
  return { disk, files };
}

/** A BlockReader over a plain file, for tests that need no repository. */
export class FileBlockReader implements BlockReader {
  readonly size: number;
  readonly blockSize: number;
  reads = 0;

  constructor(
    private readonly path: string,
    blockSize = 64 * 1024,
  ) {
    this.size = statSync(path).size;
    this.blockSize = blockSize;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) throw new RangeError(`read ${offset}+${length} past ${this.size}`);
    this.reads++;
    const fd = openSync(this.path, 'r');
    try {
      const out = Buffer.alloc(length);
      readSync(fd, out, 0, length, offset);
      return out;
    } finally {
      closeSync(fd);
    }
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    // Reports each block as data or zeros by looking at the bytes: enough to test range arithmetic.
    const extents: AllocationExtent[] = [];
    const end = offset + length;
    for (let at = offset; at < end;) {
      const blockEnd = Math.min(end, (Math.floor(at / this.blockSize) + 1) * this.blockSize);
      const zero = (await this.read(at, blockEnd - at)).every((b) => b === 0);
      const last = extents[extents.length - 1];
      if (last && last.zero === zero) last.length += blockEnd - at;
      else extents.push({ offset: at, length: blockEnd - at, zero });
      at = blockEnd;
    }
    return extents;
  }
}
