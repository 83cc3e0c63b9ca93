// The PV label, the metadata area header and the circular text buffer, on a PV head that lvm2 wrote
// (test/fixtures/lvm/pv-head.json, with lvm's own report of it) and on edits of it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCairnError } from '../../../src/core/errors.js';
import { assembleVolumeGroups, scanPhysicalVolume } from '../../../src/guest/index.js';
import { lvmCrc } from '../../../src/guest/lvm/lvm-crc.js';
import { MemoryBlockReader, PvHeadEditor, bytesFromRuns, type LvmHeadFixture } from '../../helpers/lvm-images.js';

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, '../../fixtures/lvm/pv-head.json'), 'utf8')) as LvmHeadFixture;
const head = bytesFromRuns(fixture.size, fixture.runs);
const DEVICE_SIZE = 12 * 1024 * 1024;

function editor(): PvHeadEditor {
  return new PvHeadEditor(head, lvmCrc, fixture.mda.start);
}

async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isCairnError(err), String(err)).toBe(true);
  return err as Error & { code?: string };
}

describe('a PV head written by lvm2', () => {
  it("computes lvm's CRC: the label's and the mda header's stored checksums", () => {
    const label = head.subarray(512, 1024);
    expect(lvmCrc(label.subarray(20))).toBe(label.readUInt32LE(16));
    const mda = head.subarray(fixture.mda.start, fixture.mda.start + 512);
    expect(lvmCrc(mda.subarray(4))).toBe(mda.readUInt32LE(0));
  });

  it('finds what lvm reports: PV UUID, metadata area, VG, seqno, LVs and sizes', async () => {
    const pv = await scanPhysicalVolume(new MemoryBlockReader(head, DEVICE_SIZE));
    expect(pv?.uuid).toBe(fixture.pvUuid);
    expect(pv?.labelSector).toBe(1);
    expect(pv?.problems).toEqual([]);
    expect(pv?.metadataAreas).toEqual([
      {
        offset: fixture.mda.start,
        size: fixture.mda.size,
        state: 'text',
        wrapped: false,
        vgName: fixture.vg.name,
        vgUuid: fixture.vg.uuid,
        seqno: fixture.vg.seqno,
      },
    ]);
    const scan = await assembleVolumeGroups([{ name: 'disk', reader: new MemoryBlockReader(head, DEVICE_SIZE) }]);
    const vg = scan.volumeGroups[0];
    expect(vg?.extentSize).toBe(fixture.vg.extentSize);
    const byName = (a: { name: string }, b: { name: string }): number => a.name.localeCompare(b.name);
    expect(vg?.logicalVolumes.map((lv) => ({ name: lv.name, uuid: lv.uuid, size: lv.size })).sort(byName)).toEqual(
      [...fixture.lvs].sort(byName),
    );
  });

  it('is not a PV without LABELONE, nor with a label of another type', async () => {
    expect(await scanPhysicalVolume(new MemoryBlockReader(Buffer.alloc(4096)))).toBeUndefined();
    expect(await scanPhysicalVolume(new MemoryBlockReader(Buffer.alloc(100)))).toBeUndefined();
    const other = editor().labelField((label) => label.write('LVM3 001', 24, 'latin1'));
    expect(await scanPhysicalVolume(new MemoryBlockReader(other.bytes, DEVICE_SIZE))).toBeUndefined();
  });

  it.each([0, 2, 3])('finds the label in sector %i', async (sector) => {
    const pv = await scanPhysicalVolume(new MemoryBlockReader(editor().moveLabel(sector).bytes, DEVICE_SIZE));
    expect(pv?.labelSector).toBe(sector);
    expect(pv?.uuid).toBe(fixture.pvUuid);
  });

  it('rejects a label whose sector field or checksum is wrong, or whose pv_header lies outside the sector', async () => {
    const moved = editor();
    moved.bytes.writeBigUInt64LE(2n, 512 + 8);
    moved.sealLabel();
    expect((await rejection(scanPhysicalVolume(new MemoryBlockReader(moved.bytes, DEVICE_SIZE)))).message).toMatch(
      /claims to be in sector 2/,
    );
    const bad = editor();
    bad.bytes[600] = (bad.bytes[600] ?? 0) ^ 1;
    expect((await rejection(scanPhysicalVolume(new MemoryBlockReader(bad.bytes, DEVICE_SIZE)))).message).toMatch(/bad checksum/);
    const outside = editor().labelField((label) => label.writeUInt32LE(500, 20));
    expect((await rejection(scanPhysicalVolume(new MemoryBlockReader(outside.bytes, DEVICE_SIZE)))).message).toMatch(
      /pv_header offset 500/,
    );
    const endless = editor().labelField((label) => label.fill(0xff, 72, 512));
    expect((await rejection(scanPhysicalVolume(new MemoryBlockReader(endless.bytes, DEVICE_SIZE)))).code).toBe('ERR_FORMAT_INVALID');
  });
});

describe('the metadata area', () => {
  it('reads text that wraps past the end of the buffer, with the checksum lvm computed for it', async () => {
    const original = editor();
    const text = original.text();
    // The same bytes and lvm's own checksum, placed so that 300 bytes fit before the end of the area.
    const wrapped = editor().setText(text, original.mdaSize - 300, original.bytes.readUInt32LE(fixture.mda.start + 56));
    const pv = await scanPhysicalVolume(new MemoryBlockReader(wrapped.bytes, DEVICE_SIZE));
    expect(pv?.problems).toEqual([]);
    expect(pv?.metadataAreas[0]?.wrapped).toBe(true);
    expect(pv?.metadata[0]?.seqno).toBe(fixture.vg.seqno);
  });

  it('reports empty (orphan PV) and ignored areas without a VG', async () => {
    const empty = editor().mdaField((h) => h.fill(0, 40, 64));
    expect((await scanPhysicalVolume(new MemoryBlockReader(empty.bytes, DEVICE_SIZE)))?.metadataAreas[0]?.state).toBe('empty');
    const ignored = editor().mdaField((h) => h.writeUInt32LE(1, 60));
    const pv = await scanPhysicalVolume(new MemoryBlockReader(ignored.bytes, DEVICE_SIZE));
    expect(pv?.metadataAreas[0]?.state).toBe('ignored');
    expect(pv?.metadata).toEqual([]);
  });

  it.each([
    ['magic', (h: Buffer) => h.write('X', 5, 'latin1'), /bad magic/],
    ['version', (h: Buffer) => h.writeUInt32LE(2, 20), /unknown version 2/],
    ['start', (h: Buffer) => h.writeBigUInt64LE(8192n, 24), /says it starts at byte 8192/],
    ['area size', (h: Buffer) => h.writeBigUInt64LE(100n, 32), /smaller than its header/],
    ['area past the device', (h: Buffer) => h.writeBigUInt64LE(1n << 40n, 32), /past the end of the device/],
    ['text inside the header', (h: Buffer) => h.writeBigUInt64LE(100n, 40), /outside the buffer/],
    ['text longer than the buffer', (h: Buffer) => h.writeBigUInt64LE(1n << 30n, 48), /does not fit the buffer/],
    ['a 64-bit offset', (h: Buffer) => h.writeBigUInt64LE(1n << 60n, 40), /out of range/],
  ])('names a damaged %s', async (_what, edit, pattern) => {
    const pv = await scanPhysicalVolume(new MemoryBlockReader(editor().mdaField(edit).bytes, DEVICE_SIZE));
    expect(pv?.metadataAreas[0]?.state).toBe('damaged');
    expect(pv?.problems[0]?.code).toBe('ERR_FORMAT_INVALID');
    expect(pv?.problems[0]?.message).toMatch(pattern);
  });

  it('rejects truncated metadata text even when its checksum matches the truncation', async () => {
    const original = editor();
    const text = original.text();
    const cut = editor().setText(text.subarray(0, text.indexOf('segment2')));
    const pv = await scanPhysicalVolume(new MemoryBlockReader(cut.bytes, DEVICE_SIZE));
    expect(pv?.metadata).toEqual([]);
    expect(pv?.problems[0]?.message).toMatch(/LVM metadata area at byte 4096: LVM metadata text: expected a name or '}'/);
  });

  it('rejects a text checksum mismatch', async () => {
    const original = editor();
    const bad = editor().setText(original.text(), original.textOffset, 0x12345678);
    const pv = await scanPhysicalVolume(new MemoryBlockReader(bad.bytes, DEVICE_SIZE));
    expect(pv?.problems[0]?.message).toMatch(/metadata text has a bad checksum \(stored 0x12345678/);
  });
});
