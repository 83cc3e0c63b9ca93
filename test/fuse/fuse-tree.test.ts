import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mountCatalog, type FuseMount } from '../../src/fuse/index.js';
import { KERNEL_READ_AHEAD_KIB } from '../../src/fuse/kernel-read-ahead.js';
import type { Repository } from '../../src/store/repository.js';
import { MiB, flipByte, kernelSupports, makeGptExt4Disk, makeMbrFatDisk, makeTempDir, sfdiskJson } from '../helpers/disk-images.js';
import { backup, catalogOf, isMounted, makeRepository, sh, shOk, waitFor } from '../helpers/fuse-harness.js';

let dir: string;
let mnt: string;
let repo: Repository;
const mounts: FuseMount[] = [];

beforeEach(async () => {
  dir = makeTempDir('fuse');
  mnt = join(dir, 'mnt');
  repo = await makeRepository(join(dir, 'repo'));
});

afterEach(async () => {
  for (const mount of mounts.splice(0)) await mount.unmount();
  rmSync(dir, { recursive: true, force: true });
});

async function mountRepo(): Promise<FuseMount> {
  const mount = await mountCatalog(catalogOf(repo), mnt);
  mounts.push(mount);
  return mount;
}

function randomDisk(name: string, size: number): string {
  const path = join(dir, name);
  writeFileSync(path, randomBytes(size));
  return path;
}

/**
 * Loop-mounts a partition file read-only (through the FUSE mount) and compares every sample file.
 * A kernel without the filesystem (test kernels often lack vfat) reads FAT with mtools instead, still
 * through the FUSE file; anything else missing fails.
 */
async function expectFilesInPartition(partitionFile: string, files: Record<string, Buffer>, fstype: string): Promise<void> {
  const expectedDir = join(dir, `expected-${fstype}`);
  for (const [name, data] of Object.entries(files)) {
    mkdirSync(join(expectedDir, name, '..'), { recursive: true });
    writeFileSync(join(expectedDir, name), data);
  }
  if (!kernelSupports(fstype) && fstype === 'vfat') {
    const copied = join(dir, 'mtools-out');
    mkdirSync(copied);
    for (const name of Object.keys(files)) {
      const out = join(copied, name.replace(/\//g, '_'));
      await shOk('mcopy', ['-n', '-i', partitionFile, `::/${name}`, out]);
      const result = await sh('cmp', [join(expectedDir, name), out]);
      expect(result.code, `${name}: ${result.stdout}${result.stderr}`).toBe(0);
    }
    return;
  }
  const loopDir = join(dir, `loop-${fstype}`);
  mkdirSync(loopDir);
  await shOk('mount', ['-o', 'loop,ro', '-t', fstype, partitionFile, loopDir]);
  try {
    for (const name of Object.keys(files)) {
      const result = await sh('cmp', [join(expectedDir, name), join(loopDir, name)]);
      expect(result.code, `${name}: ${result.stdout}${result.stderr}`).toBe(0);
    }
  } finally {
    await shOk('umount', [loopDir]);
  }
}

describe('FUSE tree over a repository', () => {
  it('reads straight into the reply buffer when the reader can copy into one (readInto)', async () => {
    const source = randomDisk('direct.img', 2 * MiB + 4321);
    const holey = join(dir, 'holey.img');
    writeFileSync(holey, Buffer.concat([randomBytes(MiB), Buffer.alloc(2 * MiB), randomBytes(777)]));
    const point = await backup(repo, 'web', { sda: source, sdb: holey });
    const base = catalogOf(repo);
    let directReads = 0;
    // The repository's readers, given the optional copy-into-a-buffer read.
    const catalog = Object.assign(Object.create(base) as typeof base, {
      openDisk: async (vm: string, id: string, disk: string) => {
        const reader = await base.openDisk(vm, id, disk);
        return {
          size: reader.size,
          blockSize: reader.blockSize,
          read: (offset: number, length: number) => reader.read(offset, length),
          allocation: (offset: number, length: number) => reader.allocation(offset, length),
          readInto: async (offset: number, length: number, target: Buffer) => {
            directReads++;
            (await reader.read(offset, length)).copy(target);
          },
        };
      },
    });
    mounts.push(await mountCatalog(catalog, mnt));
    expect((await sh('cmp', [source, join(mnt, 'web', point, 'sda.raw')])).code).toBe(0);
    expect((await sh('cmp', [holey, join(mnt, 'web', point, 'sdb.raw')])).code).toBe(0);
    expect(directReads).toBeGreaterThan(0);
  });

  it('shows VM/POINT/DISK.raw with exact bytes, size, mtime, modes, latest and config', async () => {
    const source = randomDisk('disk0.img', 3 * MiB + 12345);
    const sparse = join(dir, 'disk1.img');
    writeFileSync(sparse, Buffer.alloc(2 * MiB));
    const config = Buffer.from('<domain><name>web</name></domain>\n');
    const point = await backup(repo, 'web', { sda: source, sdb: sparse }, config);
    const info = await catalogOf(repo).getPoint('web', point);
    await mountRepo();

    expect((await shOk('ls', ['-1', mnt])).split('\n')).toContain('web');
    expect((await shOk('ls', ['-1', join(mnt, 'web')])).trim().split('\n').sort()).toEqual([point, 'latest'].sort());
    expect((await shOk('readlink', [join(mnt, 'web', 'latest')])).trim()).toBe(point);
    expect((await shOk('ls', ['-1', join(mnt, 'web', point)])).trim().split('\n').sort()).toEqual(
      ['config', 'sda', 'sda.raw', 'sdb', 'sdb.raw'].sort(),
    );
    // stat: size, mtime (seconds), mode, owner
    const stat = (await shOk('stat', ['-L', '-c', '%s %Y %a %u %F', join(mnt, 'web', 'latest', 'sda.raw')])).trim();
    expect(stat).toBe(`${3 * MiB + 12345} ${Math.floor(info.createdMs / 1000)} 440 ${process.getuid!()} regular file`);
    expect((await shOk('stat', ['-c', '%a %F', join(mnt, 'web', point)])).trim()).toBe('550 directory');

    expect((await sh('cmp', [source, join(mnt, 'web', point, 'sda.raw')])).code).toBe(0);
    expect((await sh('cmp', [sparse, join(mnt, 'web', 'latest', 'sdb.raw')])).code).toBe(0);
    expect(await shOk('cat', [join(mnt, 'web', point, 'config')])).toBe(config.toString());

    // Read-only: writing is refused.
    const write = await sh('dd', ['if=/dev/zero', `of=${join(mnt, 'web', point, 'sda.raw')}`, 'bs=4k', 'count=1', 'conv=notrunc']);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/Read-only file system|Permission denied/);

    // statfs reports the repository's filesystem.
    const repoFs = (await shOk('stat', ['-f', '-c', '%b %S', join(dir, 'repo')])).trim().split(' ').map(Number);
    const mntFs = (await shOk('stat', ['-f', '-c', '%b %S %T', mnt])).trim().split(' ');
    expect(Number(mntFs[0]) * Number(mntFs[1])).toBeCloseTo(repoFs[0]! * repoFs[1]!, -7);
    expect(mntFs[2]).toMatch(/fuse/);

    // The kernel reads ahead 1 MiB on the mount (its default 128 KiB halves sequential restores).
    const device = (await shOk('mountpoint', ['-d', mnt])).trim();
    expect(readFileSync(`/sys/class/bdi/${device}/read_ahead_kb`, 'utf8').trim()).toBe(String(KERNEL_READ_AHEAD_KIB));
  });

  it('serves a GPT disk ext4 partition that mount -o loop,ro reads file by file', async () => {
    const { disk, files } = makeGptExt4Disk(dir);
    const point = await backup(repo, 'db', { vda: disk });
    await mountRepo();
    // p1 holds ext4, so its files show under p1/ too; p2 holds no filesystem: only its image.
    expect((await shOk('ls', ['-1', join(mnt, 'db', point, 'vda')])).trim().split('\n')).toEqual(['p1', 'p1.raw', 'p2.raw']);
    for (const [name, data] of Object.entries(files)) {
      // Asynchronous: this process serves the mount, so a synchronous read would wait on itself.
      expect((await readFile(join(mnt, 'db', point, 'vda', 'p1', name))).equals(data), name).toBe(true);
    }
    const table = sfdiskJson(disk);
    const p2 = table.partitions[1]!;
    expect(statSync(disk).size).toBe(32 * MiB);
    const size = (await shOk('stat', ['-c', '%s', join(mnt, 'db', point, 'vda', 'p2.raw')])).trim();
    expect(Number(size)).toBe(p2.size * 512);
    // p2 bytes equal the disk's bytes at p2's offset.
    const direct = await sh('cmp', [
      '-n',
      String(p2.size * 512),
      join(mnt, 'db', point, 'vda', 'p2.raw'),
      disk,
      '0',
      String(p2.start * 512),
    ]);
    expect(direct.code, direct.stdout).toBe(0);
    await expectFilesInPartition(join(mnt, 'db', 'latest', 'vda', 'p1.raw'), files, 'ext4');
  });

  it('serves an MBR disk FAT partition and its logical partitions', async () => {
    const { disk, files } = makeMbrFatDisk(dir);
    const point = await backup(repo, 'win', { hda: disk });
    await mountRepo();
    expect((await shOk('ls', ['-1', join(mnt, 'win', point, 'hda')])).trim().split('\n')).toEqual(['p1', 'p1.raw', 'p5.raw', 'p6.raw']);
    for (const [name, data] of Object.entries(files)) {
      // Asynchronous: this process serves the mount, so a synchronous read would wait on itself.
      expect((await readFile(join(mnt, 'win', point, 'hda', 'p1', name))).equals(data), name).toBe(true);
    }
    const p5 = sfdiskJson(disk).partitions.find((p) => p.node.endsWith('5'))!;
    const direct = await sh('cmp', [
      '-n',
      String(p5.size * 512),
      join(mnt, 'win', point, 'hda', 'p5.raw'),
      disk,
      '0',
      String(p5.start * 512),
    ]);
    expect(direct.code, direct.stdout).toBe(0);
    await expectFilesInPartition(join(mnt, 'win', point, 'hda', 'p1.raw'), files, 'vfat');
  });

  it('lists no partitions for a disk whose table is damaged, and still serves the disk', async () => {
    const { disk } = makeGptExt4Disk(dir);
    flipByte(disk, 512 + 60); // primary GPT header
    flipByte(disk, 32 * MiB - 512 + 60); // backup GPT header
    const point = await backup(repo, 'bad', { vda: disk });
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    mounts.push(await mountCatalog(catalogOf(repo), mnt, { log }));
    expect((await shOk('ls', ['-A', join(mnt, 'bad', point, 'vda')])).trim()).toBe('');
    expect(lines.join('')).toMatch(/partitions not shown: GPT partition table is damaged/);
    expect((await sh('stat', [join(mnt, 'bad', point, 'vda', 'p1.raw')])).code).not.toBe(0);
    expect((await sh('cmp', [disk, join(mnt, 'bad', point, 'vda.raw')])).code).toBe(0);
  });

  it('shows new points without remounting and drops removed ones', async () => {
    const first = await backup(repo, 'app', { sda: randomDisk('a.img', MiB) });
    await mountRepo();
    expect((await shOk('ls', [join(mnt, 'app')])).trim().split('\n').sort()).toEqual([first, 'latest'].sort());
    const second = await backup(repo, 'app', { sda: randomDisk('b.img', MiB) });
    await backup(repo, 'other', { sda: randomDisk('c.img', MiB) });
    await waitFor('the new point to appear', async () => (await sh('ls', [join(mnt, 'app')])).stdout.includes(second));
    await waitFor('the new VM to appear', async () => (await sh('ls', [mnt])).stdout.includes('other'));
    await waitFor('latest to follow', async () => (await sh('readlink', [join(mnt, 'app', 'latest')])).stdout.trim() === second);
    expect((await sh('cmp', [join(dir, 'b.img'), join(mnt, 'app', 'latest', 'sda.raw')])).code).toBe(0);
    await repo.removePoint('app', first);
    await waitFor('the removed point to vanish', async () => !(await sh('ls', [join(mnt, 'app')])).stdout.includes(first));
    // The kernel may keep a looked-up entry for its entry timeout (1 s): it must go within that.
    await waitFor('the removed point to be gone for stat too', async () => (await sh('stat', [join(mnt, 'app', first)])).code !== 0);
  });

  it('serves concurrent readers of several files', async () => {
    const disks = { sda: randomDisk('ca.img', 4 * MiB), sdb: randomDisk('cb.img', 3 * MiB + 999) };
    const point = await backup(repo, 'busy', disks);
    await mountRepo();
    const readers = [];
    for (let i = 0; i < 3; i++) {
      readers.push(sh('cmp', [disks.sda, join(mnt, 'busy', point, 'sda.raw')]));
      readers.push(sh('cmp', [disks.sdb, join(mnt, 'busy', point, 'sdb.raw')]));
      readers.push(sh('dd', [`if=${join(mnt, 'busy', point, 'sda.raw')}`, 'of=/dev/null', 'bs=64k', `skip=${i * 7}`]));
    }
    const results = await Promise.all(readers);
    expect(results.map((r) => r.code)).toEqual(results.map(() => 0));
  });

  it('replaces a mount point that is already mounted only when it is stale', async () => {
    await backup(repo, 'vm1', { sda: randomDisk('s.img', MiB) });
    await mountRepo();
    await expect(mountCatalog(catalogOf(repo), mnt)).rejects.toThrow(/already a mount point/);
    expect(await isMounted(mnt)).toBe(true);
  });
});
