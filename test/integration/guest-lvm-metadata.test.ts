// LVM metadata as lvm2 writes it over time: the circular buffer after it wrapped, two metadata copies
// per PV, segment types Cairn does not read, and damage (bad checksums, a disk cut short). lvm2's own
// reports (vgs, lvs, pvck --dump headers) are the oracle.
import { copyFileSync, mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCairnError } from '../../src/core/errors.js';
import { assembleVolumeGroups, findLogicalVolume, findVolumeGroup, type LvmScan } from '../../src/guest/index.js';
import { FileBlockReader, MiB, flipByte } from '../helpers/disk-images.js';
import {
  LvmSandbox,
  MemoryBlockReader,
  bytesFromRuns,
  captureLvmHeadFixture,
  lvLayoutFromReport,
  patternBytes,
  pvckHeaders,
  readLvFromDevices,
  writeLvToDevices,
  type LoopDevice,
} from '../helpers/lvm-images.js';

function scanOf(images: string[]): Promise<LvmScan> {
  return assembleVolumeGroups(images.map((image, i) => ({ name: `disk${i}`, reader: new FileBlockReader(image) })));
}

function expectCairnError(err: unknown, code: string, pattern: RegExp): void {
  expect(isCairnError(err), String(err)).toBe(true);
  expect((err as { code: string }).code, String(err)).toBe(code);
  expect((err as Error).message).toMatch(pattern);
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('metadata that wrapped around the circular buffer, two copies per PV', () => {
  const sandbox = new LvmSandbox();
  let loop: LoopDevice;
  let headers: Map<string, string>;

  beforeAll(() => {
    loop = sandbox.attach(sandbox.image('wrap.img', 16 * MiB));
    // A 32 KiB metadata area (the minimum) fills after some twenty commits; --dataalignment keeps
    // pvcreate from growing it up to the 1 MiB data alignment.
    sandbox.lvm('pvcreate', ['--pvmetadatacopies', '2', '--metadatasize', '32k', '--dataalignment', '4k', loop.device]);
    sandbox.lvm('vgcreate', ['-s', '1M', 'cairn_wrap', loop.device]);
    sandbox.restoreWithLvs('cairn_wrap', [
      { name: 'lv_a', segments: [{ startExtent: 0, extentCount: 3, stripes: [['pv0', 2]] }] },
      { name: 'lv_b', segments: [{ startExtent: 0, extentCount: 2, stripes: [['pv0', 6]] }] },
    ]);
    for (let i = 0; ; i++) {
      headers = pvckHeaders(sandbox, loop);
      const offset = Number(headers.get('mda_header_1.raw_locn[0].offset'));
      const size = Number(headers.get('mda_header_1.raw_locn[0].size'));
      if (offset + size > Number(headers.get('mda_header_1.size'))) break;
      if (i > 200) throw new Error('lvm metadata never wrapped');
      sandbox.lvm('vgchange', ['--addtag', `cairn_tag_${i}`, 'cairn_wrap']);
    }
    const report = sandbox.report('cairn_wrap');
    for (const lv of ['lv_a', 'lv_b']) {
      const size = Number(report.segments.find((r) => r.lv_name === lv)?.lv_size);
      writeLvToDevices([loop], lvLayoutFromReport(report, lv), 0, patternBytes(size, lv.length * 7 + size));
    }
  });
  afterAll(() => sandbox.cleanup());

  it('reads the wrapped text (both pieces, chained checksum) and finds the seqno and LVs lvm reports', async () => {
    const report = sandbox.report('cairn_wrap');
    const scan = await scanOf([loop.image]);
    expect(scan.problems).toEqual([]);
    const pv = scan.physicalVolumes[0]?.pv;
    expect(pv?.metadataAreas.map((a) => a.offset)).toEqual([
      Number(headers.get('mda_header_1.start')),
      Number(headers.get('mda_header_2.start')),
    ]);
    expect(pv?.metadataAreas[0]?.wrapped).toBe(true);
    expect(pv?.metadataAreas.map((a) => a.seqno)).toEqual([Number(report.vg.vg_seqno), Number(report.vg.vg_seqno)]);
    const vg = findVolumeGroup(scan, 'cairn_wrap');
    expect(vg.seqno).toBe(Number(report.vg.vg_seqno));
    for (const name of ['lv_a', 'lv_b']) {
      const reader = findLogicalVolume(scan, 'cairn_wrap', name).open();
      const expected = readLvFromDevices([loop], lvLayoutFromReport(report, name), 0, reader.size);
      expect((await reader.read(0, reader.size)).equals(expected), name).toBe(true);
    }
  });

  it('falls back to the second copy when the first header is damaged, as lvm does; fails naming both when both are', async () => {
    const image = join(sandbox.dir, 'wrap-damaged.img');
    copyFileSync(loop.image, image);
    flipByte(image, Number(headers.get('mda_header_1.start')) + 100);
    const damagedLoop = sandbox.attach(image);
    const lvmView = sandbox.report('cairn_wrap', [damagedLoop]);
    const scan = await scanOf([image]);
    expect(findVolumeGroup(scan, 'cairn_wrap').seqno).toBe(Number(lvmView.vg.vg_seqno));
    expect(scan.problems.map((p) => p.message)).toEqual([expect.stringMatching(/metadata area at byte 4096: bad header checksum/)]);
    expect(scan.physicalVolumes[0]?.pv.metadataAreas.map((a) => a.state)).toEqual(['damaged', 'text']);
    sandbox.detach(damagedLoop);

    flipByte(image, Number(headers.get('mda_header_2.start')) + 100);
    const both = await scanOf([image]);
    expect(both.volumeGroups).toEqual([]);
    expect(both.problems).toHaveLength(2);
    const err = thrown(() => findVolumeGroup(both, 'cairn_wrap'));
    expectCairnError(err, 'ERR_NOT_FOUND', /no volume group cairn_wrap.*bad header checksum.*bad header checksum/);
    const bothLoop = sandbox.attach(image);
    expect(sandbox.tryLvm('vgs', ['cairn_wrap'], [bothLoop]).status).not.toBe(0);
    sandbox.detach(bothLoop);
  });
});

describe('a PV without metadata areas (pvcreate --pvmetadatacopies 0)', () => {
  const sandbox = new LvmSandbox();
  let loops: LoopDevice[];

  beforeAll(() => {
    loops = [sandbox.attach(sandbox.image('with.img', 12 * MiB)), sandbox.attach(sandbox.image('without.img', 12 * MiB))];
    sandbox.lvm('pvcreate', [(loops[0] as LoopDevice).device]);
    sandbox.lvm('pvcreate', ['--pvmetadatacopies', '0', (loops[1] as LoopDevice).device]);
    sandbox.lvm('vgcreate', ['-s', '1M', 'cairn_nomda', ...loops.map((l) => l.device)]);
    sandbox.restoreWithLvs('cairn_nomda', [
      {
        name: 'both',
        segments: [
          {
            startExtent: 0,
            extentCount: 4,
            stripes: [
              ['pv0', 0],
              ['pv1', 0],
            ],
            stripeSizeSectors: 128,
          },
        ],
      },
    ]);
    const report = sandbox.report('cairn_nomda');
    writeLvToDevices(loops, lvLayoutFromReport(report, 'both'), 0, patternBytes(4 * MiB, 77));
  });
  afterAll(() => sandbox.cleanup());

  it("is placed by its label UUID from the other PV's metadata; alone it carries no VG", async () => {
    const report = sandbox.report('cairn_nomda');
    const scan = await scanOf(loops.map((l) => l.image));
    expect(scan.problems).toEqual([]);
    expect(scan.physicalVolumes.map((p) => p.pv.metadataAreas.length)).toEqual([1, 0]);
    const reader = findLogicalVolume(scan, 'cairn_nomda', 'both').open();
    expect((await reader.read(0, reader.size)).equals(readLvFromDevices(loops, lvLayoutFromReport(report, 'both'), 0, reader.size))).toBe(
      true,
    );
    const alone = await scanOf([(loops[1] as LoopDevice).image]);
    expect(alone.physicalVolumes).toHaveLength(1);
    expect(alone.volumeGroups).toEqual([]);
  });
});

describe('damage to a PV with one metadata copy', () => {
  const sandbox = new LvmSandbox();
  let loop: LoopDevice;
  let headers: Map<string, string>;

  beforeAll(() => {
    loop = sandbox.attach(sandbox.image('one.img', 8 * MiB));
    sandbox.lvm('pvcreate', [loop.device]);
    sandbox.lvm('vgcreate', ['-s', '1M', 'cairn_one', loop.device]);
    sandbox.restoreWithLvs('cairn_one', [{ name: 'lv', segments: [{ startExtent: 0, extentCount: 2, stripes: [['pv0', 0]] }] }]);
    headers = pvckHeaders(sandbox, loop);
  });
  afterAll(() => sandbox.cleanup());

  function damagedCopy(name: string, offset: number): string {
    const image = join(sandbox.dir, name);
    copyFileSync(loop.image, image);
    flipByte(image, offset);
    return image;
  }

  it('a bad mda header checksum: no VG, the problem says where and why, and lvm cannot read it either', async () => {
    const image = damagedCopy('header.img', Number(headers.get('mda_header_1.start')) + 30);
    const scan = await scanOf([image]);
    expect(scan.volumeGroups).toEqual([]);
    expect(scan.problems.map((p) => [p.code, p.message])).toEqual([
      ['ERR_FORMAT_INVALID', expect.stringMatching(/^disk0: LVM metadata area at byte 4096: bad header checksum/)],
    ]);
    const damagedLoop = sandbox.attach(image);
    expect(sandbox.tryLvm('vgs', ['cairn_one'], [damagedLoop]).status).not.toBe(0);
    sandbox.detach(damagedLoop);
  });

  it('a bad metadata text checksum: no VG, named as a text checksum problem', async () => {
    const textAt = Number(headers.get('mda_header_1.start')) + Number(headers.get('mda_header_1.raw_locn[0].offset'));
    const image = damagedCopy('text.img', textAt + 40);
    const scan = await scanOf([image]);
    expect(scan.volumeGroups).toEqual([]);
    expect(scan.problems[0]?.message).toMatch(/metadata text has a bad checksum/);
    const damagedLoop = sandbox.attach(image);
    expect(sandbox.tryLvm('vgs', ['cairn_one'], [damagedLoop]).status).not.toBe(0);
    sandbox.detach(damagedLoop);
  });

  it('a damaged label: the disk is reported, not silently skipped', async () => {
    const image = damagedCopy('label.img', 512 + 100);
    const scan = await scanOf([image]);
    expect(scan.physicalVolumes).toEqual([]);
    expect(scan.problems[0]?.message).toMatch(/^disk0: LVM label in sector 1 has a bad checksum/);
  });

  it('a disk cut short inside the metadata area', async () => {
    const image = join(sandbox.dir, 'short.img');
    copyFileSync(loop.image, image);
    truncateSync(image, Number(headers.get('mda_header_1.start')) + Number(headers.get('mda_header_1.raw_locn[0].offset')) + 100);
    const scan = await scanOf([image]);
    expect(scan.volumeGroups).toEqual([]);
    expect(scan.problems[0]?.message).toMatch(/runs past the end of the device/);
  });
});

describe('segment types Cairn does not read', () => {
  const sandbox = new LvmSandbox();
  let loop: LoopDevice;

  beforeAll(() => {
    loop = sandbox.attach(sandbox.image('types.img', 40 * MiB));
    sandbox.lvm('pvcreate', [loop.device]);
    sandbox.lvm('vgcreate', ['-s', '1M', 'cairn_types', loop.device]);
    const linear = (pe: number, count: number): string[] => [
      `\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = ${count}\n\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 1\n\t\t\t\tstripes = [ "pv0", ${pe} ]\n`,
    ];
    const hidden = ['READ', 'WRITE'];
    sandbox.restoreWithLvs(
      'cairn_types',
      [
        { name: 'plain', segments: [], rawSegments: linear(0, 4) },
        { name: 'pool_tmeta', segments: [], rawSegments: linear(4, 1), status: hidden },
        { name: 'pool_tdata', segments: [], rawSegments: linear(5, 4), status: hidden },
        {
          name: 'pool',
          segments: [],
          rawSegments: [
            '\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 4\n\t\t\t\ttype = "thin-pool"\n\t\t\t\tmetadata = "pool_tmeta"\n' +
              '\t\t\t\tpool = "pool_tdata"\n\t\t\t\ttransaction_id = 1\n\t\t\t\tchunk_size = 128\n\t\t\t\tdiscards = "passdown"\n\t\t\t\tzero_new_blocks = 1\n',
          ],
        },
        {
          name: 'thin1',
          segments: [],
          rawSegments: [
            '\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 8\n\t\t\t\ttype = "thin"\n\t\t\t\tthin_pool = "pool"\n\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1\n',
          ],
        },
        { name: 'cow', segments: [], rawSegments: linear(10, 2) },
        {
          name: 'snapshot0',
          segments: [],
          status: ['READ'],
          rawSegments: [
            '\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 4\n\t\t\t\ttype = "snapshot"\n\t\t\t\tchunk_size = 8\n\t\t\t\torigin = "plain"\n\t\t\t\tcow_store = "cow"\n',
          ],
        },
      ],
      // vgcfgrestore refuses thin pools without it: their kernel metadata could be out of step.
      ['--force'],
    );
  });
  afterAll(() => sandbox.cleanup());

  it('lists the LVs lvm lists (hidden parts left out) and refuses the thin pool, thin LV and snapshot by name and type', async () => {
    const report = sandbox.report('cairn_types');
    const visible = sandbox
      .lvm('lvs', ['--noheadings', '-o', 'lv_name', 'cairn_types'])
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean)
      .sort();
    const scan = await scanOf([loop.image]);
    expect(scan.problems).toEqual([]);
    const vg = findVolumeGroup(scan, 'cairn_types');
    expect(vg.logicalVolumes.map((lv) => lv.name).sort()).toEqual(visible);
    for (const lv of vg.logicalVolumes) expect(lv.size, lv.name).toBe(Number(report.segments.find((r) => r.lv_name === lv.name)?.lv_size));
    const refusals: [string, RegExp][] = [
      ['pool', /LV pool has segment type "thin-pool"/],
      ['thin1', /LV thin1 has segment type "thin"/],
      ['cow', /LV cow is a snapshot/],
    ];
    for (const [name, pattern] of refusals) {
      const lv = findLogicalVolume(scan, 'cairn_types', name);
      expectCairnError(lv.problem, 'ERR_UNSUPPORTED', pattern);
      expectCairnError(
        thrown(() => lv.open()),
        'ERR_UNSUPPORTED',
        pattern,
      );
    }
    // The origin of the snapshot is an ordinary linear LV and stays readable.
    const plain = findLogicalVolume(scan, 'cairn_types', 'plain').open();
    expect(plain.size).toBe(4 * MiB);
    await plain.read(0, plain.size);
  });
});

describe('the PV head fixture of the unit and fuzz tests', () => {
  // The unit and fuzz tests read a PV head captured from lvm2 (test/fixtures/lvm/pv-head.json). This
  // captures a fresh one and checks that, rebuilt from its compact form, it reads as lvm reports;
  // CAIRN_WRITE_LVM_FIXTURE=1 also stores it as the new fixture.
  it('a fresh capture from lvm2 reads back as lvm reports it', async () => {
    const sandbox = new LvmSandbox();
    try {
      const fixture = captureLvmHeadFixture(sandbox);
      const reader = new MemoryBlockReader(bytesFromRuns(fixture.size, fixture.runs), 12 * MiB);
      const scan = await assembleVolumeGroups([{ name: 'fixture', reader }]);
      expect(scan.physicalVolumes[0]?.pv.uuid).toBe(fixture.pvUuid);
      const vg = findVolumeGroup(scan, fixture.vg.name);
      expect([vg.uuid, vg.seqno, vg.extentSize]).toEqual([fixture.vg.uuid, fixture.vg.seqno, fixture.vg.extentSize]);
      expect(
        vg.logicalVolumes.map((lv) => ({ name: lv.name, uuid: lv.uuid, size: lv.size })).sort((a, b) => a.name.localeCompare(b.name)),
      ).toEqual([...fixture.lvs].sort((a, b) => a.name.localeCompare(b.name)));
      if (process.env.CAIRN_WRITE_LVM_FIXTURE === '1') {
        const dir = join(import.meta.dirname, '../fixtures/lvm');
        mkdirSync(dir, { recursive: true });
        // Stored as Prettier prints it, so that `npm run lint` accepts the fixture as written.
        const prettier = await import('prettier');
        const path = join(dir, 'pv-head.json');
        writeFileSync(path, await prettier.format(JSON.stringify(fixture), { ...(await prettier.resolveConfig(path)), filepath: path }));
      }
    } finally {
      sandbox.cleanup();
    }
  });
});
