import { randomBytes } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, runCairn, runJson } from '../helpers/cairn-cli.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BLOCK = 64 * 1024;

interface Monitor {
  points: number;
  chunks: number;
  logicalBytes: number;
  dataBytes: number;
  uniqueBytes: number;
  dedupRatio: number;
}

describe('two points of a 4 GiB disk with 1 % of its blocks changed', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(() => dir.cleanup());

  it('share every unchanged chunk, and cairn monitor shows it', async () => {
    const repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo])).code).toBe(0);
    const image = join(dir.path, 'disk.raw');
    // A sparse 4 GiB disk with 1 MiB of data in every 32 MiB (128 MiB of data, in 128 chunks).
    const handle = await open(image, 'w');
    await handle.truncate(4 * GiB);
    for (let at = 0; at < 4 * GiB; at += 32 * MiB) await handle.write(randomBytes(MiB), 0, MiB, at);
    const first = await runJson<{ disks: { bytesRead: number }[] }>(['backup', '--repo', repo, '--vm', 'big', '--disk', `sda=${image}`]);
    expect(first.disks[0]!.bytesRead).toBe(128 * MiB);

    // Change 1 % of the 64 KiB blocks, one per 100 blocks, spread over the whole disk.
    const blocks = (4 * GiB) / BLOCK;
    const bitmap = Buffer.alloc(blocks / 8);
    const changed: number[] = [];
    for (let block = 37; block < blocks; block += 100) changed.push(block);
    for (const block of changed) {
      await handle.write(randomBytes(BLOCK), 0, BLOCK, block * BLOCK);
      bitmap[block >> 3]! |= 1 << (block & 7);
    }
    await handle.close();
    await writeFile(join(dir.path, 'cbt'), bitmap.toString('base64'));
    const second = await runJson<{ disks: { bytesRead: number }[] }>([
      'backup',
      '--repo',
      repo,
      '--vm',
      'big',
      '--disk',
      `sda=${image}`,
      '--base',
      'latest',
      '--changed-blocks',
      `sda=${join(dir.path, 'cbt')}`,
    ]);
    expect(second.disks[0]!.bytesRead).toBe(changed.length * BLOCK);

    // Each changed block lies in its own 1 MiB chunk, which keeps its base chunk and gains a patch;
    // the new blocks are collected 16 to a 1 MiB patch chunk. Every chunk of the first point is shared.
    const changedChunks = Math.ceil(changed.length / 16);
    const monitor = await runJson<Monitor>(['monitor', '--repo', repo]);
    expect(monitor.points).toBe(2);
    expect(monitor.logicalBytes).toBe(8 * GiB);
    expect(monitor.chunks).toBe(128 + changedChunks);
    const secondDataChunks = 128 + changed.filter((block) => (block * BLOCK) % (32 * MiB) >= MiB).length;
    expect(monitor.dataBytes).toBe((128 + secondDataChunks) * MiB);
    expect(monitor.uniqueBytes).toBe(128 * MiB + changed.length * BLOCK);
    expect(monitor.dedupRatio).toBeCloseTo(((128 + secondDataChunks) * MiB) / monitor.uniqueBytes, 5);
    const text = (await runCairn(['monitor', '--repo', repo])).stdout.toString();
    expect(text).toMatch(/dedup:\s+\d+\.\d\dx/);
    expect((await runCairn(['verify', '--repo', repo])).code).toBe(0);
  });
});
