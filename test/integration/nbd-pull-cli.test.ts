// `cairn backup` pulling from a real QEMU over NBD (needs `npm run build`: it runs bin/cairn).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Repository } from '../../src/store/repository.js';
import { QemuFleecingVm, snapshotExportToFile } from '../helpers/qemu-fleecing.js';
import { killAllChildren } from '../helpers/qemu-process.js';
import { readPoint } from '../helpers/qemu-pull-backup.js';

const execFileAsync = promisify(execFile);
const CAIRN = path.resolve(__dirname, '../../bin/cairn');
const MiB = 1024 * 1024;

async function cairn(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('node', [CAIRN, ...args], { env: { ...process.env, CAIRN_LOG_LEVEL: 'warn' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('cairn backup --disk NAME=nbd+unix://…', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pull-cli-'));
  });
  afterEach(async () => {
    await killAllChildren();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('full, then incremental with --bitmap (base defaults to latest), with the VM config', async () => {
    const repo = path.join(dir, 'repo');
    expect((await cairn('init', '--repo', repo, '--chunk-size', '256KiB')).code).toBe(0);
    const vm = await QemuFleecingVm.start(dir, 16 * MiB);
    await vm.addBitmap('b0');
    await vm.guestWrite(0xa1, 3 * MiB, 2 * MiB);
    const exp1 = await vm.startFleecing({ previousBitmap: 'b0', nextBitmap: 'b1' });
    const frozen1 = path.join(dir, 'frozen1.raw');
    await snapshotExportToFile(exp1, frozen1);
    const cfg = path.join(dir, 'vm.conf');
    fs.writeFileSync(cfg, 'memory: 2048\nvirtio0: local:vm-100-disk-0\n');
    const r1 = await cairn('backup', '--repo', repo, '--vm', 'vm100', '--disk', `vda=${exp1.uri}`, '--config', cfg, '--json');
    expect(r1.code, r1.stderr).toBe(0);
    const point1 = (JSON.parse(r1.stdout) as { point: string }).point;
    expect((await readPoint(repo, 'vm100', point1, 'vda')).equals(fs.readFileSync(frozen1))).toBe(true);
    await vm.stopFleecing();

    await vm.guestWrite(0xa2, 4 * MiB, 64 * 1024);
    const exp2 = await vm.startFleecing({ previousBitmap: 'b1', nextBitmap: 'b2' });
    const frozen2 = path.join(dir, 'frozen2.raw');
    await snapshotExportToFile(exp2, frozen2);
    const r2 = await cairn('backup', '--repo', repo, '--vm', 'vm100', '--disk', `vda=${exp2.uri}`, '--bitmap', 'vda=b1', '--json');
    expect(r2.code, r2.stderr).toBe(0);
    const out2 = JSON.parse(r2.stdout) as { point: string; parent: string; disks: Array<{ bytesRead: number }> };
    expect(out2.parent).toBe(point1);
    expect(out2.disks[0]!.bytesRead).toBe(64 * 1024);
    expect((await readPoint(repo, 'vm100', out2.point, 'vda')).equals(fs.readFileSync(frozen2))).toBe(true);

    const r = await Repository.open(repo);
    expect((await r.readConfigBlob(await r.readManifest('vm100', point1)))?.toString()).toContain('memory: 2048');

    // A bitmap the export does not have: one clear line, non-zero exit, no new point.
    const bad = await cairn('backup', '--repo', repo, '--vm', 'vm100', '--disk', `vda=${exp2.uri}`, '--bitmap', 'missing');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/does not offer the dirty bitmap "missing"/);
    expect(await r.listPointIds('vm100')).toEqual([point1, out2.point]);
    await vm.stopFleecing();
    await vm.stop();
  });
});
