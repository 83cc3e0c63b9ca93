// The one namespace over a real point: a GPT disk with an ext4 partition and an LVM PV partition, a
// whole-disk PV of the same VG (an LV spanning both disks, holding ext4), and a disk that is one ext4
// filesystem with no table. Every filesystem is compared with the kernel's loop mount of the image
// the test made (never with Cairn's own view), and every volume's bytes with the bytes the test wrote.
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockReader } from '../../src/core/block-reader.js';
import { isCairnError } from '../../src/core/errors.js';
import { Namespace, type NamespaceNode } from '../../src/restore/namespace/index.js';
import { openUrlReader } from '../../src/restore/open-url.js';
import { parseCairnUrl } from '../../src/url/cairn-url.js';
import { MiB, makeTempDir } from '../helpers/disk-images.js';
import { mkfs, run, withMount } from '../helpers/ext4-images.js';
import { backup, catalogOf, makeRepository } from '../helpers/fuse-harness.js';
import { compareWithKernel } from '../helpers/guest-fs-oracle.js';
import { LvmSandbox, lvLayoutFromReport, readLvFromDevices, writeLvToDevices, type LoopDevice } from '../helpers/lvm-images.js';

const sandbox = new LvmSandbox();
let dir: string;
let namespace: Namespace;
const images: Record<string, string> = {};
let lvBytes: Buffer;

async function names(segments: string[]): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of namespace.list(await namespace.resolve(segments))) out.push(entry.name);
  return out.sort();
}

function filesystemOf(node: NamespaceNode) {
  if (node.kind !== 'guest') throw new Error(`expected a guest node, got ${node.kind}`);
  return node.fs;
}

async function readAll(reader: BlockReader): Promise<Buffer> {
  return reader.read(0, reader.size);
}

beforeAll(async () => {
  dir = makeTempDir('namespace');
  // A guest tree with a symlink in the middle of a path and a non-UTF-8 name.
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'etc', 'nginx'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'nginx', 'nginx.conf'), 'server { listen 80; }\n');
  symlinkSync('etc/nginx', join(tree, 'conf'));
  symlinkSync('/etc', join(tree, 'abs-etc'));
  writeFileSync(Buffer.from([...Buffer.from(join(tree, 'bad-')), 0xff, 0x25]), 'odd name\n');
  images.p1 = mkfs(join(dir, 'p1.img'), { size: 16 * MiB, from: tree });
  images.whole = mkfs(join(dir, 'sdc.img'), { size: 16 * MiB, from: tree });
  images.lvfs = mkfs(join(dir, 'lv.img'), { size: 12 * MiB, from: tree });

  // sda: GPT with p1 (ext4, 16 MiB at 1 MiB) and p2 (an LVM PV, 10 MiB); sdb: a whole-disk PV.
  const sda = join(dir, 'sda.img');
  run('truncate', ['-s', String(28 * MiB), sda]);
  run('sh', [
    '-c',
    `printf 'label: gpt\\nstart=2048, size=32768, type=L\\nstart=34816, size=20480, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\\n' | sfdisk -q ${sda}`,
  ]);
  run('dd', [`if=${images.p1}`, `of=${sda}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  const sdb = join(dir, 'sdb.img');
  run('truncate', ['-s', String(10 * MiB), sdb]);
  const loops: LoopDevice[] = [sandbox.attach(sda, 34816 * 512, 20480 * 512), sandbox.attach(sdb)];
  sandbox.lvm(
    'pvcreate',
    loops.map((l) => l.device),
  );
  sandbox.lvm('vgcreate', ['-s', '1M', 'vg0', ...loops.map((l) => l.device)]);
  // root: 6 extents on p2, then 6 on sdb (a VG and an LV spanning two disks of the point).
  sandbox.restoreWithLvs('vg0', [
    {
      name: 'root',
      segments: [
        { startExtent: 0, extentCount: 6, stripes: [['pv0', 0]] },
        { startExtent: 6, extentCount: 6, stripes: [['pv1', 0]] },
      ],
    },
  ]);
  const report = sandbox.report('vg0');
  const layout = lvLayoutFromReport(report, 'root');
  writeLvToDevices(loops, layout, 0, readFileSync(images.lvfs));
  lvBytes = readLvFromDevices(loops, layout, 0, 12 * MiB);
  sandbox.cleanup();
  images.sda = sda;
  images.sdb = sdb;
  const repo = await makeRepository(join(dir, 'repo'));
  await backup(repo, 'web', { sda, sdb, sdc: images.whole });
  namespace = new Namespace(catalogOf(repo));
}, 120_000);

afterAll(() => {
  sandbox.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('the namespace over partitions, LVM and a whole-disk filesystem', () => {
  it('lists and resolves every kind of volume, and the filesystems agree with the kernel', async () => {
    expect(await names(['web', 'latest'])).toEqual(['sda', 'sdb', 'sdc']);
    expect(await names(['web', 'latest', 'sda'])).toEqual(['lvm', 'p1', 'p2']);
    expect(await names(['web', 'latest', 'sdb'])).toEqual(['lvm']);
    expect(await names(['web', 'latest', 'sda', 'lvm'])).toEqual(['vg0']);
    expect(await names(['web', 'latest', 'sdb', 'lvm', 'vg0'])).toEqual(['root']);
    expect(await names(['web', 'latest', 'sdc'])).toContain('etc');
    for (const [segments, image] of [
      [['web', 'latest', 'sda', 'p1'], images.p1!],
      [['web', 'latest', 'sdc'], images.whole!],
      [['web', 'latest', 'sda', 'lvm', 'vg0', 'root'], images.lvfs!],
    ] as const) {
      const root = await namespace.resolve([...segments, 'etc']);
      const report = await withMount(image, true, (mounted) => compareWithKernel(filesystemOf(root), mounted));
      expect(report.differences).toEqual([]);
    }
  });

  it('follows guest symlinks in the middle of a path, not at its end', async () => {
    const viaLink = await namespace.resolve(['web', 'latest', 'sda', 'p1', 'conf', 'nginx.conf']);
    expect(viaLink.kind === 'guest' && viaLink.stat.size).toBe(22);
    const viaAbsolute = await namespace.resolve(['web', 'latest', 'sdc', 'abs-etc', 'nginx', 'nginx.conf']);
    expect(viaAbsolute.kind === 'guest' && viaAbsolute.stat.type).toBe('file');
    const link = await namespace.resolve(['web', 'latest', 'sda', 'p1', 'conf']);
    expect(link.kind === 'guest' && link.stat.type).toBe('symlink');
    const file = await openUrlReader(namespace, parseCairnUrl('cairn://web/latest/sdc/conf/nginx.conf'), { files: true });
    expect((await readAll(file)).toString()).toBe('server { listen 80; }\n');
  });

  it('escapes names that are not UTF-8 and finds them again', async () => {
    expect(await names(['web', 'latest', 'sdc'])).toContain('bad-%FF%25');
    const node = await namespace.resolve(['web', 'latest', 'sdc', 'bad-%FF%25']);
    expect(node.kind === 'guest' && node.stat.size).toBe(9);
  });

  it('says what is there when a name is wrong', async () => {
    const err = await namespace.resolve(['web', 'latest', 'sda', 'p9', 'etc']).catch((e: unknown) => e);
    expect(isCairnError(err, 'ERR_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toMatch(/partition p9 not found .*p1, p2/);
    const missing = await namespace.resolve(['web', 'latest', 'sdc', 'etc', 'nope']).catch((e: unknown) => e);
    expect(isCairnError(missing, 'ERR_NOT_FOUND')).toBe(true);
  });

  it('serves each volume as the bytes the test wrote', async () => {
    const p1 = await openUrlReader(namespace, parseCairnUrl('cairn://web/latest/sda/p1'));
    expect((await readAll(p1)).equals(readFileSync(images.p1!))).toBe(true);
    const whole = await openUrlReader(namespace, parseCairnUrl('cairn://web/latest/sdc'));
    expect((await readAll(whole)).equals(readFileSync(images.whole!))).toBe(true);
    // The LV spans p2 of sda and the whole of sdb; it reads the same through either disk's name.
    for (const disk of ['sda', 'sdb']) {
      const lv = await openUrlReader(namespace, parseCairnUrl(`cairn://web/latest/${disk}/lvm/vg0/root`));
      expect((await readAll(lv)).equals(lvBytes), disk).toBe(true);
    }
    expect(lvBytes.equals(readFileSync(images.lvfs!))).toBe(true);
  });

  it('refuses a partition that is a PV as a directory, pointing at lvm/', async () => {
    const err = await namespace.resolve(['web', 'latest', 'sda', 'p2', 'etc']).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/LVM physical volume.*sda\/lvm/);
  });
});
