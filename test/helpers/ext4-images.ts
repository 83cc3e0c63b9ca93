// ext2/3/4 fixtures made with the real tools: mkfs.ext4 (optionally populating with -d), and the
// kernel through a loop mount (htree directories, unwritten extents, inline data as the kernel
// writes them). Images are sparse files in a temp dir, generated per test run, never committed.
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  fstatSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  ftruncateSync,
  chmodSync,
  chownSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { BlockReader } from '../../src/core/block-reader.js';
import type { AllocationExtent } from '../../src/core/extent.js';

export const FIXED_UUID = '5ca1ab1e-0000-4000-8000-00000000e4e4';
export const FIXED_HASH_SEED = '0b5e55ed-1111-4222-8333-444455556666';
export const FAKE_TIME = 1_600_000_000;

export function run(cmd: string, args: string[], env: Record<string, string> = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `cairn-${prefix}-`));
}

/** A BlockReader over an image file that keeps its descriptor open (fuzzing reads a lot). */
export class ImageReader implements BlockReader {
  readonly size: number;
  readonly blockSize = 64 * 1024;
  reads = 0;
  bytesRead = 0;
  private readonly fd: number;

  constructor(path: string) {
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    await this.readInto(offset, length, out);
    return out;
  }

  async readInto(offset: number, length: number, target: Buffer): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`read ${offset}+${length} past ${this.size}`);
    }
    this.reads++;
    this.bytesRead += length;
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, target, done, length - done, offset + done);
      if (n === 0) throw new Error('short read');
      done += n;
    }
  }

  async allocation(offset: number, length: number): Promise<AllocationExtent[]> {
    return [{ offset, length, zero: false }];
  }

  close(): void {
    closeSync(this.fd);
  }
}

export interface MkfsOptions {
  /** Image size in bytes. */
  readonly size: number;
  /** Extra mke2fs arguments (-t, -O, -b, -I, -N …). */
  readonly args?: readonly string[];
  /** Populate from this directory (mke2fs -d). */
  readonly from?: string;
}

/** mkfs.ext4 with a fixed UUID, hash seed and clock, so that the same inputs give the same image. */
export function mkfs(path: string, options: MkfsOptions): string {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, options.size);
  closeSync(fd);
  const args = ['-q', '-F', '-U', FIXED_UUID, '-E', `hash_seed=${FIXED_HASH_SEED}`, ...(options.args ?? [])];
  if (options.from) args.push('-d', options.from);
  run('mkfs.ext4', [...args, path], { E2FSPROGS_FAKE_TIME: String(FAKE_TIME) });
  return path;
}

/** Loop-mounts `image` at a fresh directory, runs `fn`, and unmounts (the loop device goes with it). */
export async function withMount<T>(image: string, readOnly: boolean, fn: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = tempDir('ext4mnt');
  run('mount', ['-t', 'ext4', '-o', readOnly ? 'loop,ro,noload' : 'loop', image, dir]);
  try {
    return await fn(dir);
  } finally {
    run('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Sets times to the nanosecond without following symlinks (touch -h). */
function touch(path: string, isoOrAt: string, which: '-a' | '-m' | '' = ''): void {
  run('touch', ['-h', ...(which ? [which] : []), '-d', isoOrAt, path]);
}

export interface TreeOptions {
  /** Entries in the big directory (an htree once it outgrows one block). */
  readonly manyEntries?: number;
  /** Create a > 4 GiB sparse file. */
  readonly hugeSparse?: boolean;
  /** Preallocate with fallocate (unwritten extents; only on an extent-mapped kernel mount). */
  readonly fallocate?: boolean;
  /** Device nodes and fifos (not for mkfs -d trees in user namespaces; fine as root). */
  readonly specials?: boolean;
  /** Names that are not valid UTF-8. */
  readonly invalidUtf8?: boolean;
  /** Timestamps before 1970 and after 2038 (need 256-byte inodes to survive). */
  readonly extremeTimes?: boolean;
  /** Top-level directories, each with a file: the kernel's Orlov allocator spreads them over the groups. */
  readonly topDirs?: number;
}

/** Deterministic pseudo-random bytes (an LCG; content only has to differ between files). */
export function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

/**
 * Fills `root` (an empty directory: a temp dir for mkfs -d, or a kernel mount) with the cases an
 * ext4 reader must get right. Returns the relative paths it created, for tests that look at one.
 */
export function makeTree(root: string, options: TreeOptions = {}): void {
  const p = (...parts: string[]): string => join(root, ...parts);
  writeFileSync(p('hello.txt'), 'hello, ext4\n');
  writeFileSync(p('empty'), '');
  writeFileSync(p('tiny-59'), pattern(59, 1));
  writeFileSync(p('small-150'), pattern(150, 2));
  writeFileSync(p('medium.bin'), pattern(200 * 1024 + 3, 3));
  writeFileSync(p('large.bin'), pattern(3 * 1024 * 1024 + 5, 4));
  writeFileSync(p('a'.repeat(255)), 'longest name\n');
  writeFileSync(p('ünïcødé-文件-😀.txt'), 'utf-8 name\n');
  if (options.invalidUtf8) writeFileSync(Buffer.from([...Buffer.from(root + '/bad-'), 0xff, 0xfe, 0x80, 0x2e, 0x62]), 'not utf-8\n');
  let deep = p('deep');
  for (let i = 0; i < 12; i++) deep = join(deep, `level-${i}`);
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'bottom.txt'), 'bottom\n');
  // Sparse: data, a hole, data again, and a tail without data.
  const sparse = openSync(p('sparse.bin'), 'w');
  writeSync(sparse, pattern(5000, 5), 0, 5000, 0);
  writeSync(sparse, pattern(7000, 6), 0, 7000, 10 * 1024 * 1024 + 123);
  ftruncateSync(sparse, 40 * 1024 * 1024);
  closeSync(sparse);
  if (options.hugeSparse) {
    const huge = openSync(p('huge-sparse.bin'), 'w');
    writeSync(huge, pattern(4096, 7), 0, 4096, 0);
    writeSync(huge, pattern(10000, 8), 0, 10000, 4.5 * 1024 ** 3);
    writeSync(huge, pattern(100, 9), 0, 100, 5 * 1024 ** 3 - 100);
    closeSync(huge);
  }
  if (options.fallocate) {
    run('fallocate', ['-l', String(2 * 1024 * 1024), p('prealloc.bin')]);
    const fd = openSync(p('prealloc.bin'), 'r+');
    writeSync(fd, pattern(8192, 10), 0, 8192, 512 * 1024);
    closeSync(fd);
    writeFileSync(p('prealloc-keep.bin'), '');
    run('fallocate', ['-n', '-o', String(1024 * 1024), '-l', String(1024 * 1024), p('prealloc-keep.bin')]);
    writeFileSync(p('prealloc-keep.bin'), pattern(100, 11), { flag: 'a' });
  }
  symlinkSync('hello.txt', p('link-fast'));
  symlinkSync('x/'.repeat(100) + 'target', p('link-slow'));
  symlinkSync('/does/not/exist', p('link-dangling'));
  mkdirSync(p('links'));
  writeFileSync(p('links', 'hard-a'), 'shared by two names\n');
  linkSync(p('links', 'hard-a'), p('links', 'hard-b'));
  linkSync(p('links', 'hard-a'), p('hard-c'));
  if (options.specials) {
    run('mkfifo', [p('fifo')]);
    run('mknod', [p('char-null'), 'c', '1', '3']);
    run('mknod', [p('block-loop'), 'b', '7', '200']);
    run('mknod', [p('char-big'), 'c', '300', '70000']);
  }
  writeFileSync(p('setuid'), 'x');
  chmodSync(p('setuid'), 0o4755);
  mkdirSync(p('sticky'));
  chmodSync(p('sticky'), 0o1777);
  writeFileSync(p('owned-high'), 'uid and gid above 65535\n');
  chownSync(p('owned-high'), 70000, 80000);
  for (let i = 0; i < (options.topDirs ?? 0); i++) {
    mkdirSync(p(`top-${i}`));
    writeFileSync(p(`top-${i}`, 'file'), `in top-level directory ${i}\n`);
  }
  mkdirSync(p('many'));
  for (let i = 0; i < (options.manyEntries ?? 0); i++)
    writeFileSync(p('many', `entry-${String(i).padStart(5, '0')}-${'n'.repeat(i % 40)}`), i % 7 === 0 ? `${i}\n` : '');
  touch(p('hello.txt'), '2001-02-03T04:05:06.123456789Z');
  touch(p('medium.bin'), '2010-01-01T00:00:00.000000001Z', '-m');
  if (options.extremeTimes) {
    touch(p('small-150'), '1901-12-14T00:00:00.5Z', '-m');
    touch(p('tiny-59'), '2200-06-01T12:00:00.999999999Z', '-m');
    touch(p('empty'), '1969-12-31T23:59:59.25Z', '-a');
  }
}

/** Image surgery for damage tests: where debugfs says a structure is, and byte patches there. */
export function inodeNumber(image: string, path: string): bigint {
  return BigInt(/Inode: (\d+)/.exec(run('debugfs', ['-R', `stat ${path}`, image]))![1]!);
}

/** Volume byte offset of the on-disk inode of `path` (debugfs imap). */
export function inodeOffset(image: string, path: string, blockSize: number): number {
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(run('debugfs', ['-R', `imap ${path}`, image]))!;
  return Number(m[1]) * blockSize + parseInt(m[2]!, 16);
}

export function patchImage(image: string, offset: number, bytes: readonly number[] | Buffer): void {
  const fd = openSync(image, 'r+');
  try {
    const data = Buffer.from(bytes);
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

export function peekImage(image: string, offset: number, length: number): Buffer {
  const fd = openSync(image, 'r');
  try {
    const out = Buffer.alloc(length);
    readSync(fd, out, 0, length, offset);
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Copies `base` to `name` beside it, for one test to damage. */
export function copyImage(base: string, name: string): string {
  const path = join(dirname(base), name);
  copyFileSync(base, path);
  return path;
}
