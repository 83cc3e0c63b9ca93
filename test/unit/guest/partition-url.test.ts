// Partitions as pseudo-URLs: openUrlReader, `cairn cat cairn://VM/POINT/DISK/pN` and the NBD export
// `VM/POINT/DISK/pN` all serve exactly the partition's bytes from a real repository.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isCairnError } from '../../../src/core/errors.js';
import { openUrlReader } from '../../../src/restore/index.js';
import { Namespace } from '../../../src/restore/namespace/index.js';
import { parseCairnUrl } from '../../../src/url/index.js';
import { makeGptExt4Disk, makeMbrFatDisk, makeTempDir, sfdiskJson } from '../../helpers/disk-images.js';
import { backup, catalogOf, exited, makeRepository, sh, start, waitFor } from '../../helpers/fuse-harness.js';

const CAIRN = join(import.meta.dirname, '..', '..', '..', 'bin', 'cairn');

let dir: string;
const children: Array<ReturnType<typeof start>> = [];
beforeEach(() => {
  dir = makeTempDir('parturl');
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited(child);
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function partitionBytes(disk: string, number: number): Buffer {
  const table = sfdiskJson(disk);
  const entry = table.partitions.find((p) => p.node.endsWith(String(number)))!;
  return readFileSync(disk).subarray(entry.start * table.sectorsize, (entry.start + entry.size) * table.sectorsize);
}

describe('partition pseudo-URLs', () => {
  it('opens GPT and logical MBR partitions through openUrlReader', async () => {
    const repo = await makeRepository(join(dir, 'repo'));
    const gpt = makeGptExt4Disk(dir).disk;
    const mbr = makeMbrFatDisk(dir).disk;
    await backup(repo, 'vm', { gpt, mbr });
    const catalog = catalogOf(repo);
    const p2 = await openUrlReader(new Namespace(catalog), parseCairnUrl('cairn://vm/latest/gpt/p2'));
    // Buffer.equals: vitest's deep equality takes seconds per MiB on a busy machine.
    expect((await p2.read(0, p2.size)).equals(partitionBytes(gpt, 2))).toBe(true);
    const p5 = await openUrlReader(new Namespace(catalog), parseCairnUrl('cairn://vm/latest/mbr/p5'));
    expect((await p5.read(0, p5.size)).equals(partitionBytes(mbr, 5))).toBe(true);
    const err = await openUrlReader(new Namespace(catalog), parseCairnUrl('cairn://vm/latest/mbr/p3')).catch((e: unknown) => e);
    expect(isCairnError(err, 'ERR_NOT_FOUND')).toBe(true);
    expect((err as Error).message).toMatch(/p3 not found .*p1, p5, p6/);
  });

  it('serves a partition with `cairn cat` and as an NBD export', async () => {
    const repoDir = join(dir, 'repo');
    const repo = await makeRepository(repoDir);
    const { disk } = makeGptExt4Disk(dir);
    await backup(repo, 'db', { vda: disk });
    const expected = join(dir, 'p1.expected');
    writeFileSync(expected, partitionBytes(disk, 1));

    const catOut = join(dir, 'p1.cat');
    const cat = await sh('sh', ['-c', `node ${CAIRN} cat cairn://db/latest/vda/p1 --repo ${repoDir} > ${catOut}`]);
    expect(cat.code, cat.stderr).toBe(0);
    expect((await sh('cmp', [expected, catOut])).code).toBe(0);

    const socket = join(dir, 'nbd.sock');
    const server = start(process.execPath, [CAIRN, 'serve', '--repo', repoDir, '--nbd', `unix:${socket}`]);
    children.push(server);
    await waitFor('the NBD server', () => existsSync(socket));
    const nbdOut = join(dir, 'p1.nbd');
    const copy = await sh('nbdcopy', [`nbd+unix:///db/latest/vda/p1?socket=${socket}`, nbdOut]);
    expect(copy.code, copy.stderr + server.output()).toBe(0);
    expect((await sh('cmp', [expected, nbdOut])).code).toBe(0);
  });
});
