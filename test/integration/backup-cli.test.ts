import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, runCairn, runJson } from '../helpers/cairn-cli.js';

const MiB = 1024 * 1024;

interface BackupJson {
  vm: string;
  point: string;
  parent: string | null;
  disks: { disk: string; size: number; bytesRead: number; bytesStored: number }[];
}

/** A sparse image with random data at the given MiB offsets. */
async function makeImage(path: string, sizeMiB: number, dataAtMiB: number[]): Promise<void> {
  const handle = await open(path, 'w');
  await handle.truncate(sizeMiB * MiB);
  for (const at of dataAtMiB) await handle.write(randomBytes(MiB), 0, MiB, at * MiB);
  await handle.close();
}

describe('cairn backup / cat / restore / stat / ls', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let repo: string;
  const cairn = (...args: string[]) => runCairn([...args, '--repo', repo]);
  beforeEach(async () => {
    dir = await makeTempDir();
    repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo, '--chunk-size', '256KiB'])).code).toBe(0);
  });
  afterEach(() => dir.cleanup());

  it('backs up a sparse file, stores holes as holes and restores it byte for byte', async () => {
    const image = join(dir.path, 'disk.raw');
    await makeImage(image, 64, [0, 5, 63]);
    const result = await runJson<BackupJson>(['backup', '--repo', repo, '--vm', 'web', '--disk', `sda=${image}`]);
    expect(result.disks[0]).toMatchObject({ disk: 'sda', size: 64 * MiB });
    // SEEK_DATA skips the holes: only the three data MiB are read.
    expect(result.disks[0]!.bytesRead).toBe(3 * MiB);

    const cat = await cairn('cat', 'cairn://web/latest/sda');
    expect(cat.code).toBe(0);
    expect(cat.stdout.equals(await readFile(image))).toBe(true);

    const restored = join(dir.path, 'restored.raw');
    expect((await cairn('restore', `cairn://web/${result.point}/sda`, restored)).code).toBe(0);
    execFileSync('cmp', [image, restored]);
    // Restored sparse: allocated blocks are about the data, not the 64 MiB.
    expect((await stat(restored)).blocks * 512).toBeLessThan(8 * MiB);
    const again = await cairn('restore', `cairn://web/${result.point}/sda`, restored);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists; pass --force/);

    const info = await runJson<{ chunks: number; dataChunks: number; holeChunks: number; parent: string | null }>([
      'stat',
      '--repo',
      repo,
      'cairn://web/latest/sda',
    ]);
    expect(info).toMatchObject({ chunks: 256, dataChunks: 12, holeChunks: 244, parent: null });

    const points = await runJson<{ point: string }[]>(['ls', '--repo', repo, 'cairn://web']);
    expect(points.map((p) => p.point)).toEqual([result.point]);
    const vms = await runJson<{ vm: string }[]>(['ls', '--repo', repo]);
    expect(vms.map((v) => v.vm)).toEqual(['web']);
  });

  it('backs up several disks from a file and stdin into one point, with a VM configuration', async () => {
    const a = join(dir.path, 'a.raw');
    await makeImage(a, 4, [1]);
    const b = randomBytes(3 * MiB + 12345);
    const config = join(dir.path, 'vm.conf');
    await writeFile(config, 'memory: 2048\ncores: 2\n');
    const result = await runJson<BackupJson>(
      ['backup', '--repo', repo, '--vm', 'db', '--disk', `vda=${a}`, '--disk', 'vdb=-', '--config', config],
      { input: b },
    );
    expect(result.disks.map((d) => [d.disk, d.size])).toEqual([
      ['vda', 4 * MiB],
      ['vdb', b.length],
    ]);
    expect((await cairn('cat', 'cairn://db/latest/vdb')).stdout.equals(b)).toBe(true);
    const configOut = await cairn('config', 'cairn://db/latest');
    expect(configOut.stdout.toString()).toBe('memory: 2048\ncores: 2\n');
  });

  it('incremental with a Xen changed-block bitmap reads only the marked blocks', async () => {
    const image = join(dir.path, 'disk.raw');
    await writeFile(image, randomBytes(16 * MiB));
    const full = await runJson<BackupJson>(['backup', '--repo', repo, '--vm', 'xen', '--disk', `xvda=${image}`]);
    // Change 64 KiB blocks 3 and 130, and tell Cairn so in base64, as VDI.list_changed_blocks does.
    const handle = await open(image, 'r+');
    for (const block of [3, 130]) await handle.write(randomBytes(65536), 0, 65536, block * 65536);
    await handle.close();
    const bits = Buffer.alloc(32);
    bits[0] = 1 << 3;
    bits[16] = 1 << 2;
    await writeFile(join(dir.path, 'cbt.b64'), bits.toString('base64'));
    const incremental = await runJson<BackupJson>([
      'backup',
      '--repo',
      repo,
      '--vm',
      'xen',
      '--disk',
      `xvda=${image}`,
      '--base',
      'latest',
      '--changed-blocks',
      `xvda=${join(dir.path, 'cbt.b64')}`,
    ]);
    expect(incremental.parent).toBe(full.point);
    expect(incremental.disks[0]!.bytesRead).toBe(2 * 65536);
    expect((await cairn('cat', `cairn://xen/${incremental.point}/xvda`)).stdout.equals(await readFile(image))).toBe(true);
    // The full point is untouched.
    expect((await cairn('verify')).code).toBe(0);
  });

  it('incremental without a bitmap stores only the chunks that changed', async () => {
    const image = join(dir.path, 'disk.raw');
    await writeFile(image, randomBytes(8 * MiB));
    await runJson<BackupJson>(['backup', '--repo', repo, '--vm', 'vm', '--disk', `sda=${image}`]);
    const handle = await open(image, 'r+');
    await handle.write(Buffer.alloc(1000, 7), 0, 1000, 3 * MiB);
    await handle.close();
    const second = await runJson<BackupJson>(['backup', '--repo', repo, '--vm', 'vm', '--disk', `sda=${image}`, '--base', 'latest']);
    expect(second.disks[0]!.bytesRead).toBe(8 * MiB);
    expect(second.disks[0]!.bytesStored).toBeLessThan(300 * 1024);
    const monitor = await runJson<{ points: number; dedupRatio: number; chunks: number }>(['monitor', '--repo', repo]);
    expect(monitor.points).toBe(2);
    expect(monitor.chunks).toBe(33);
    expect(monitor.dedupRatio).toBeGreaterThan(1.9);
  });

  it('names a missing or unreadable source and leaves no point', async () => {
    const missing = await cairn('backup', '--vm', 'x', '--disk', `sda=${join(dir.path, 'nope.raw')}`);
    expect(missing.code).toBe(7);
    expect(missing.stderr).toMatch(/cannot open source .*nope\.raw: no such file/);
    const directory = await cairn('backup', '--vm', 'x', '--disk', `sda=${dir.path}`);
    expect(directory.code).toBe(7);
    expect(directory.stderr).toMatch(/is a directory/);
    expect((await runJson<unknown[]>(['ls', '--repo', repo])).length).toBe(0);
  });

  it('reads a qcow2 file as the disk inside it, and warns when --format raw keeps its bytes instead', async () => {
    const qcow2 = join(dir.path, 'disk.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '16M']);
    const inside = await runJson<{ disks: { size: number }[] }>(['backup', '--repo', repo, '--vm', 'q', '--disk', `sda=${qcow2}`]);
    expect(inside.disks[0]!.size).toBe(16 * 1024 * 1024);
    const result = await cairn('backup', '--vm', 'q', '--disk', `sda=${qcow2}`, '--format', 'raw');
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('looks like a qcow2 image, not a raw disk');
  });

  it('gives clear errors for bad URLs, unknown points and usage', async () => {
    expect((await cairn('cat', 'cairn://nosuch/latest/sda')).stderr).toMatch(/VM 'nosuch' has no restore points/);
    expect((await cairn('cat', 'cairn://nosuch/latest/sda')).code).toBe(3);
    expect((await cairn('stat', 'cairn://a/b')).stderr).toMatch(/does not name a disk/);
    expect((await runCairn(['ls', '--repo', join(dir.path, 'none')])).stderr).toMatch(/no Cairn repository/);
    expect((await cairn('frobnicate')).code).toBe(2);
  });
});
