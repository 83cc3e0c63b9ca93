// Fuzzes the FAT reader: images made by mkfs.fat and mtools (deterministic: fixed volume id, times
// and contents), damaged by seeded random bytes over the boot sector, the FATs, the directories or
// anywhere, then walked completely. Each run must end in a listing or a CairnError, within a
// deadline. Seeds that ever failed are kept in test/fixtures/fat-fuzz-regressions.json and replayed
// first; set FAT_FUZZ_SEEDS to run more seeds locally.
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../../../src/core/errors.js';
import type { GuestFileSystem } from '../../../../src/core/guest-filesystem.js';
import { fatDriver } from '../../../../src/guest/fs/fat/index.js';
import { makeTempDir } from '../../../helpers/disk-images.js';
import {
  BufferVolume,
  fatToolEnv,
  makeFatImage,
  minfoGeometry,
  MiB,
  patternBytes,
  tool,
  type FatTree,
} from '../../../helpers/fat-images.js';

interface Regression {
  readonly base: BaseName;
  readonly seed: number;
  readonly why: string;
}

type BaseName = 'fat12' | 'fat16' | 'fat32';

const REGRESSIONS = JSON.parse(
  readFileSync(new URL('../../../fixtures/fat-fuzz-regressions.json', import.meta.url), 'utf8'),
) as Regression[];
const SEEDS_PER_BASE = Number(process.env.FAT_FUZZ_SEEDS ?? 100);
const DEADLINE_MS = 2000;
/** Bytes a walk may read from one file: the images are small, so more means a runaway size. */
const READ_PIECE = 256 * 1024;

const TREE: FatTree = {
  'README.TXT': Buffer.from('read me\n'),
  'lower.txt': Buffer.from('lower\n'),
  'A long file name that takes several entries.bin': patternBytes(9000, 7),
  'Ünïcødé 日本語.txt': Buffer.from('names\n'),
  'empty.dat': Buffer.alloc(0),
  'dir/sub/deeper/leaf.txt': Buffer.from('leaf\n'),
  'dir/other.txt': patternBytes(3000, 8),
  'dir/empty-dir': null,
};
for (let i = 0; i < 40; i++) TREE[`many/file number ${i}.txt`] = Buffer.from(`${i}\n`);

interface Base {
  readonly bytes: Buffer;
  /** Data clusters of the volume, for cluster numbers just in and just out of range. */
  readonly clusters: number;
  /** Clusters the tree occupies (2 .. used + 1): a link among them makes loops and cross-links. */
  readonly used: number;
  /** First clusters of the directories (0 and the FAT32 root among them): pointing an entry at one makes directory cycles. */
  readonly dirClusters: readonly number[];
  /** Byte ranges worth damaging: boot sector, FATs, root directory, start of the data region. */
  readonly regions: readonly { readonly offset: number; readonly length: number }[];
}

const work = makeTempDir('fat-fuzz');
const env = fatToolEnv(work);
const bases = new Map<BaseName, Base>();

beforeAll(() => {
  const specs: Record<BaseName, { fatBits: 12 | 16 | 32; size: number; sectorsPerCluster: number }> = {
    fat12: { fatBits: 12, size: 1 * MiB, sectorsPerCluster: 1 },
    fat16: { fatBits: 16, size: 8 * MiB, sectorsPerCluster: 1 },
    fat32: { fatBits: 32, size: 34 * MiB, sectorsPerCluster: 1 },
  };
  for (const [name, spec] of Object.entries(specs) as [BaseName, (typeof specs)[BaseName]][]) {
    const path = join(work, `${name}.img`);
    makeFatImage(env, path, { ...spec, volumeId: '0badf00d', tree: TREE, mtime: 1_500_000_000 }, work);
    const { fatOffset, rootOffset, dataOffset, clusterSize } = minfoGeometry(env, path);
    // The live metadata of these small trees: the BPB, the used head of the first FAT, the root
    // directory (a region on FAT12/16, cluster 2 on FAT32) and the first data clusters, where mcopy
    // put the subdirectories among the files.
    bases.set(name, {
      bytes: readFileSync(path),
      clusters: Math.floor((spec.size - dataOffset) / clusterSize),
      used: Math.floor((spec.size - dataOffset) / clusterSize) - freeBytes(path) / clusterSize,
      dirClusters: directoryClusters(readFileSync(path), rootOffset, dataOffset + 48 * 1024, spec.fatBits === 32),
      regions: [
        { offset: 0, length: 96 },
        { offset: fatOffset, length: 1024 },
        { offset: rootOffset, length: 4096 },
        { offset: dataOffset, length: 48 * 1024 },
      ],
    });
  }
});

/**
 * The first clusters named by directory entries with the directory attribute ("FAT Directory
 * Structure": attribute at byte 11, cluster high word at 20 on FAT32, low word at 26) in the given
 * range, plus 0 and 2 (the root's numbers).
 */
function directoryClusters(bytes: Buffer, from: number, to: number, fat32: boolean): number[] {
  const found = new Set([0, 2]);
  for (let at = from; at + 32 <= to; at += 32) {
    const attr = bytes[at + 11] ?? 0;
    if (bytes[at] === 0 || bytes[at] === 0xe5 || (attr & 0x3f) === 0x0f || !(attr & 0x10)) continue;
    found.add(bytes.readUInt16LE(at + 26) + (fat32 ? bytes.readUInt16LE(at + 20) * 0x10000 : 0));
  }
  return [...found];
}

/** Free bytes as mdir counts them. */
function freeBytes(image: string): number {
  const m = /([\d ]+) bytes free/.exec(tool(env, 'mdir', ['-i', image, '::/']));
  return Number((m?.[1] ?? '0').replace(/ /g, ''));
}

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** mulberry32: a small seeded generator, so that a seed names one damaged image forever. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values that matter in cluster numbers, counts and sizes: FAT markers, small and large numbers. */
const INTERESTING = [
  0, 1, 2, 3, 0x7f, 0x80, 0xff, 0xff0, 0xff7, 0xff8, 0xfff, 0xfff7, 0xfff8, 0xffff, 0x0ffffff7, 0x0ffffff8, 0x0fffffff, 0xffffffff,
];

/** Byte offsets of the fields of a 32-byte directory entry that the reader acts on. */
const ENTRY_FIELDS: readonly [number, 1 | 2 | 4][] = [
  [0, 1],
  [11, 1],
  [12, 1],
  [13, 1],
  [20, 2],
  [26, 2],
  [28, 4],
];

/** Offsets and widths of the BPB fields ("Boot Sector and BPB", FAT12/16 and FAT32 forms). */
const BPB_FIELDS: readonly [number, 1 | 2 | 4][] = [
  [11, 2],
  [13, 1],
  [14, 2],
  [16, 1],
  [17, 2],
  [19, 2],
  [21, 1],
  [22, 2],
  [32, 4],
  [36, 4],
  [40, 2],
  [42, 2],
  [44, 4],
];

/**
 * The damage of (base, seed): 1–24 writes, mostly into the metadata regions, of three kinds: random
 * byte runs, aligned 16/32-bit values from INTERESTING or around the cluster count (FAT entries, BPB
 * fields), and single directory-entry fields; in the boot sector, whole BPB fields (name byte, attributes, case bits, cluster, size).
 */
function mutate(base: Base, seed: number): Map<number, number> {
  const random = generator(seed);
  const below = (n: number): number => Math.floor(random() * n);
  const patches = new Map<number, number>();
  const size = base.bytes.length;
  const put = (at: number, value: number, width: number): void => {
    for (let k = 0; k < width && at + k < size; k++) patches.set(at + k, Math.floor(value / 256 ** k) & 0xff);
  };
  const value = (): number => {
    const pick = random();
    if (pick < 0.3) return INTERESTING[below(INTERESTING.length)] ?? 0;
    if (pick < 0.55) return base.dirClusters[below(base.dirClusters.length)] ?? 0;
    return pick < 0.85 ? 2 + below(base.used) : below(base.clusters * 2);
  };
  // Attribute and case bytes that change what an entry is: directory, label, long-name, case bits.
  const byteValue = (): number => [0x00, 0x01, 0x08, 0x0f, 0x10, 0x18, 0x20, 0xe5, 0x05, 0x2e][below(10)] ?? 0;
  const writes = 1 + below(24);
  for (let w = 0; w < writes; w++) {
    const region = random() < 0.95 ? base.regions[below(base.regions.length)] : { offset: 0, length: size };
    if (!region) continue;
    const at = region.offset + below(region.length);
    const kind = random();
    if (region.offset === 0 && region.length < 512) {
      const [field, width] = BPB_FIELDS[below(BPB_FIELDS.length)] ?? [11, 2];
      put(field, random() < 0.5 ? value() : below(256 ** width), width);
    } else if (kind < 0.4) {
      const run = 1 + below(8);
      for (let k = 0; k < run; k++) put(at + k, random() < 0.3 ? below(4) : below(256), 1);
    } else if (kind < 0.7) {
      const width = random() < 0.5 ? 2 : 4;
      put(at - (at % width), value(), width);
    } else {
      const [field, width] = ENTRY_FIELDS[below(ENTRY_FIELDS.length)] ?? [0, 1];
      put(at - (at % 32) + field, width === 1 ? (random() < 0.5 ? below(256) : byteValue()) : value(), width);
    }
  }
  return patches;
}

interface Outcome {
  readonly nodes: number;
  readonly errors: number;
}

/** Opens and walks everything: readdir, lookup of each name, stat, extents, reading every file. */
async function walkAll(volume: BufferVolume): Promise<Outcome> {
  let fs: GuestFileSystem;
  try {
    fs = await fatDriver.open(volume, { name: 'fuzz', metadataCacheBytes: 1024 * 1024 });
  } catch (err) {
    if (err instanceof CairnError) return { nodes: 0, errors: 1 };
    throw err;
  }
  let nodes = 0;
  let errors = 0;
  const guard = async (step: () => Promise<void>): Promise<void> => {
    try {
      await step();
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      errors++;
    }
  };
  const visit = async (id: bigint): Promise<void> => {
    nodes++;
    // Cached reads resolve as microtasks only: yield to the event loop so that the deadline can fire.
    await new Promise((resolve) => setImmediate(resolve));
    let isDir = false;
    let size = 0;
    await guard(async () => {
      const stat = await fs.stat(id);
      isDir = stat.type === 'dir';
      size = stat.size;
    });
    if (isDir || id === fs.rootId) {
      const children: bigint[] = [];
      await guard(async () => {
        for await (const entry of fs.readdir(id)) {
          children.push(entry.id);
          const found = await fs.lookup(id, entry.name);
          expect(found, 'every listed name is found again').toBeDefined();
        }
      });
      for (const child of children) await visit(child);
      return;
    }
    await guard(async () => {
      await fs.extents(id, 0, size);
    });
    await guard(async () => {
      for (let offset = 0; offset < size; offset += READ_PIECE) {
        const got = await fs.read(id, offset, READ_PIECE);
        expect(got.length).toBe(Math.min(READ_PIECE, size - offset));
      }
    });
    // FAT has no symbolic links: asking is a clean error, not damage.
    await expect(fs.readlink(id)).rejects.toBeInstanceOf(CairnError);
  };
  await visit(fs.rootId);
  return { nodes, errors };
}

async function runCase(base: BaseName, seed: number): Promise<Outcome> {
  const image = bases.get(base) as Base;
  const volume = new BufferVolume(image.bytes, mutate(image, seed));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${base} seed ${seed}: no result within ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  try {
    return await Promise.race([walkAll(volume), deadline]);
  } catch (err) {
    throw new Error(
      `${base} seed ${seed} (replay: add {"base":"${base}","seed":${seed}} to test/fixtures/fat-fuzz-regressions.json): ${String(err)}`,
      {
        cause: err,
      },
    );
  } finally {
    clearTimeout(timer);
  }
}

describe('FAT reader under damaged images', () => {
  it('builds the same base images every time (seeds replay)', () => {
    const digests = [...bases.values()].map((b) => createHash('sha256').update(b.bytes).digest('hex'));
    const again = join(work, 'again.img');
    makeFatImage(
      env,
      again,
      { fatBits: 12, size: 1 * MiB, sectorsPerCluster: 1, volumeId: '0badf00d', tree: TREE, mtime: 1_500_000_000 },
      work,
    );
    expect(createHash('sha256').update(readFileSync(again)).digest('hex')).toBe(digests[0]);
    tool(env, 'fsck.fat', ['-n', again]);
  });

  it('walks every undamaged base image completely', async () => {
    for (const base of bases.keys()) {
      const outcome = await walkAll(new BufferVolume((bases.get(base) as Base).bytes));
      expect(outcome.errors, base).toBe(0);
      expect(outcome.nodes, base).toBe(Object.keys(TREE).length + 1 + 4);
    }
  });

  it('replays every seed that ever failed', async () => {
    for (const { base, seed } of REGRESSIONS) await runCase(base, seed);
  });

  it(`ends each of ${SEEDS_PER_BASE} damaged images per FAT type in a listing or a CairnError`, { timeout: 600_000 }, async () => {
    const heapBefore = process.memoryUsage().heapUsed;
    let opened = 0;
    for (const base of bases.keys()) {
      for (let seed = 1; seed <= SEEDS_PER_BASE; seed++) {
        const outcome = await runCase(base, seed);
        if (outcome.nodes > 0) opened++;
      }
    }
    // Most damaged images still open: the fuzz reaches past the boot sector.
    expect(opened).toBeGreaterThan(SEEDS_PER_BASE);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(512 * MiB);
  });
});
