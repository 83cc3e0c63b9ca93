import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isCairnError } from '../../../src/core/errors.js';
import { findPartition, readPartitionTable, type PartitionTable } from '../../../src/guest/index.js';
import {
  FileBlockReader,
  MiB,
  flipByte,
  makeSparseFile,
  nodeNumber,
  run,
  sfdiskImage,
  sfdiskJson,
  writeAt,
  makeTempDir,
} from '../../helpers/disk-images.js';

let dir: string;
beforeEach(() => {
  dir = makeTempDir('guest');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function tableOf(path: string): Promise<PartitionTable> {
  return readPartitionTable(new FileBlockReader(path));
}

/** Our view must agree with sfdisk's own reading of the same image. */
function expectMatchesSfdisk(table: PartitionTable, path: string): void {
  const oracle = sfdiskJson(path);
  const expected = oracle.partitions
    .filter((p) => !['5', 'f', '85'].includes(p.type))
    .map((p) => ({ number: nodeNumber(p.node), offset: p.start * oracle.sectorsize, length: p.size * oracle.sectorsize }));
  expect(table.partitions.map(({ number, offset, length }) => ({ number, offset, length }))).toEqual(expected);
  expect(table.sectorSize).toBe(oracle.sectorsize);
}

async function expectFormatError(path: string, pattern: RegExp): Promise<void> {
  const err = await tableOf(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isCairnError(err, 'ERR_FORMAT_INVALID'), String(err)).toBe(true);
  expect((err as Error).message).toMatch(pattern);
}

describe('GPT', () => {
  function gptDisk(): string {
    return sfdiskImage(join(dir, 'gpt.img'), 16 * MiB, 'label: gpt\nsize=4M, type=L, name=root\nsize=2M, type=S, name=swap\ntype=U\n');
  }

  it('reads an sfdisk GPT with names, GUIDs and types as sfdisk does', async () => {
    const path = gptDisk();
    const table = await tableOf(path);
    expect(table.kind).toBe('gpt');
    expect(table.warnings).toEqual([]);
    expectMatchesSfdisk(table, path);
    const oracle = sfdiskJson(path);
    expect(table.diskId).toBe(oracle.id);
    expect(table.partitions.map((p) => [p.type, p.uuid, p.name ?? ''])).toEqual(
      oracle.partitions.map((p) => [p.type, p.uuid, p.name ?? '']),
    );
    expect(table.partitions.map((p) => p.typeName)).toEqual(['Linux filesystem', 'Linux swap', 'EFI System']);
  });

  it('reads an sgdisk GPT and keeps entry numbering with gaps', async () => {
    const path = join(dir, 'sg.img');
    makeSparseFile(path, 16 * MiB);
    run('sgdisk', ['-n', '2:2048:+3M', '-c', '2:second', '-t', '2:8300', '-n', '5:0:+1M', '-t', '5:ef02', path]);
    const table = await tableOf(path);
    expect(table.partitions.map((p) => p.number)).toEqual([2, 5]);
    expect(table.partitions[0]).toMatchObject({ offset: 2048 * 512, length: 3 * MiB, name: 'second' });
    expect(table.partitions[1]?.typeName).toBe('BIOS boot');
    expectMatchesSfdisk(table, path);
  });

  it('takes the protective MBR as a GPT disk, not as one 0xEE partition', async () => {
    const path = gptDisk();
    const mbr = (await new FileBlockReader(path).read(0, 512)).readUInt8(446 + 4);
    expect(mbr).toBe(0xee);
    expect((await tableOf(path)).partitions).toHaveLength(3);
  });

  it('falls back to the backup header when the primary header CRC fails', async () => {
    const path = gptDisk();
    const reference = await tableOf(path);
    flipByte(path, 512 + 60); // inside the disk GUID, covered by the header CRC
    const table = await tableOf(path);
    expect(table.partitions).toEqual(reference.partitions);
    expect(table.warnings.join()).toMatch(/primary GPT is damaged.*CRC-32.*backup header at LBA 32767/);
  });

  it('falls back to the backup entries when the primary entries CRC fails', async () => {
    const path = gptDisk();
    const reference = await tableOf(path);
    flipByte(path, 2 * 512 + 40); // first entry's last LBA
    const table = await tableOf(path);
    expect(table.partitions).toEqual(reference.partitions);
    expect(table.warnings.join()).toMatch(/partition entries at LBA 2 fail their CRC-32/);
  });

  it('uses the backup when the primary header is wiped entirely', async () => {
    const path = gptDisk();
    const reference = await tableOf(path);
    writeAt(path, 512, Buffer.alloc(512));
    const table = await tableOf(path);
    expect(table.partitions).toEqual(reference.partitions);
    expect(table.warnings.join()).toMatch(/no GPT header at LBA 1/);
  });

  it('reports a clear error when both headers are damaged', async () => {
    const path = gptDisk();
    flipByte(path, 512 + 60);
    flipByte(path, 16 * MiB - 512 + 60);
    await expectFormatError(path, /GPT partition table is damaged.*primary:.*CRC-32.*backup:.*CRC-32/);
  });

  it('reports a protective MBR without any GPT header', async () => {
    const path = gptDisk();
    writeAt(path, 512, Buffer.alloc(512));
    writeAt(path, 16 * MiB - 512, Buffer.alloc(512));
    await expectFormatError(path, /protective MBR but neither a primary nor a backup GPT header/);
  });

  it('reads a GPT on 4096-byte sectors (a 4Kn loop device)', async () => {
    const path = join(dir, '4kn.img');
    makeSparseFile(path, 16 * MiB);
    const loop = execFileSync('losetup', ['-f', '--show', '-b', '4096', path], { encoding: 'utf8' }).trim();
    try {
      run('sfdisk', ['-q', loop], 'label: gpt\n,4M,L\n,,L\n');
    } finally {
      execFileSync('losetup', ['-d', loop]);
    }
    const table = await tableOf(path);
    expect(table.sectorSize).toBe(4096);
    expect(table.partitions[0]).toMatchObject({ number: 1, offset: 256 * 4096, length: 4 * MiB });
    expect(table.partitions).toHaveLength(2);
  });
});

describe('MBR', () => {
  function dosDisk(): string {
    return sfdiskImage(join(dir, 'dos.img'), 24 * MiB, 'label: dos\n,4M,c,*\n,2M,83\n,,E\n,3M,83\n,2M,82\n,,83\n');
  }

  it('reads primary and logical partitions as sfdisk does, numbering logicals from 5', async () => {
    const path = dosDisk();
    const table = await tableOf(path);
    expect(table.kind).toBe('mbr');
    expectMatchesSfdisk(table, path);
    expect(table.partitions.map((p) => [p.number, p.type, p.bootable, p.logical ?? false])).toEqual([
      [1, '0x0c', true, false],
      [2, '0x83', false, false],
      [5, '0x83', false, true],
      [6, '0x82', false, true],
      [7, '0x83', false, true],
    ]);
    expect(`0x${table.diskId}`).toBe(sfdiskJson(path).id);
  });

  it('refuses an EBR chain that loops', async () => {
    const path = dosDisk();
    const oracle = sfdiskJson(path);
    const extended = oracle.partitions.find((p) => p.type === '5');
    if (!extended) throw new Error('no extended partition');
    // Point the first EBR's link slot back at the first EBR itself.
    const link = Buffer.alloc(4);
    link.writeUInt32LE(0);
    writeAt(path, extended.start * 512 + 446 + 16 + 8, link);
    await expectFormatError(path, /extended partition chain is invalid.*loops/);
  });

  it('refuses a partition that ends past the disk', async () => {
    const path = dosDisk();
    const count = Buffer.alloc(4);
    count.writeUInt32LE(10_000_000);
    writeAt(path, 446 + 12, count);
    await expectFormatError(path, /MBR partition table is invalid: entry 1 .* ends past the disk/);
  });

  it('refuses a damaged status byte', async () => {
    const path = dosDisk();
    writeAt(path, 446 + 16, Buffer.from([0x37]));
    await expectFormatError(path, /entry 2 has status byte 0x37/);
  });

  it('finds a partition by number or names the ones that exist', async () => {
    const table = await tableOf(dosDisk());
    expect(findPartition(table, 6).logical).toBe(true);
    expect(() => findPartition(table, 3)).toThrow(/partition p3 not found \(mbr table; partitions: p1, p2, p5, p6, p7\)/);
  });
});

describe('disks without a table', () => {
  it('answers none for an ext4 filesystem on the whole disk', async () => {
    const path = join(dir, 'whole.ext4');
    makeSparseFile(path, 8 * MiB);
    run('mkfs.ext4', ['-q', '-F', path]);
    expect(await tableOf(path)).toMatchObject({ kind: 'none', partitions: [] });
  });

  it('answers none for a FAT superfloppy despite its 55 AA signature', async () => {
    const path = join(dir, 'whole.fat');
    makeSparseFile(path, 8 * MiB);
    run('mkfs.vfat', [path]);
    expect(await tableOf(path)).toMatchObject({ kind: 'none', partitions: [] });
  });

  it('answers none for an empty disk', async () => {
    const path = join(dir, 'empty.img');
    makeSparseFile(path, 4 * MiB);
    expect(await tableOf(path)).toMatchObject({ kind: 'none', partitions: [] });
  });
});
