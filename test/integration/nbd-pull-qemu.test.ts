// Pull backups from a real QEMU (no guest OS): fleecing exports with the previous checkpoint's dirty
// bitmap, full then incremental, each point compared byte for byte with the frozen view the export
// showed. Guest writes go through the virtio device, also while a backup runs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NbdSource } from '../../src/ingest/nbd-source.js';
import { QemuFleecingVm, snapshotExportToFile } from '../helpers/qemu-fleecing.js';
import { killAllChildren } from '../helpers/qemu-process.js';
import { backupOne, bytesByKind, dirtyRanges, initRepo, insideAny, readPoint, RecordingSource } from '../helpers/qemu-pull-backup.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('NBD pull from QEMU fleecing exports', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pull-qemu-'));
  });
  afterEach(async () => {
    await killAllChildren();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('takes a full then an incremental backup that match the frozen views', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await initRepo(repoDir);
    const vm = await QemuFleecingVm.start(dir, 32 * MiB);
    await vm.addBitmap('b0');
    await vm.guestWrite(0xaa, 0, MiB);
    await vm.guestWrite(0xbb, 5 * MiB + 4 * KiB, 300 * KiB);
    await vm.guestWrite(0xcc, 31 * MiB, MiB);

    // Backup 1 (full): the freeze happens in the transaction; writes during the pull must not show.
    // A small read-ahead makes sure the overwritten ranges are read after the guest wrote them.
    const exp1 = await vm.startFleecing({ previousBitmap: 'b0', nextBitmap: 'b1' });
    const frozen1 = path.join(dir, 'frozen1.raw');
    await snapshotExportToFile(exp1, frozen1);
    const full = new RecordingSource(await NbdSource.open({ uri: exp1.uri, readAheadBytes: 256 * KiB }), async () => {
      await vm.guestWrite(0x11, 0, 64 * KiB);
      await vm.guestWrite(0x12, 31 * MiB + 512 * KiB, 64 * KiB);
    });
    const config = Buffer.from('<domain><name>vm1</name></domain>');
    const r1 = await backupOne(repo, 'vm1', 'vda', full, { config });
    const point1 = await readPoint(repoDir, 'vm1', r1.point, 'vda');
    expect(point1.equals(fs.readFileSync(frozen1))).toBe(true);
    expect(point1[0]).toBe(0xaa); // the frozen byte, not the 0x11 written during the pull
    // Holes were recorded, not read: only the written areas (2.3 MiB) came over the wire.
    expect(full.bytesRead).toBeLessThan(4 * MiB);
    expect(bytesByKind(full.extentsSeen).zero).toBeGreaterThan(20 * MiB);
    await vm.stopFleecing();

    // Guest writes between the backups: partial chunks, a zeroing, a fresh area.
    await vm.guestWrite(0xdd, 2 * MiB + 4 * KiB, 8 * KiB);
    await vm.guestWriteZeroes(5 * MiB, 64 * KiB);
    await vm.guestWrite(0xee, 20 * MiB, 2 * MiB);

    // Backup 2 (incremental with the bitmap b1 of everything since the first freeze).
    const exp2 = await vm.startFleecing({ previousBitmap: 'b1', nextBitmap: 'b2' });
    const frozen2 = path.join(dir, 'frozen2.raw');
    await snapshotExportToFile(exp2, frozen2);
    const dirty = await dirtyRanges(exp2.uri, 'b1');
    const dirtyBytes = dirty.reduce((sum, [s, e]) => sum + e - s, 0);
    const inc = new RecordingSource(await NbdSource.open({ uri: exp2.uri, bitmap: 'b1', readAheadBytes: 64 * KiB }), async () => {
      await vm.guestWrite(0x21, 20 * MiB, 64 * KiB);
    });
    const r2 = await backupOne(repo, 'vm1', 'vda', inc, { base: 'latest' });
    expect(r2.parent).toBe(r1.point);
    const point2 = await readPoint(repoDir, 'vm1', r2.point, 'vda');
    expect(point2.equals(fs.readFileSync(frozen2))).toBe(true);
    expect([point2[20 * MiB], point2[2 * MiB + 4 * KiB], point2[5 * MiB], point2[0]]).toEqual([0xee, 0xdd, 0, 0x11]);
    // Only dirty extents were read; everything else came from the base.
    expect(inc.bytesRead).toBe(dirtyBytes);
    for (const e of inc.extentsSeen.filter((x) => x.kind !== 'unchanged')) {
      expect(insideAny(e.offset, e.length, dirty), `extent ${e.offset}+${e.length} outside the dirty map`).toBe(true);
    }
    expect(bytesByKind(inc.extentsSeen).unchanged).toBe(32 * MiB - dirtyBytes);
    await vm.stopFleecing();

    // The base point is untouched, and the configuration blob went with the first point.
    expect((await readPoint(repoDir, 'vm1', r1.point, 'vda')).equals(fs.readFileSync(frozen1))).toBe(true);
    expect(await repo.readConfigBlob(await repo.readManifest('vm1', r1.point))).toEqual(config);
    await vm.stop();
  });

  it('trims what it stored on a writable fleecing export (--discard-after-read)', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await initRepo(repoDir);
    const vm = await QemuFleecingVm.start(dir, 8 * MiB);
    await vm.addBitmap('b0');
    await vm.guestWrite(0x5a, 0, 4 * MiB);
    const exp = await vm.startFleecing({ previousBitmap: 'b0', nextBitmap: 'b1', writable: true });
    const frozen = path.join(dir, 'frozen.raw');
    await snapshotExportToFile(exp, frozen);
    // Overwrite after the freeze: QEMU copies the old 4 MiB into the scratch image first.
    await vm.guestWrite(0x77, 0, 4 * MiB);
    expect(await vm.scratchAllocatedBytes()).toBe(4 * MiB);
    const hostBytes = () => fs.statSync(exp.scratchPath).blocks * 512;
    expect(hostBytes()).toBeGreaterThanOrEqual(4 * MiB);
    const source = await NbdSource.open({ uri: exp.uri, discardAfterRead: true });
    expect(source.wantsAcknowledgement).toBe(true);
    const rec = new RecordingSource(source);
    const r = await backupOne(repo, 'vm1', 'vda', rec);
    expect((await readPoint(repoDir, 'vm1', r.point, 'vda')).equals(fs.readFileSync(frozen))).toBe(true);
    expect(rec.acknowledged.length).toBeGreaterThan(0);
    // Every stored range was trimmed: the fleecing image gave its space back to the host.
    expect(hostBytes()).toBeLessThan(MiB);
    await vm.stopFleecing();
    await vm.stop();
  });

  it('refuses a bitmap the export does not offer, naming it', async () => {
    const vm = await QemuFleecingVm.start(dir, 4 * MiB);
    await vm.addBitmap('b0');
    const exp = await vm.startFleecing({ previousBitmap: 'b0', nextBitmap: 'b1' });
    await expect(NbdSource.open({ uri: exp.uri, bitmap: 'nope' })).rejects.toMatchObject({
      code: 'ERR_NOT_FOUND',
      message: expect.stringMatching(/qemu:dirty-bitmap:nope/),
    });
    await vm.stopFleecing();
    await vm.stop();
  });
});
