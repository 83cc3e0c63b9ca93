// Hand-made hostile structures (on an image without checksums, so that each reaches the check it
// aims at): an extent tree deeper than the kernel allows, an extent node that points at itself,
// counts beyond a node's room, a zero record length in a directory block, an absurd file size and
// a huge sparse size. Each must end in ERR_FORMAT_INVALID naming the inode, or read quickly.
import { closeSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
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

const BS = 4096;
let dir: string;
let base: string;

const patch = patchImage;
const peek = peekImage;
const le16 = (v: number): number[] => [v & 0xff, v >>> 8];
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

const inodeAt = (image: string, path: string): number => inodeOffset(image, path, BS);
const ino = inodeNumber;

async function withFs<T>(image: string, fn: (fs: GuestFileSystem) => Promise<T>): Promise<T> {
  const reader = new ImageReader(image);
  try {
    return await fn(await ext4Driver.open(reader, { name: 'h' }));
  } finally {
    reader.close();
  }
}
async function error(p: Promise<unknown>): Promise<CairnError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(CairnError);
  expect((e as CairnError).code).toBe('ERR_FORMAT_INVALID');
  return e as CairnError;
}

beforeAll(async () => {
  dir = tempDir('ext4hostile');
  base = mkfs(join(dir, 'base.img'), { size: 32 * 1024 * 1024, args: ['-b', String(BS), '-O', '^metadata_csum,^has_journal'] });
  await withMount(base, false, (mnt) => {
    writeFileSync(join(mnt, 'plain.bin'), pattern(10_000, 1));
    const fd = openSync(join(mnt, 'frag.bin'), 'w');
    for (let i = 0; i < 400; i++) writeSync(fd, pattern(BS, i), 0, BS, i * 2 * BS);
    closeSync(fd);
    run('mkdir', [join(mnt, 'd')]);
    for (let i = 0; i < 20; i++) writeFileSync(join(mnt, 'd', `f${i}`), '');
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const copy = (name: string): string => copyImage(base, name);

describe('ext4 reader on hostile structures', () => {
  it('refuses an extent tree deeper than 5', async () => {
    const image = copy('deep.img');
    patch(image, inodeAt(image, '/plain.bin') + 0x28 + 6, le16(6));
    const err = await withFs(image, (fs) => error(fs.read(ino(image, '/plain.bin'), 0, 100)));
    expect(err.message).toMatch(/inode \d+ extent tree: extent tree depth 6 exceeds 5/);
  });

  it('refuses an extent node that points at itself, without looping', async () => {
    const image = copy('cycle.img');
    const root = inodeAt(image, '/frag.bin') + 0x28;
    const leaf = Number(/\(ETB0\):(\d+)/.exec(run('debugfs', ['-R', 'stat /frag.bin', image]))![1]);
    const firstLogical = peek(image, leaf * BS + 12, 4).readUInt32LE(0);
    // The root claims depth 2; the leaf becomes an index whose only child is itself.
    patch(image, root + 6, le16(2));
    patch(image, leaf * BS + 2, [...le16(1), ...le16(340), ...le16(1)]);
    patch(image, leaf * BS + 12, [...le32(firstLogical), ...le32(leaf), 0, 0, 0, 0]);
    const err = await withFs(image, (fs) => error(fs.read(ino(image, '/frag.bin'), 0, 100)));
    expect(err.message).toContain(`node block ${leaf} is referenced twice`);
  });

  it('refuses entry counts beyond a node', async () => {
    const image = copy('count.img');
    patch(image, inodeAt(image, '/plain.bin') + 0x28 + 2, le16(0xffff));
    const err = await withFs(image, (fs) => error(fs.extents(ino(image, '/plain.bin'), 0, 100)));
    expect(err.message).toContain('exceed the node');
  });

  it('refuses a zero record length in a directory block (which would never advance)', async () => {
    const image = copy('reclen.img');
    const block = Number(run('debugfs', ['-R', 'bmap /d 0', image]).trim());
    patch(image, block * BS + 24 + 4, le16(0));
    const err = await withFs(image, async (fs) => {
      const d = ino(image, '/d');
      return error(
        (async () => {
          for await (const e of fs.readdir(d)) void e;
        })(),
      );
    });
    expect(err.message).toMatch(/directory block 0: entry at byte 24 has an invalid record length 0/);
  });

  it('refuses a size beyond 2^53 and reads a 1 PiB sparse size quickly', async () => {
    const image = copy('size.img');
    const at = inodeAt(image, '/plain.bin');
    patch(image, at + 0x6c, le32(0xffffffff));
    await withFs(image, (fs) => error(fs.stat(ino(image, '/plain.bin'))));
    patch(image, at + 0x6c, le32(0x40000));
    await withFs(image, async (fs) => {
      const id = ino(image, '/plain.bin');
      expect((await fs.stat(id)).size).toBe(2 ** 50 + 10_000);
      const far = await fs.read(id, 2 ** 49, 4096);
      expect(far.every((b) => b === 0)).toBe(true);
      const extents = await fs.extents(id, 0, 2 ** 50 + 10_000);
      expect(extents.length).toBeLessThanOrEqual(3);
      expect(extents[extents.length - 1]!.kind).toBe('zero');
    });
  });
});
