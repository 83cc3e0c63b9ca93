// Damaged FAT volumes: an mtools-made FAT16 image with one structure broken at a time, where minfo and
// mshowfat (not Cairn) say where the structure is and fsck.fat -n confirms the damage is real. Each
// must give ERR_FORMAT_INVALID naming the file, never a hang, and leave the rest readable.
import { copyFileSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../src/core/errors.js';
import type { GuestFileSystem } from '../../src/core/guest-filesystem.js';
import { fatDriver } from '../../src/guest/fs/fat/index.js';
import { FileBlockReader, makeTempDir, writeAt } from '../helpers/disk-images.js';
import {
  fatToolEnv,
  lookupPath,
  makeFatImage,
  minfoGeometry,
  mshowfatRuns,
  MiB,
  patternBytes,
  tool,
  type FatTree,
} from '../helpers/fat-images.js';

const work = makeTempDir('guest-fat-damage');
const env = fatToolEnv(work);
const base = join(work, 'base.img');
afterAll(() => rmSync(work, { recursive: true, force: true }));

const TREE: FatTree = {
  'loop.bin': patternBytes(4 * 512, 1),
  'short.bin': patternBytes(4 * 512, 2),
  'bad.bin': patternBytes(4 * 512, 3),
  'free.bin': patternBytes(4 * 512, 4),
  'range.bin': patternBytes(4 * 512, 5),
  'fine.txt': Buffer.from('still readable\n'),
  'a/b/c/leaf.txt': Buffer.from('leaf\n'),
  'x/in-x.txt': Buffer.from('x\n'),
  'y/in-y.txt': Buffer.from('y\n'),
};
for (let i = 0; i < 40; i++) TREE[`many/entry number ${i}.txt`] = Buffer.from(`${i}\n`);

let geometry: ReturnType<typeof minfoGeometry>;

beforeAll(() => {
  makeFatImage(env, base, { fatBits: 16, size: 16 * MiB, sectorsPerCluster: 1, volumeId: '0000dead', tree: TREE }, work);
  geometry = minfoGeometry(env, base);
});

/** A copy of the base image with `damage` applied, checked to be damage by fsck.fat -n. */
function damaged(name: string, damage: (image: string) => void, fsckSees = true): string {
  const image = join(work, `${name}.img`);
  copyFileSync(base, image);
  damage(image);
  if (fsckSees) expect(() => tool(env, 'fsck.fat', ['-n', image]), `fsck.fat -n finds ${name}`).toThrow();
  return image;
}

/** Sets the FAT16 entry of `cluster` in the first FAT (the one read when FATs are mirrored). */
function setFatEntry(image: string, cluster: number, value: number): void {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16LE(value);
  writeAt(image, geometry.fatOffset + cluster * 2, bytes);
}

function clustersOf(path: string): number[] {
  return mshowfatRuns(env, base, path).flatMap(([first, last]) => Array.from({ length: last - first + 1 }, (_, i) => first + i));
}

/** The offset in the image of the short entry whose 11-byte name is `name83`, inside cluster `cluster` (0: root region). */
function entryOffset(cluster: number, name83: string): number {
  const start = cluster === 0 ? geometry.rootOffset : geometry.dataOffset + (cluster - 2) * geometry.clusterSize;
  const length = cluster === 0 ? geometry.dataOffset - geometry.rootOffset : geometry.clusterSize;
  const at = readFileSync(base)
    .subarray(start, start + length)
    .indexOf(Buffer.from(name83, 'latin1'));
  if (at < 0 || at % 32 !== 0) throw new Error(`no entry ${name83} in cluster ${cluster}`);
  return start + at;
}

function setEntryCluster(image: string, offset: number, cluster: number): void {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16LE(cluster);
  writeAt(image, offset + 26, bytes);
}

async function open(image: string): Promise<GuestFileSystem> {
  return fatDriver.open(new FileBlockReader(image), { name: 'damaged' });
}

async function readAll(fs: GuestFileSystem, path: string): Promise<Buffer> {
  const id = await lookupPath(fs, path);
  const st = await fs.stat(id);
  return fs.read(id, 0, st.size);
}

/** Walks everything, counting the CairnErrors; anything else fails the test. */
async function walkTolerant(fs: GuestFileSystem): Promise<{ nodes: number; errors: CairnError[] }> {
  const errors: CairnError[] = [];
  let nodes = 0;
  const visit = async (id: bigint): Promise<void> => {
    nodes++;
    // Let the test's timeout fire should a walk go round forever (cached reads never yield).
    await new Promise((resolve) => setImmediate(resolve));
    try {
      const st = await fs.stat(id);
      if (st.type === 'file') {
        await fs.read(id, 0, st.size);
        return;
      }
      const children: bigint[] = [];
      for await (const entry of fs.readdir(id)) children.push(entry.id);
      for (const child of children) await visit(child);
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      errors.push(err);
    }
  };
  await visit(fs.rootId);
  return { nodes, errors };
}

async function expectDamage(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CairnError);
  expect((err as CairnError).code).toBe('ERR_FORMAT_INVALID');
  expect((err as CairnError).message).toMatch(pattern);
}

describe('damaged FAT16 volumes', () => {
  it('reads the undamaged base completely and fsck.fat -n finds it clean', async () => {
    tool(env, 'fsck.fat', ['-n', base]);
    const { errors } = await walkTolerant(await open(base));
    expect(errors).toEqual([]);
  });

  it('reports a cluster chain that loops back to its start', async () => {
    const clusters = clustersOf('/loop.bin');
    const image = damaged('loop', (img) => setFatEntry(img, clusters[clusters.length - 1] ?? 0, clusters[0] ?? 0));
    const fs = await open(image);
    await expectDamage(readAll(fs, '/loop.bin'), /"loop\.bin".*more than 4 clusters.*loop/);
    expect((await readAll(fs, '/fine.txt')).toString()).toBe('still readable\n');
  });

  it('reports a chain shorter than the size, and links to bad, free and out-of-range clusters', async () => {
    const cases: [string, number, RegExp][] = [
      ['short', 0xffff, /"short\.bin".*ends after 2 clusters.*needs 4/],
      ['bad', 0xfff7, /"bad\.bin".*links to a bad cluster/],
      ['free', 0x0000, /"free\.bin".*links to a free cluster/],
      ['range', 0xfff0, /"range\.bin".*links to a reserved cluster/],
    ];
    for (const [name, value, pattern] of cases) {
      const clusters = clustersOf(`/${name}.bin`);
      const image = damaged(name, (img) => setFatEntry(img, clusters[1] ?? 0, value));
      const fs = await open(image);
      await expectDamage(readAll(fs, `/${name}.bin`), pattern);
      await expectDamage(fs.extents(await lookupPath(fs, `/${name}.bin`), 0, 2048), pattern);
    }
  });

  it('reports a first cluster outside the data region', async () => {
    const image = damaged('first', (img) => setEntryCluster(img, entryOffset(0, 'FINE    TXT'), 0xfff0));
    await expectDamage(readAll(await open(image), '/fine.txt'), /"fine\.txt".*first cluster 65520 is outside/);
  });

  it('ends a walk of a directory that contains its own ancestor', async () => {
    const [aCluster] = clustersOf('/a');
    const [bCluster] = clustersOf('/a/b');
    const image = damaged('ancestor', (img) => setEntryCluster(img, entryOffset(bCluster ?? 0, 'C          '), aCluster ?? 0));
    const fs = await open(image);
    const { errors } = await walkTolerant(fs);
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/"c" .*'\.\.' names directory cluster 0, but its entry is in directory cluster \d+/),
    ]);
  });

  it('ends a walk of two directory entries cross-linked to one directory', async () => {
    const [xCluster] = clustersOf('/x');
    const image = damaged('crosslink', (img) => setEntryCluster(img, entryOffset(0, 'Y          '), xCluster ?? 0));
    const fs = await open(image);
    const { errors } = await walkTolerant(fs);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/"y" .*cross-linked/)]);
    expect((await readAll(fs, '/x/in-x.txt')).toString()).toBe('x\n');
  });

  it('reports a directory whose cluster chain loops, after the 65536 entries a directory may hold', async () => {
    const clusters = clustersOf('/many');
    const image = damaged('dirloop', (img) => setFatEntry(img, clusters[clusters.length - 1] ?? 0, clusters[0] ?? 0));
    const fs = await open(image);
    const err = await (async () => {
      for await (const entry of fs.readdir(await lookupPath(fs, '/many'))) void entry;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).message).toMatch(/"many".*more than 4096 clusters.*65536 entries.*loop/);
  });

  it('reports data past the end of a volume cut short, without handing the reader an impossible range', async () => {
    // mcopy wrote the top-level names in order, so y/in-y.txt holds the last data cluster.
    const clusters = clustersOf('/y/in-y.txt');
    const cut = geometry.dataOffset + ((clusters[0] ?? 0) - 2) * geometry.clusterSize;
    const image = damaged('cut', (img) => truncateSync(img, cut), false);
    const fs = await open(image);
    expect((await readAll(fs, '/fine.txt')).toString()).toBe('still readable\n');
    const { errors } = await walkTolerant(fs);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/the data of "in-y\.txt" .* past the end of the \d+-byte volume/)]);
  });
});
