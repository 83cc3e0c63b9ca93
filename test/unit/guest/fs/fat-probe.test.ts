// The FAT driver's probe and boot-sector checks against volumes the real formatters make: FAT of
// every type and sector size is claimed; NTFS, exFAT, ext4, an MBR and a GPT disk are not.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fatDriver } from '../../../../src/guest/fs/fat/index.js';
import { FileBlockReader, makeSparseFile, makeTempDir, run, sfdiskImage } from '../../../helpers/disk-images.js';
import { fatToolEnv, mdirTree, MiB, tool } from '../../../helpers/fat-images.js';

const work = makeTempDir('fat-probe');
const env = fatToolEnv(work);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('fatDriver.probe', () => {
  it.each([
    ['FAT12', ['-F', '12'], 4 * MiB],
    ['FAT16 with 4096-byte sectors', ['-F', '16', '-S', '4096'], 64 * MiB],
    ['FAT32 with 2048-byte sectors', ['-F', '32', '-S', '2048'], 300 * MiB],
  ])('claims %s and lists it as mtools does', async (label, args, size) => {
    const image = join(work, `${label.replace(/\W+/g, '-')}.img`);
    makeSparseFile(image, size);
    tool(env, 'mkfs.fat', [...args, '-i', '11223344', image]);
    tool(env, 'mmd', ['-i', image, '::/Some Directory']);
    const volume = new FileBlockReader(image);
    expect(await fatDriver.probe(volume)).toBe(true);
    const fs = await fatDriver.open(volume, { name: label });
    const names: string[] = [];
    for await (const entry of fs.readdir(fs.rootId)) names.push(entry.name.toString());
    expect(names).toEqual(
      mdirTree(env, image)
        .get('/')
        ?.map((e) => e.longName ?? e.shortName),
    );
  });

  it.each([
    ['NTFS', (p: string) => run('mkntfs', ['-F', '-Q', '-q', p])],
    ['exFAT', (p: string) => run('mkfs.exfat', [p])],
    ['ext4', (p: string) => run('mkfs.ext4', ['-q', '-F', p])],
  ])('does not claim %s', async (label, format) => {
    const image = join(work, `${label}.img`);
    makeSparseFile(image, 16 * MiB);
    format(image);
    expect(await fatDriver.probe(new FileBlockReader(image))).toBe(false);
    await expect(fatDriver.open(new FileBlockReader(image), { name: label })).rejects.toMatchObject({ code: 'ERR_FORMAT_INVALID' });
  });

  it('does not claim a partitioned disk (its first sector is an MBR or a protective MBR)', async () => {
    for (const script of ['label: dos\n,4M,c\n', 'label: gpt\n,4M,U\n']) {
      const disk = sfdiskImage(join(work, 'disk.img'), 8 * MiB, script);
      expect(await fatDriver.probe(new FileBlockReader(disk))).toBe(false);
    }
  });

  it('reads a FAT32-shaped volume of fewer than 65525 clusters as FAT32, as fsck.fat and Linux do', async () => {
    // mkfs.fat makes it (with a warning); the spec's count rule alone would call it FAT16, and
    // mtools, which follows that rule, then finds no root directory slots at all.
    const image = join(work, 'small-fat32.img');
    makeSparseFile(image, 64 * MiB);
    tool(env, 'mkfs.fat', ['-F', '32', '-s', '8', image]);
    expect(tool(env, 'fsck.fat', ['-n', '-v', image])).toMatch(/16348 clusters|less than the required minimum of 65525/);
    const fs = await fatDriver.open(new FileBlockReader(image), { name: 'small-fat32' });
    const names: string[] = [];
    for await (const entry of fs.readdir(fs.rootId)) names.push(entry.name.toString());
    expect(names).toEqual([]);
    expect((await fs.stat(fs.rootId)).size).toBe(4096);
  });

  it('does not claim a volume smaller than a boot sector', async () => {
    const image = join(work, 'tiny.img');
    makeSparseFile(image, 100);
    expect(await fatDriver.probe(new FileBlockReader(image))).toBe(false);
  });
});
