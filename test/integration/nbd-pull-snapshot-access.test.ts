// Pull from the graph Proxmox's backup provider API hands over (QEMU copy-before-write filter +
// snapshot-access node, exported writable): with a bitmap, QEMU itself FAILS every read and every
// allocation query outside the dirty areas, so this proves the incremental pull never sends them.
// The expected disk is modelled in the test: all guest writes are ours.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NbdSource } from '../../src/ingest/nbd-source.js';
import { QemuFleecingVm } from '../helpers/qemu-fleecing.js';
import { killAllChildren, run } from '../helpers/qemu-process.js';
import { backupOne, bytesByKind, initRepo, readPoint, RecordingSource } from '../helpers/qemu-pull-backup.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 16 * MiB;

describe('NBD pull from a Proxmox-style snapshot-access export', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pull-access-'));
  });
  afterEach(async () => {
    await killAllChildren();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('bitmap-mode new (full), then reuse (incremental) with discard-after-read', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await initRepo(repoDir);
    const vm = await QemuFleecingVm.start(dir, SIZE);
    const model = Buffer.alloc(SIZE);
    const write = async (pattern: number, offset: number, length: number) => {
      await vm.guestWrite(pattern, offset, length);
      model.fill(pattern, offset, offset + length);
    };
    await write(0x10, 0, 6 * MiB);
    await write(0x11, 12 * MiB, MiB);

    // Backup 1: bitmap-mode new (the bitmap was just created): the whole disk is readable.
    const exp1 = await vm.startSnapshotAccess({ nextBitmap: 'b1' });
    const frozen1 = Buffer.from(model);
    const full = new RecordingSource(await NbdSource.open({ uri: exp1.uri, bitmap: 'b1', bitmapMode: 'new', discardAfterRead: true }), () =>
      write(0x12, 0, 128 * KiB),
    );
    const r1 = await backupOne(repo, 'vm100', 'drive-scsi0', full);
    expect((await readPoint(repoDir, 'vm100', r1.point, 'drive-scsi0')).equals(frozen1)).toBe(true);
    await vm.stopSnapshotAccess(false);

    await write(0x20, 2 * MiB + 64 * KiB, 64 * KiB);
    await write(0x21, 9 * MiB, 512 * KiB);
    await vm.guestWriteZeroes(12 * MiB, 128 * KiB);
    model.fill(0, 12 * MiB, 12 * MiB + 128 * KiB);

    // Backup 2: bitmap-mode reuse: only b1's dirty areas exist on the export.
    const exp2 = await vm.startSnapshotAccess({ previousBitmap: 'b1', nextBitmap: 'b2' });
    const frozen2 = Buffer.from(model);
    await run('qemu-io', ['-r', '-f', 'raw', '-c', `read -P 0x21 ${9 * MiB} 64k`, exp2.uri]);

    // A pull that reads outside the dirty areas fails on this export (what makes the test able to fail).
    await expect(
      backupOne(repo, 'vm100', 'drive-scsi0', await NbdSource.open({ uri: exp2.uri }), { base: 'latest' }),
    ).rejects.toMatchObject({
      code: 'ERR_NBD_REMOTE',
    });
    expect(await repo.listPointIds('vm100')).toEqual([r1.point]);

    const inc = new RecordingSource(
      await NbdSource.open({ uri: exp2.uri, bitmap: 'b1', bitmapMode: 'reuse', discardAfterRead: true }),
      () => write(0x22, 9 * MiB, 64 * KiB),
    );
    const r2 = await backupOne(repo, 'vm100', 'drive-scsi0', inc, { base: 'latest' });
    expect(r2.parent).toBe(r1.point);
    expect((await readPoint(repoDir, 'vm100', r2.point, 'drive-scsi0')).equals(frozen2)).toBe(true);
    // 64 KiB + 512 KiB + 128 KiB dirty (0x12 was written into the first export's lifetime, b1 has it too).
    const kinds = bytesByKind(inc.extentsSeen);
    expect(kinds.data).toBe(inc.bytesRead);
    expect(inc.bytesRead).toBe(128 * KiB + 64 * KiB + 512 * KiB + 128 * KiB);
    expect(kinds.unchanged).toBe(SIZE - inc.bytesRead);
    // The TRIMs released what was stored: QEMU no longer serves those ranges.
    await expect(run('qemu-io', ['-r', '-f', 'raw', '-c', `read ${9 * MiB} 64k`, exp2.uri])).rejects.toThrow();
    await vm.stopSnapshotAccess();
    expect((await readPoint(repoDir, 'vm100', r1.point, 'drive-scsi0')).equals(frozen1)).toBe(true);
    await vm.stop();
  });
});
