// Checks the QEMU fleecing harness itself against qemu's own tools, so the pull tests stand on a
// verified frozen view and bitmap.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { QemuFleecingVm, snapshotExportToFile } from '../helpers/qemu-fleecing.js';
import { killAllChildren, run } from '../helpers/qemu-process.js';

const MiB = 1024 * 1024;

describe('QEMU fleecing harness', () => {
  let dir: string;
  afterEach(async () => {
    await killAllChildren();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exports a frozen view and the previous checkpoint bitmap', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-fleece-'));
    const vm = await QemuFleecingVm.start(dir, 8 * MiB);
    await vm.addBitmap('b0');
    await vm.guestWrite(0xaa, 0, MiB);
    const exp = await vm.startFleecing({ previousBitmap: 'b0', nextBitmap: 'b1' });
    await vm.guestWrite(0xbb, 0, 64 * 1024); // after the freeze: must not show in the export
    const frozen = path.join(dir, 'frozen.raw');
    await snapshotExportToFile(exp, frozen);
    const bytes = fs.readFileSync(frozen);
    expect(bytes.length).toBe(8 * MiB);
    expect(bytes.subarray(0, MiB).every((b) => b === 0xaa)).toBe(true);
    expect(bytes.subarray(MiB).every((b) => b === 0)).toBe(true);
    const map = JSON.parse(await run('nbdinfo', ['--map=qemu:dirty-bitmap:b0', '--json', exp.uri])) as Array<{
      offset: number;
      length: number;
      type: number;
    }>;
    const dirty = map.filter((e) => e.type & 1).map((e) => [e.offset, e.length]);
    expect(dirty).toEqual([[0, MiB]]);
    await vm.stopFleecing();
    await vm.stop();
  });
});
