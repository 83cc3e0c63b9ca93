import { randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/store/repository.js';
import { makeTempDir, runCairn, runJson } from '../helpers/cairn-cli.js';
import { canConnect, nbdUri, run, startServe, waitFor, type ServeProcess } from './nbd-server-harness.js';

// Changed-block incrementals record small changes as patches over the base chunk (index version 2).
// This follows such points through everything else: cat, stat, verify, rm + gc, a damaged patch
// chunk, and the NBD server's cairn:changed map.
const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;
const SIZE = 8 * MiB;

interface BackupJson {
  point: string;
  disks: { bytesRead: number }[];
}

let dir: { path: string; cleanup: () => Promise<void> };
let repo: string;
let image: string;
const points: string[] = [];
const images: Buffer[] = [];
/** The 64 KiB blocks each incremental changed. */
const changedBlocks = [[3, 40], [3, 77, 100], [5]];

const cairn = (...args: string[]) => runCairn([...args, '--repo', repo]);

async function changeBlocks(blocks: number[]): Promise<string> {
  const handle = await open(image, 'r+');
  for (const block of blocks) await handle.write(randomBytes(BLOCK), 0, BLOCK, block * BLOCK);
  await handle.close();
  const bits = Buffer.alloc(SIZE / BLOCK / 8);
  for (const block of blocks) bits[block >> 3]! |= 1 << (block & 7);
  const file = join(dir.path, 'cbt.b64');
  await writeFile(file, bits.toString('base64'));
  return file;
}

beforeAll(async () => {
  dir = await makeTempDir();
  repo = join(dir.path, 'repo');
  image = join(dir.path, 'disk.raw');
  expect((await runCairn(['init', '--repo', repo, '--chunk-size', '1MiB'])).code).toBe(0);
  await writeFile(image, randomBytes(SIZE));
  points.push((await runJson<BackupJson>(['backup', '--repo', repo, '--vm', 'xen', '--disk', `xvda=${image}`])).point);
  images.push(await readFile(image));
  for (const blocks of changedBlocks) {
    const bitmap = await changeBlocks(blocks);
    // Point ids have one-second resolution.
    await new Promise((r) => setTimeout(r, 1050));
    const args = [
      'backup',
      '--repo',
      repo,
      '--vm',
      'xen',
      '--disk',
      `xvda=${image}`,
      '--base',
      'latest',
      '--changed-blocks',
      `xvda=${bitmap}`,
    ];
    const result = await runJson<BackupJson>(args);
    expect(result.disks[0]!.bytesRead).toBe(blocks.length * BLOCK);
    points.push(result.point);
    images.push(await readFile(image));
  }
}, 60_000);

afterAll(() => dir?.cleanup());

describe('points made of patched chunks', () => {
  it('read back exactly, and stat counts the patched chunks', async () => {
    for (const [n, point] of points.entries()) {
      expect((await cairn('cat', `cairn://xen/${point}/xvda`)).stdout.equals(images[n]!)).toBe(true);
    }
    const stat = await runJson<{ patchedChunks: number; dataChunks: number }>(['stat', '--repo', repo, `cairn://xen/${points[3]}/xvda`]);
    // Blocks 3, 5, 40 (chunk 0 and 2), 77 (chunk 4), 100 (chunk 6): patches carried forward from point to point.
    expect(stat.patchedChunks).toBe(4);
    expect(stat.dataChunks).toBe(8);
    expect((await cairn('verify')).code).toBe(0);
  });

  it('are served over NBD, and cairn:changed marks exactly the changed 64 KiB blocks', async () => {
    const socket = join(dir.path, 'nbd.sock');
    const serve: ServeProcess = await startServe(['--repo', repo, '--nbd', `unix:${socket}`]);
    try {
      await waitFor('the NBD socket', () => canConnect(socket));
      const compare = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', image, nbdUri(socket, 'xen/latest/xvda')]);
      expect(compare.code, compare.stdout + compare.stderr).toBe(0);
      const map = await run('nbdinfo', [`--map=cairn:changed:${points[1]}`, '--json', nbdUri(socket, `xen/${points[2]}/xvda`)]);
      expect(map.code, map.stderr).toBe(0);
      const changed = (JSON.parse(map.stdout) as { offset: number; length: number; type: number }[])
        .filter((extent) => extent.type !== 0)
        .map((extent) => [extent.offset / BLOCK, extent.length / BLOCK]);
      // Block 3 was patched again (the newer patch covers the older one): its slot no longer just
      // gained patches, so the whole first 1 MiB counts as changed; 77 and 100 are exact.
      expect(changed).toEqual([
        [0, 16],
        [77, 1],
        [100, 1],
      ]);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.exited;
    }
  });

  it('keep their patch chunks through rm and gc, and a damaged patch chunk is named', async () => {
    expect((await cairn('rm', `cairn://xen/${points[0]}`)).code).toBe(0);
    expect((await cairn('rm', `cairn://xen/${points[2]}`)).code).toBe(0);
    expect((await cairn('gc', '--grace-seconds', '0')).code).toBe(0);
    expect((await cairn('verify')).code).toBe(0);
    expect((await cairn('cat', `cairn://xen/${points[3]}/xvda`)).stdout.equals(images[3]!)).toBe(true);

    const repository = await Repository.open(repo);
    const index = await repository.readDiskIndex(await repository.readManifest('xen', points[3]!), 'xvda');
    const patch = index.patches!.get(4)![0]!;
    const file = repository.chunks.chunkPath(patch.digest!);
    const bytes = await readFile(file);
    bytes[bytes.length - 1]! ^= 0xff;
    await writeFile(file, bytes, { mode: 0o644 });
    const verify = await cairn('verify', `cairn://xen/${points[3]}`);
    expect(verify.code).not.toBe(0);
    expect(verify.stdout.toString() + verify.stderr.toString()).toContain(patch.digest!);
    const cat = await cairn('cat', `cairn://xen/${points[3]}/xvda`);
    expect(cat.code).not.toBe(0);
    expect(cat.stderr.toString()).toContain(patch.digest!);
  });
});
