// Cairn's LVM reader against lvm2 itself: VGs and LVs written by pvcreate/vgcreate/vgcfgrestore on
// loop devices; names, sizes and the extent mapping taken from lvs/pvs/vgs reports; expected bytes read
// from the devices at the offsets that mapping gives (computed here, never by Cairn's parser).
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockReader } from '../../src/core/block-reader.js';
import { isCairnError } from '../../src/core/errors.js';
import { assembleVolumeGroups, findLogicalVolume, findVolumeGroup, openPartition, type LvmScan } from '../../src/guest/index.js';
import { FileBlockReader, MiB, makeExt4Image, makeSampleTree, run } from '../helpers/disk-images.js';
import {
  LvmSandbox,
  lvLayoutFromReport,
  patternBytes,
  readLvFromDevices,
  writeLvToDevices,
  type LoopDevice,
  type LvmReport,
} from '../helpers/lvm-images.js';

const DISK_SIZE = 24 * MiB;

/** Fills every PV's data area with bytes unique to the device, so a misplaced read shows. */
function fillDataAreas(report: LvmReport, loops: LoopDevice[], skip: (device: string, offset: number) => boolean = () => false): void {
  report.pvs.forEach((pv, index) => {
    const loop = loops.find((l) => l.device === pv.pv_name) as LoopDevice;
    const start = Number(pv.pe_start);
    const extent = Number(report.vg.vg_extent_size);
    for (let at = start; at + extent <= loop.size; at += extent) {
      if (skip(pv.pv_name, at)) continue;
      const bytes = patternBytes(extent, (index + 1) * 100_003 + at / extent);
      writeAtImage(loop, at, bytes);
    }
  });
}

function writeAtImage(loop: LoopDevice, offset: number, bytes: Buffer): void {
  const fd = openSync(loop.image, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, loop.offset + offset);
  } finally {
    closeSync(fd);
  }
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err,
  );
}

function lvNamesOf(report: LvmReport): string[] {
  return [...new Set(report.segments.map((row) => row.lv_name))].sort();
}

async function expectLvMatchesDevices(scan: LvmScan, report: LvmReport, loops: LoopDevice[], vg: string, lv: string): Promise<BlockReader> {
  const reader = findLogicalVolume(scan, vg, lv).open();
  const layout = lvLayoutFromReport(report, lv);
  const expected = readLvFromDevices(loops, layout, 0, reader.size);
  const actual = await reader.read(0, reader.size);
  expect(actual.equals(expected), `${vg}/${lv} whole read`).toBe(true);
  // Unaligned reads that straddle stripe and segment boundaries.
  let state = 12345;
  for (let i = 0; i < 40; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const offset = state % reader.size;
    const length = Math.min(reader.size - offset, 1 + ((state >>> 8) % (300 * 1024)));
    const part = await reader.read(offset, length);
    expect(part.equals(expected.subarray(offset, offset + length)), `${vg}/${lv} ${offset}+${length}`).toBe(true);
  }
  return reader;
}

describe('a VG spanning two disks (linear, striped, several segments, ext4)', () => {
  const sandbox = new LvmSandbox();
  let loops: LoopDevice[];
  let report: LvmReport;
  let scan: LvmScan;
  let ext4Image: string;
  let files: Record<string, Buffer>;

  beforeAll(async () => {
    loops = [sandbox.attach(sandbox.image('d1.img', DISK_SIZE)), sandbox.attach(sandbox.image('d2.img', DISK_SIZE))];
    sandbox.lvm(
      'pvcreate',
      loops.map((l) => l.device),
    );
    sandbox.lvm('vgcreate', ['-s', '1M', 'cairn_span', ...loops.map((l) => l.device)]);
    sandbox.restoreWithLvs('cairn_span', [
      { name: 'lin', segments: [{ startExtent: 0, extentCount: 4, stripes: [['pv0', 0]] }] },
      {
        name: 'str',
        segments: [
          {
            startExtent: 0,
            extentCount: 6,
            stripes: [
              ['pv0', 4],
              ['pv1', 0],
            ],
            stripeSizeSectors: 128,
          },
        ],
      },
      {
        name: 'multi',
        segments: [
          { startExtent: 0, extentCount: 2, stripes: [['pv1', 3]] },
          { startExtent: 2, extentCount: 1, stripes: [['pv0', 7]] },
          {
            startExtent: 3,
            extentCount: 4,
            stripes: [
              ['pv0', 8],
              ['pv1', 5],
            ],
            stripeSizeSectors: 16,
          },
        ],
      },
      { name: 'holes', segments: [{ startExtent: 0, extentCount: 2, stripes: [['pv1', 7]] }] },
      {
        name: 'ext',
        segments: [
          { startExtent: 0, extentCount: 5, stripes: [['pv0', 10]] },
          { startExtent: 5, extentCount: 5, stripes: [['pv1', 10]] },
        ],
      },
    ]);
    report = sandbox.report('cairn_span');
    const holes = lvLayoutFromReport(report, 'holes');
    const holeStarts = new Set([0, MiB].map((o) => `${holes(o).device}:${holes(o).offset}`));
    fillDataAreas(report, loops, (device, offset) => holeStarts.has(`${device}:${offset}`));
    const tree = join(sandbox.dir, 'tree');
    files = makeSampleTree(tree, 5);
    ext4Image = join(sandbox.dir, 'ext.ext4');
    makeExt4Image(ext4Image, 10 * MiB, tree);
    writeLvToDevices(loops, lvLayoutFromReport(report, 'ext'), 0, readFileSync(ext4Image));
    scan = await assembleVolumeGroups(loops.map((l, i) => ({ name: `disk${i}`, reader: new FileBlockReader(l.image) })));
  });
  afterAll(() => sandbox.cleanup());

  it('finds the VG with the names, UUIDs, extent size, seqno and LV sizes lvm reports', () => {
    expect(scan.problems).toEqual([]);
    const vg = findVolumeGroup(scan, 'cairn_span');
    expect(vg.uuid).toBe(report.vg.vg_uuid);
    expect(vg.extentSize).toBe(Number(report.vg.vg_extent_size));
    expect(vg.seqno).toBe(Number(report.vg.vg_seqno));
    expect(vg.logicalVolumes.map((lv) => lv.name).sort()).toEqual(lvNamesOf(report));
    for (const lv of vg.logicalVolumes) {
      const row = report.segments.find((r) => r.lv_name === lv.name);
      expect(lv.size, lv.name).toBe(Number(row?.lv_size));
      expect(lv.uuid, lv.name).toBe(row?.lv_uuid);
      expect(lv.segments.length, lv.name).toBe(report.segments.filter((r) => r.lv_name === lv.name).length);
    }
    expect(vg.physicalVolumes.map((pv) => pv.uuid).sort()).toEqual(report.pvs.map((pv) => pv.pv_uuid).sort());
    expect(scan.physicalVolumes.map((p) => p.pv.uuid).sort()).toEqual(report.pvs.map((pv) => pv.pv_uuid).sort());
  });

  it.each(['lin', 'str', 'multi', 'holes', 'ext'])('reads LV %s as the bytes at the offsets lvm maps it to', async (lv) => {
    await expectLvMatchesDevices(scan, report, loops, 'cairn_span', lv);
  });

  it('serves the ext4 LV that spans both disks byte for byte, and debugfs reads files from it', async () => {
    const reader = findLogicalVolume(scan, 'cairn_span', 'ext').open();
    const bytes = await reader.read(0, reader.size);
    expect(bytes.equals(readFileSync(ext4Image))).toBe(true);
    const copy = join(sandbox.dir, 'ext-from-cairn.img');
    writeFileSync(copy, bytes);
    expect(run('debugfs', ['-R', 'cat /hello.txt', copy])).toBe(files['hello.txt']?.toString());
  });

  it('passes the PVs’ holes through allocation, split at stripe and segment boundaries', async () => {
    const holes = findLogicalVolume(scan, 'cairn_span', 'holes').open();
    expect(await holes.allocation(0, holes.size)).toEqual([{ offset: 0, length: holes.size, zero: true }]);
    for (const name of ['lin', 'str', 'multi', 'ext']) {
      const reader = findLogicalVolume(scan, 'cairn_span', name).open();
      const offset = 12_345;
      const length = reader.size - offset - 777;
      const extents = await reader.allocation(offset, length);
      let at = offset;
      for (const extent of extents) {
        expect(extent.offset, name).toBe(at);
        if (extent.zero)
          expect(
            (await reader.read(extent.offset, extent.length)).every((b) => b === 0),
            name,
          ).toBe(true);
        at += extent.length;
      }
      expect(at, name).toBe(offset + length);
      if (name !== 'ext')
        expect(
          extents.some((e) => e.zero),
          name,
        ).toBe(false);
    }
    // ext4 leaves most of a fresh filesystem unwritten: those blocks stay holes through the LV.
    const ext = findLogicalVolume(scan, 'cairn_span', 'ext').open();
    expect((await ext.allocation(0, ext.size)).some((e) => e.zero)).toBe(true);
  });

  it('with only one of the two disks: LVs on it read, ranges on the missing PV fail naming it, as lvm marks them partial', async () => {
    const only = await assembleVolumeGroups([{ name: 'disk0', reader: new FileBlockReader(loops[0]?.image as string) }]);
    const partialReport = sandbox.report('cairn_span', [loops[0] as LoopDevice]);
    const missingUuid = report.pvs.find((pv) => pv.pv_name === loops[1]?.device)?.pv_uuid as string;
    const vg = findVolumeGroup(only, 'cairn_span');
    expect(vg.physicalVolumes.find((pv) => pv.uuid === missingUuid)?.missing).toMatch(/not on any of the disks/);
    const partial = new Set(partialReport.segments.filter((row) => row.lv_attr[8] === 'p').map((row) => row.lv_name));
    expect(partial.size).toBeGreaterThan(0);
    for (const lv of vg.logicalVolumes) {
      expect(lv.missingPhysicalVolumes.length > 0, lv.name).toBe(partial.has(lv.name));
      expect(lv.missingPhysicalVolumes.join(), lv.name).toBe(partial.has(lv.name) ? `pv1 (UUID ${missingUuid})` : '');
    }
    await expectLvMatchesDevices(only, report, loops, 'cairn_span', 'lin');
    const str = findLogicalVolume(only, 'cairn_span', 'str').open();
    const err = await errorOf(str.read(0, str.size));
    expect(isCairnError(err, 'ERR_NOT_FOUND'), String(err)).toBe(true);
    expect((err as Error).message).toContain(missingUuid);
    // multi: segment 2 is on the present PV and still reads; segments 1 and 3 touch the missing one.
    const multi = findLogicalVolume(only, 'cairn_span', 'multi').open();
    const layout = lvLayoutFromReport(report, 'multi');
    expect((await multi.read(2 * MiB, MiB)).equals(readLvFromDevices(loops, layout, 2 * MiB, MiB))).toBe(true);
    expect(isCairnError(await errorOf(multi.read(0, 4096)), 'ERR_NOT_FOUND')).toBe(true);
    // Segment 3 stripes 8 KiB pieces over both PVs: the first piece is on the present one.
    expect((await multi.read(3 * MiB, 8192)).equals(readLvFromDevices(loops, layout, 3 * MiB, 8192))).toBe(true);
    expect(isCairnError(await errorOf(multi.allocation(3 * MiB + 8192, 4096)), 'ERR_NOT_FOUND')).toBe(true);
  });
});

describe('PVs on a partition and on a whole disk of one VM', () => {
  const sandbox = new LvmSandbox();
  let loops: LoopDevice[];
  let report: LvmReport;
  let diskImage: string;

  beforeAll(() => {
    diskImage = sandbox.image('gpt.img', 32 * MiB);
    run(
      'sfdisk',
      ['-q', '--no-reread', '--no-tell-kernel', diskImage],
      'label: gpt\nsize=6M, type=L\nsize=20M, type=E6D6D379-F507-44C2-A23C-238F2A3DF928\n',
    );
    const table = JSON.parse(run('sfdisk', ['-J', diskImage])) as { partitiontable: { partitions: { start: number; size: number }[] } };
    const p2 = table.partitiontable.partitions[1] as { start: number; size: number };
    const whole = sandbox.image('whole.img', 16 * MiB);
    loops = [sandbox.attach(diskImage, p2.start * 512, p2.size * 512), sandbox.attach(whole)];
    sandbox.lvm(
      'pvcreate',
      loops.map((l) => l.device),
    );
    sandbox.lvm('vgcreate', ['-s', '2M', 'cairn_part', ...loops.map((l) => l.device)]);
    sandbox.restoreWithLvs('cairn_part', [
      { name: 'root', segments: [{ startExtent: 0, extentCount: 4, stripes: [['pv0', 0]] }] },
      {
        name: 'data',
        segments: [
          {
            startExtent: 0,
            extentCount: 4,
            stripes: [
              ['pv0', 4],
              ['pv1', 0],
            ],
            stripeSizeSectors: 64,
          },
        ],
      },
    ]);
    report = sandbox.report('cairn_part');
    fillDataAreas(report, loops);
  });
  afterAll(() => sandbox.cleanup());

  it('finds the PV in partition 2 (not on the whole disk nor partition 1) and reads both LVs', async () => {
    const disk = new FileBlockReader(diskImage);
    const p1 = (await openPartition(disk, 1)).reader;
    const p2 = (await openPartition(disk, 2)).reader;
    const whole = new FileBlockReader(loops[1]?.image as string);
    const scan = await assembleVolumeGroups([
      { name: 'sda', reader: disk },
      { name: 'sda/p1', reader: p1 },
      { name: 'sda/p2', reader: p2 },
      { name: 'sdb', reader: whole },
    ]);
    expect(scan.problems).toEqual([]);
    expect(scan.physicalVolumes.map((p) => p.candidate)).toEqual(['sda/p2', 'sdb']);
    const vg = findVolumeGroup(scan, 'cairn_part');
    expect(vg.physicalVolumes.map((pv) => pv.candidate)).toEqual(['sda/p2', 'sdb']);
    expect(vg.logicalVolumes.map((lv) => [lv.name, lv.size]).sort()).toEqual(
      lvNamesOf(report).map((name) => [name, Number(report.segments.find((r) => r.lv_name === name)?.lv_size)]),
    );
    await expectLvMatchesDevices(scan, report, loops, 'cairn_part', 'root');
    await expectLvMatchesDevices(scan, report, loops, 'cairn_part', 'data');
  });
});
