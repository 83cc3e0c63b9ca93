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
    const { fatOffset, rootOffset, dataOffset } = minfoGeometry(env, path);
    // The live metadata of these small trees: the BPB, the used head of the first FAT, the root
    // directory (a region on FAT12/16, cluster 2 on FAT32) and the first data clusters, where mcopy
    // put the subdirectories among the files.
    bases.set(name, {
      bytes: readFileSync(path),
      regions: [
        { offset: 0, length: 96 },
        { offset: fatOffset, length: 1024 },
        { offset: rootOffset, length: 4096 },
        { offset: dataOffset, length: 48 * 1024 },
      ],
    });
  }
});

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

/** The damage of (base, seed): 1–24 writes of 1–8 random bytes, mostly into metadata. */
function mutate(base: Base, seed: number): Map<number, number> {
  const random = generator(seed);
  const patches = new Map<number, number>();
  const size = base.bytes.length;
  const writes = 1 + Math.floor(random() * 24);
  for (let w = 0; w < writes; w++) {
    const pick = random();
    const region = pick < 0.95 ? base.regions[Math.floor(random() * base.regions.length)] : { offset: 0, length: size };
    if (!region) continue;
    const at = region.offset + Math.floor(random() * region.length);
    const run = 1 + Math.floor(random() * 8);
    for (let k = 0; k < run && at + k < size; k++) {
      // Small values are the interesting ones in cluster numbers and counts: mix them in.
      patches.set(at + k, random() < 0.3 ? Math.floor(random() * 4) : Math.floor(random() * 256));
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
    if (err instanceof CairnError) {
      if (process.env.FAT_FUZZ_TIMES) console.log('ERR', err.code, err.message.replace(/\d+/g, 'N').slice(0, 90));
      return { nodes: 0, errors: 1 };
    }
    throw err;
  }
  let nodes = 0;
  let errors = 0;
  const guard = async (step: () => Promise<void>): Promise<void> => {
    try {
      await step();
    } catch (err) {
      if (!(err instanceof CairnError)) throw err;
      if (process.env.FAT_FUZZ_TIMES) console.log('ERR', err.code, err.message.replace(/\d+/g, 'N').slice(0, 90));
      errors++;
    }
  };
  const visit = async (id: bigint): Promise<void> => {
    nodes++;
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
      const started = Date.now();
      for (let seed = 1; seed <= SEEDS_PER_BASE; seed++) {
        const outcome = await runCase(base, seed);
        if (outcome.nodes > 0) opened++;
      }
      if (process.env.FAT_FUZZ_TIMES) console.log(base, Date.now() - started);
    }
    // Most damaged images still open: the fuzz reaches past the boot sector.
    expect(opened).toBeGreaterThan(SEEDS_PER_BASE);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(512 * MiB);
  });
});
