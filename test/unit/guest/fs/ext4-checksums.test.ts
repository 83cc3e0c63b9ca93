// metadata_csum and gdt_csum: a byte flipped in one structure of a kernel-written image must make
// the reader refuse that structure (ERR_FORMAT_INVALID naming it), and e2fsck must agree that the
// image is damaged, so the test cannot pass on a flip that hit nothing the checksum covers.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../../../src/core/errors.js';
import type { GuestFileSystem } from '../../../../src/core/guest-filesystem.js';
import { ext4Driver } from '../../../../src/guest/fs/ext4/index.js';
import {
  copyImage,
  ImageReader,
  inodeNumber,
  inodeOffset,
  mkfs,
  patchImage,
  pattern,
  peekImage,
  run,
  tempDir,
  withMount,
} from '../../../helpers/ext4-images.js';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';

const BS = 4096;
let dir: string;
let base: string;

function flip(path: string, offset: number): void {
  patchImage(path, offset, [peekImage(path, offset, 1)[0]! ^ 0x5a]);
}

function debugfs(image: string, command: string): string {
  return run('debugfs', ['-R', command, image]);
}

/** e2fsck -fn exits 0 only when it finds nothing wrong. */
function fsckFindsDamage(image: string): boolean {
  try {
    execFileSync('e2fsck', ['-fn', image], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
}

async function failure(image: string, action: (fs: GuestFileSystem) => Promise<unknown>): Promise<CairnError> {
  const reader = new ImageReader(image);
  try {
    const err = await (async () => action(await ext4Driver.open(reader, { name: 'img' })))().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CairnError);
    return err as CairnError;
  } finally {
    reader.close();
  }
}

const ino = async (image: string, path: string): Promise<bigint> => inodeNumber(image, path);

beforeAll(async () => {
  dir = tempDir('ext4csum');
  base = mkfs(join(dir, 'base.img'), { size: 64 * 1024 * 1024, args: ['-b', String(BS)] });
  await withMount(base, false, (mnt) => {
    writeFileSync(join(mnt, 'plain.txt'), 'plain\n');
    // One block every other block: hundreds of extents, so the tree needs a leaf block under the root.
    const fd = openSync(join(mnt, 'frag.bin'), 'w');
    for (let i = 0; i < 700; i++) writeSync(fd, pattern(BS, i), 0, BS, i * 2 * BS);
    closeSync(fd);
    run('mkdir', [join(mnt, 'many')]);
    for (let i = 0; i < 3000; i++) writeFileSync(join(mnt, 'many', `entry-${i}`), '');
  });
  expect(fsckFindsDamage(base)).toBe(false);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const copy = (name: string): string => copyImage(base, name);

describe('ext4 metadata checksums', () => {
  it('the undamaged image reads', async () => {
    const reader = new ImageReader(base);
    const fs = await ext4Driver.open(reader, { name: 'img' });
    expect((await fs.read(await ino(base, '/frag.bin'), 0, 3 * BS)).subarray(0, BS)).toEqual(pattern(BS, 0));
    expect(await fs.lookup(await ino(base, '/many'), Buffer.from('entry-2999'))).toBeDefined();
    reader.close();
  });

  it('an inode with a flipped byte is refused, naming the inode', async () => {
    const image = copy('inode.img');
    const n = await ino(image, '/plain.txt');
    flip(image, inodeOffset(image, '/plain.txt', BS) + 0x10);
    const err = await failure(image, (fs) => fs.stat(n));
    expect(err.code).toBe('ERR_FORMAT_INVALID');
    expect(err.message).toContain(`inode ${n}: checksum mismatch`);
    expect(fsckFindsDamage(image)).toBe(true);
  });

  it('an extent block with a flipped byte is refused, naming inode and block', async () => {
    const image = copy('extent.img');
    const n = await ino(image, '/frag.bin');
    const block = Number(/\(ETB0\):(\d+)/.exec(debugfs(image, 'stat /frag.bin'))![1]);
    flip(image, block * BS + 12 + 12 * 5 + 2);
    const err = await failure(image, (fs) => fs.read(n, 0, 4096));
    expect(err.code).toBe('ERR_FORMAT_INVALID');
    expect(err.message).toContain(`inode ${n} extent block ${block}: checksum mismatch`);
    expect(fsckFindsDamage(image)).toBe(true);
  });

  it('a directory leaf block with a flipped byte is refused by a listing', async () => {
    const image = copy('dirleaf.img');
    const n = await ino(image, '/many');
    const block = Number(debugfs(image, 'bmap /many 3').trim());
    flip(image, block * BS + 100);
    const err = await failure(image, async (fs) => {
      for await (const entry of fs.readdir(n)) void entry;
    });
    expect(err.code).toBe('ERR_FORMAT_INVALID');
    expect(err.message).toContain(`inode ${n} directory block 3`);
    expect(fsckFindsDamage(image)).toBe(true);
  });

  it('an htree root with a flipped byte is refused by a lookup', async () => {
    const image = copy('dxroot.img');
    const n = await ino(image, '/many');
    const block = Number(debugfs(image, 'bmap /many 0').trim());
    flip(image, block * BS + 0x28 + 3);
    const err = await failure(image, (fs) => fs.lookup(n, Buffer.from('entry-7')));
    expect(err.code).toBe('ERR_FORMAT_INVALID');
    expect(err.message).toContain(`inode ${n} directory block 0: htree checksum mismatch`);
    expect(fsckFindsDamage(image)).toBe(true);
  });

  it('a group descriptor and the superblock are checked', async () => {
    const gd = copy('gd.img');
    flip(gd, BS + 0x04);
    const err = await failure(gd, (fs) => fs.stat(2n));
    expect(err.message).toContain('group 0 descriptor: checksum mismatch');
    expect(fsckFindsDamage(gd)).toBe(true);
    const sb = copy('sb.img');
    flip(sb, 1024 + 0x78);
    expect((await failure(sb, async () => undefined)).message).toContain('superblock: checksum mismatch');
  });

  it('gdt_csum (crc16) descriptors are checked without metadata_csum', async () => {
    const image = mkfs(join(dir, 'crc16.img'), { size: 16 * 1024 * 1024, args: ['-b', '1024', '-O', '^metadata_csum,uninit_bg'] });
    const reader = new ImageReader(image);
    await expect(ext4Driver.open(reader, { name: 'img' })).resolves.toBeDefined();
    reader.close();
    flip(image, 2048 + 0x08);
    const err = await failure(image, (fs) => fs.stat(2n));
    expect(err.message).toContain('group 0 descriptor: checksum mismatch');
    expect(fsckFindsDamage(image)).toBe(true);
  });
});
