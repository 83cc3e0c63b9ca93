// VG assembly and LV mapping rules on PVs built from lvm2's own PV head (the fixture) with metadata
// text edited per case: seqno choice, missing/moved/duplicate PVs, damaged layouts, unsupported types.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCairnError } from '../../../src/core/errors.js';
import { assembleVolumeGroups, findLogicalVolume, findVolumeGroup, type LvmScan } from '../../../src/guest/index.js';
import { lvmCrc } from '../../../src/guest/lvm/lvm-crc.js';
import { MemoryBlockReader, PvHeadEditor, bytesFromRuns, patternBytes, type LvmHeadFixture } from '../../helpers/lvm-images.js';

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, '../../fixtures/lvm/pv-head.json'), 'utf8')) as LvmHeadFixture;
const head = bytesFromRuns(fixture.size, fixture.runs);
const MiB = 1024 * 1024;
const DISK = 12 * MiB;
const PE_START = MiB;
const UUID_A = 'AAAAAA-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaa1';
const UUID_B = 'BBBBBB-bbbb-bbbb-bbbb-bbbb-bbbb-bbbbb2';
const VG_UUID = 'VVVVVV-vvvv-vvvv-vvvv-vvvv-vvvv-vvvvv1';

interface PvSpec {
  name: string;
  uuid: string;
  peCount?: number;
  flags?: string[];
}

function vgText(opts: { name?: string; uuid?: string; seqno?: number; pvs: PvSpec[]; lvs?: string; extentSize?: number }): string {
  const pvs = opts.pvs
    .map(
      (pv) =>
        `${pv.name} { id = "${pv.uuid}" device = "/dev/x" status = ["ALLOCATABLE"] flags = [${(pv.flags ?? []).map((f) => `"${f}"`).join(', ')}] ` +
        `dev_size = 24576 pe_start = 2048 pe_count = ${pv.peCount ?? 11} }`,
    )
    .join('\n');
  return (
    `${opts.name ?? 'vg'} {\nid = "${opts.uuid ?? VG_UUID}"\nseqno = ${opts.seqno ?? 1}\nformat = "lvm2"\nstatus = ["RESIZEABLE", "READ", "WRITE"]\n` +
    `extent_size = ${opts.extentSize ?? 2048}\nmax_lv = 0\nmax_pv = 0\nphysical_volumes {\n${pvs}\n}\n` +
    `logical_volumes {\n${opts.lvs ?? ''}\n}\n}\ncontents = "Text Format Volume Group"\nversion = 1\n`
  );
}

let lvCounter = 0;
/** An LV section; `segments` are [start, count, type-and-areas text]. */
function lv(name: string, segments: [number, number, string][], status = '"READ", "WRITE", "VISIBLE"'): string {
  const uuid = `LLLLLL-llll-llll-llll-llll-llll-${String(++lvCounter).padStart(6, '0')}`;
  const segs = segments
    .map(([start, count, body], i) => `segment${i + 1} { start_extent = ${start} extent_count = ${count} ${body} }`)
    .join('\n');
  return `${name} { id = "${uuid}" status = [${status}] flags = [] segment_count = ${segments.length}\n${segs}\n}`;
}

const linear = (pv: string, pe: number): string => `type = "striped" stripe_count = 1 stripes = [ "${pv}", ${pe} ]`;
const striped = (sizeSectors: number, ...areas: [string, number][]): string =>
  `type = "striped" stripe_count = ${areas.length} stripe_size = ${sizeSectors} stripes = [ ${areas.map(([pv, pe]) => `"${pv}", ${pe}`).join(', ')} ]`;

/**
 * A PV (12 MiB unless `size` says) with the fixture's label and `text` as its metadata; its extents
 * hold patterned bytes, or zeros when `seed` is 0.
 */
const patterns = new Map<string, Buffer>();
function pvDisk(uuid: string, text: string, seed = 1, size = DISK): MemoryBlockReader {
  const edited = new PvHeadEditor(head, lvmCrc, fixture.mda.start).setPvUuid(uuid.replaceAll('-', '')).setText(Buffer.from(`${text}\0`));
  if (seed === 0) return new MemoryBlockReader(edited.bytes, size);
  const key = `${size}:${seed}`;
  const extents = patterns.get(key) ?? patternBytes(size - edited.bytes.length, seed);
  patterns.set(key, extents);
  return new MemoryBlockReader(Buffer.concat([edited.bytes, extents]));
}

async function scanOf(...disks: MemoryBlockReader[]): Promise<LvmScan> {
  return assembleVolumeGroups(disks.map((reader, i) => ({ name: `disk${i}`, reader })));
}

async function extentBytes(disk: MemoryBlockReader, pe: number, offset = 0, length = MiB): Promise<Buffer> {
  return disk.read(PE_START + pe * MiB + offset, length);
}

function expectError(err: unknown, code: string, pattern: RegExp): void {
  expect(isCairnError(err), String(err)).toBe(true);
  expect((err as { code: string }).code).toBe(code);
  expect((err as Error).message).toMatch(pattern);
}

const twoPvs: PvSpec[] = [
  { name: 'pv0', uuid: UUID_A },
  { name: 'pv1', uuid: UUID_B },
];

describe('VG assembly', () => {
  it('uses the copy with the highest seqno, whichever PV holds it', async () => {
    const newer = vgText({ seqno: 5, pvs: twoPvs, lvs: lv('fresh', [[0, 1, linear('pv0', 0)]]) });
    const older = vgText({ seqno: 4, pvs: twoPvs, lvs: lv('stale', [[0, 1, linear('pv0', 0)]]) });
    const scan = await scanOf(pvDisk(UUID_A, older), pvDisk(UUID_B, newer));
    expect(scan.problems).toEqual([]);
    const vg = findVolumeGroup(scan, 'vg');
    expect(vg.seqno).toBe(5);
    expect(vg.logicalVolumes.map((l) => l.name)).toEqual(['fresh']);
    expect(vg.physicalVolumes.map((pv) => pv.candidate)).toEqual(['disk0', 'disk1']);
  });

  it('reports two different copies with the same seqno', async () => {
    const a = vgText({ seqno: 3, pvs: twoPvs, lvs: lv('one', [[0, 1, linear('pv0', 0)]]) });
    const b = vgText({ seqno: 3, pvs: twoPvs, lvs: lv('two', [[0, 1, linear('pv0', 0)]]) });
    const scan = await scanOf(pvDisk(UUID_A, a), pvDisk(UUID_B, b));
    expect(scan.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/disk0 and disk1 hold different metadata with the same seqno 3/),
    ]);
  });

  it('treats a PV lvm marked MISSING, moved to another VG, or found twice as missing, with the reason', async () => {
    const main = vgText({
      pvs: [
        { name: 'pv0', uuid: UUID_A },
        { name: 'pv1', uuid: UUID_B, flags: ['MISSING'] },
      ],
      lvs: lv('on_b', [[0, 1, linear('pv1', 0)]]),
    });
    let scan = await scanOf(pvDisk(UUID_A, main), pvDisk(UUID_B, main));
    expect(findVolumeGroup(scan, 'vg').physicalVolumes[1]?.missing).toMatch(/marked MISSING/);

    const moved = vgText({ name: 'other', uuid: 'OOOOOO-oooo-oooo-oooo-oooo-oooo-ooooo1', pvs: [{ name: 'pv0', uuid: UUID_B }] });
    const listing = vgText({ pvs: twoPvs, lvs: lv('on_b', [[0, 1, linear('pv1', 0)]]) });
    scan = await scanOf(pvDisk(UUID_A, listing), pvDisk(UUID_B, moved));
    expect(findVolumeGroup(scan, 'vg').physicalVolumes[1]?.missing).toMatch(/disk1 holds, but as a PV of VG other/);
    expect(findVolumeGroup(scan, 'other').physicalVolumes[0]?.candidate).toBe('disk1');

    scan = await scanOf(pvDisk(UUID_A, listing), pvDisk(UUID_B, listing), pvDisk(UUID_B, listing));
    expect(scan.problems.map((p) => p.message)).toEqual([expect.stringMatching(/PV UUID BBBBBB.* is on several disks \(disk1, disk2\)/)]);
    const onB = findLogicalVolume(scan, 'vg', 'on_b');
    expect(onB.missingPhysicalVolumes).toEqual([`pv1 (UUID ${UUID_B})`]);
    expectError(
      await onB
        .open()
        .read(0, 10)
        .catch((e: unknown) => e),
      'ERR_NOT_FOUND',
      /PV pv1 .*on several disks/,
    );
  });

  it('names the VGs and LVs there are when one asked for is not there, and refuses an ambiguous VG name', async () => {
    const scan = await scanOf(
      pvDisk(UUID_A, vgText({ pvs: [{ name: 'pv0', uuid: UUID_A }], lvs: lv('root', [[0, 1, linear('pv0', 0)]]) })),
    );
    expectError(
      (() => {
        try {
          return findLogicalVolume(scan, 'vg', 'home');
        } catch (e) {
          return e;
        }
      })(),
      'ERR_NOT_FOUND',
      /no logical volume home in VG vg \(found: root\)/,
    );
    const other = vgText({ uuid: 'OOOOOO-oooo-oooo-oooo-oooo-oooo-ooooo1', pvs: [{ name: 'pv0', uuid: UUID_B }] });
    const both = await scanOf(pvDisk(UUID_A, vgText({ pvs: [{ name: 'pv0', uuid: UUID_A }] })), pvDisk(UUID_B, other));
    expect(both.problems.map((p) => p.message)).toEqual([expect.stringMatching(/2 volume groups are named vg/)]);
    expect(() => findVolumeGroup(both, 'vg')).toThrow(/Cairn cannot tell which is meant/);
  });
});

describe('LV mapping', () => {
  it('reads linear, striped and multi-segment LVs, and LVs stacked on hidden LVs', async () => {
    const lvs = [
      lv('lin', [[0, 2, linear('pv0', 3)]]),
      lv('str', [[0, 4, striped(16, ['pv0', 5], ['pv1', 0])]]),
      lv('inner', [[0, 2, linear('pv1', 4)]], '"READ", "WRITE"'),
      lv('outer', [
        [0, 1, linear('inner', 1)],
        [1, 1, linear('pv0', 0)],
      ]),
    ].join('\n');
    const text = vgText({ pvs: twoPvs, lvs });
    const a = pvDisk(UUID_A, text, 11);
    const b = pvDisk(UUID_B, text, 22);
    const scan = await scanOf(a, b);
    const vg = findVolumeGroup(scan, 'vg');
    expect(vg.logicalVolumes.map((l) => l.name)).toEqual(['lin', 'str', 'outer']);
    const lin = findLogicalVolume(scan, 'vg', 'lin').open();
    expect((await lin.read(0, 2 * MiB)).equals(Buffer.concat([await extentBytes(a, 3), await extentBytes(a, 4)]))).toBe(true);
    // 8 KiB stripes: LV piece k is on pv0 (k even) or pv1 (k odd), at row k div 2.
    const str = findLogicalVolume(scan, 'vg', 'str').open();
    const piece = 8192;
    for (const k of [0, 1, 2, 3, 255, 256, 511]) {
      const disk = k % 2 === 0 ? a : b;
      const pe = k % 2 === 0 ? 5 : 0;
      const expected = await disk.read(PE_START + pe * MiB + Math.floor(k / 2) * piece, piece);
      expect((await str.read(k * piece, piece)).equals(expected), `piece ${k}`).toBe(true);
    }
    const outer = findLogicalVolume(scan, 'vg', 'outer').open();
    expect((await outer.read(0, MiB)).equals(await extentBytes(b, 5))).toBe(true);
    expect(
      (await outer.read(MiB - 100, 200)).equals(Buffer.concat([await extentBytes(b, 5, MiB - 100, 100), await extentBytes(a, 0, 0, 100)])),
    ).toBe(true);
  });

  it('serves zero segments as holes, and reports ranges a PV answer leaves out as data', async () => {
    const text = vgText({
      pvs: [{ name: 'pv0', uuid: UUID_A }],
      lvs: lv('mixed', [
        [0, 1, 'type = "zero"'],
        [1, 1, linear('pv0', 0)],
      ]),
    });
    const scan = await scanOf(pvDisk(UUID_A, text));
    const mixed = findLogicalVolume(scan, 'vg', 'mixed').open();
    expect((await mixed.read(0, MiB)).every((byte) => byte === 0)).toBe(true);
    expect(await mixed.allocation(100, 2 * MiB - 200)).toEqual([
      { offset: 100, length: MiB - 100, zero: true },
      { offset: MiB, length: MiB - 100, zero: false },
    ]);
    expectError(await mixed.read(2 * MiB - 1, 2).catch((e: unknown) => e), 'ERR_OUT_OF_RANGE', /outside LV vg\/mixed/);
  });

  it('describes striped allocation piece by piece, whole zero rows as one extent, and coarsens a long comb to data', async () => {
    const big = 40 * MiB;
    const lvs = [
      lv('comb', [[0, 4, striped(16, ['pv0', 0], ['pv1', 0])]]),
      lv('hole', [[0, 4, striped(16, ['pv1', 2], ['pv1', 4])]]),
      lv('long', [[0, 60, striped(1, ['pv0', 4], ['pv1', 6])]]),
    ].join('\n');
    const pvs: PvSpec[] = [
      { name: 'pv0', uuid: UUID_A, peCount: 39 },
      { name: 'pv1', uuid: UUID_B, peCount: 39 },
    ];
    const text = vgText({ pvs, lvs });
    const scan = await scanOf(pvDisk(UUID_A, text, 5, big), pvDisk(UUID_B, text, 0, big));
    const comb = findLogicalVolume(scan, 'vg', 'comb').open();
    const combExtents = await comb.allocation(4096, 2 * MiB);
    expect(combExtents).toHaveLength(257);
    expect(combExtents.slice(0, 3)).toEqual([
      { offset: 4096, length: 4096, zero: false },
      { offset: 8192, length: 8192, zero: true },
      { offset: 16384, length: 8192, zero: false },
    ]);
    const hole = findLogicalVolume(scan, 'vg', 'hole').open();
    expect(await hole.allocation(100, hole.size - 100)).toEqual([{ offset: 100, length: hole.size - 100, zero: true }]);
    // 60 MiB in 512-byte pieces alternating data and zeros: 122 880 pieces, more than are listed one by one.
    const long = findLogicalVolume(scan, 'vg', 'long').open();
    const started = Date.now();
    const longExtents = await long.allocation(0, long.size);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(longExtents.length).toBeLessThanOrEqual(65_537);
    expect(longExtents.reduce((sum, e) => sum + e.length, 0)).toBe(long.size);
    expect(longExtents[longExtents.length - 1]).toMatchObject({ zero: false });
  });

  it.each([
    [
      'segments that overlap',
      lv('bad', [
        [0, 2, linear('pv0', 0)],
        [1, 2, linear('pv0', 4)],
      ]),
      /bad: segment2 starts at extent 1, expected 2/,
    ],
    [
      'a gap between segments',
      lv('bad', [
        [0, 1, linear('pv0', 0)],
        [2, 1, linear('pv0', 4)],
      ]),
      /segment2 starts at extent 2, expected 1/,
    ],
    ['a segment not starting at 0', lv('bad', [[1, 1, linear('pv0', 0)]]), /segment1 starts at extent 1, expected 0/],
    ['extents beyond the PV', lv('bad', [[0, 3, linear('pv0', 9)]]), /extents 9–11 exceed PV pv0 .*\(11 extents\)/],
    [
      'a stripe size that does not divide the stripe',
      lv('bad', [[0, 2, striped(3, ['pv0', 0], ['pv0', 5])]]),
      /stripe size 1536 does not divide/,
    ],
    [
      'an extent count not a multiple of the stripes',
      lv('bad', [[0, 3, striped(16, ['pv0', 0], ['pv0', 5])]]),
      /not a multiple of stripe_count/,
    ],
    [
      'a wrong segment_count',
      lv('bad', [[0, 1, linear('pv0', 0)]]).replace('segment_count = 1', 'segment_count = 2'),
      /segment_count is 2 but 1/,
    ],
    [
      'a stripes list of the wrong length',
      lv('bad', [[0, 1, 'type = "striped" stripe_count = 1 stripes = [ "pv0" ]']]),
      /has 1 items for 1 stripes/,
    ],
    ['an unknown PV', lv('bad', [[0, 1, linear('pv7', 0)]]), /names "pv7", which is neither a PV nor an LV/],
    ['LVs stacked in a loop', lv('bad', [[0, 1, linear('loop2', 0)]]) + lv('loop2', [[0, 1, linear('bad', 0)]], '"READ"'), /loop/],
  ])('refuses %s naming the VG and LV, and keeps the other LVs readable', async (_what, badLv, pattern) => {
    const text = vgText({ pvs: [{ name: 'pv0', uuid: UUID_A }], lvs: `${badLv}\n${lv('good', [[0, 1, linear('pv0', 8)]])}` });
    const scan = await scanOf(pvDisk(UUID_A, text));
    const bad = findLogicalVolume(scan, 'vg', 'bad');
    expectError(bad.problem, 'ERR_FORMAT_INVALID', /VG "?vg"?: LV "?bad"?/);
    expectError(bad.problem, 'ERR_FORMAT_INVALID', pattern);
    expect(() => bad.open()).toThrow(pattern);
    const good = findLogicalVolume(scan, 'vg', 'good').open();
    expect(good.size).toBe(MiB);
  });

  it('refuses extents that two LVs claim, naming both', async () => {
    const lvs = [
      lv('one', [[0, 3, linear('pv0', 0)]]),
      lv('two', [[0, 2, linear('pv0', 2)]]),
      lv('three', [[0, 1, linear('pv0', 4)]]),
    ].join('\n');
    const scan = await scanOf(pvDisk(UUID_A, vgText({ pvs: [{ name: 'pv0', uuid: UUID_A }], lvs })));
    expectError(findLogicalVolume(scan, 'vg', 'one').problem, 'ERR_FORMAT_INVALID', /extents 2–2 of PV pv0 also belong to LV two/);
    expectError(findLogicalVolume(scan, 'vg', 'two').problem, 'ERR_FORMAT_INVALID', /also belong to LV one/);
    expect(findLogicalVolume(scan, 'vg', 'three').problem).toBeUndefined();
  });

  it('refuses extents that run past the end of the disk the PV was found on', async () => {
    const text = vgText({ pvs: [{ name: 'pv0', uuid: UUID_A, peCount: 100 }], lvs: lv('big', [[0, 20, linear('pv0', 0)]]) });
    const scan = await scanOf(pvDisk(UUID_A, text));
    expectError(findLogicalVolume(scan, 'vg', 'big').problem, 'ERR_FORMAT_INVALID', /run past the end of disk0 \(12582912 bytes\)/);
  });

  it('refuses sizes beyond 2^53 bytes without computing with them', async () => {
    const text = vgText({
      extentSize: 4294967295,
      pvs: [{ name: 'pv0', uuid: UUID_A, peCount: 4294967295 }],
      lvs: lv('huge', [[0, 4294967295, 'type = "zero"']]),
    });
    const scan = await scanOf(pvDisk(UUID_A, text));
    expectError(findLogicalVolume(scan, 'vg', 'huge').problem, 'ERR_FORMAT_INVALID', /beyond 2\^53/);
  });

  it.each([
    'thin',
    'thin-pool',
    'raid1',
    'raid5',
    'mirror',
    'cache',
    'cache-pool',
    'vdo',
    'vdo-pool',
    'writecache',
    'error',
    'striped+RAID',
  ])('refuses segment type %s naming it and the LV', async (type) => {
    const text = vgText({ pvs: [{ name: 'pv0', uuid: UUID_A }], lvs: lv('special', [[0, 2, `type = "${type}"`]]) });
    const scan = await scanOf(pvDisk(UUID_A, text));
    const special = findLogicalVolume(scan, 'vg', 'special');
    expect(special.size).toBe(2 * MiB);
    expect(() => special.open()).toThrow(`LV special has segment type "${type}"`);
    expect(special.problem?.code).toBe('ERR_UNSUPPORTED');
  });

  it('leaves out LVs whose names could not be paths, and hidden LVs', async () => {
    const lvs = [
      lv('"../escape"', [[0, 1, linear('pv0', 0)]]),
      lv('ok', [[0, 1, linear('pv0', 1)]]),
      lv('ok_rimage_0', [[0, 1, linear('pv0', 2)]], '"READ"'),
    ].join('\n');
    const scan = await scanOf(pvDisk(UUID_A, vgText({ pvs: [{ name: 'pv0', uuid: UUID_A }], lvs })));
    expect(findVolumeGroup(scan, 'vg').logicalVolumes.map((l) => l.name)).toEqual(['ok']);
    expect(scan.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/LV "\.\.\/escape": left out, the name has characters other than/),
    ]);
  });
});
