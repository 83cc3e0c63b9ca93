// Fuzzing the btrfs reader: small images (mkfs.btrfs --rootdir with a fixed fsid and fixed times,
// whose layout is the same every run, and one filled through the kernel with subvolumes, a
// snapshot and zstd/zlib/lzo extents), a few hundred mutated copies each, each walked completely
// under a deadline. Every walk must end in a listing or a CairnError: any other exception, a hang
// past the deadline or runaway memory fails. Random bytes over metadata mostly meet the checksums,
// so half the cases re-checksum the block they damaged, to reach the parsers behind them. Seeds
// that ever failed stay in test/fixtures/btrfs-fuzz-regressions.json (with their mutations, since
// the kernel-made image is not byte-identical between runs).
import { mkdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockReader } from '../../../../src/core/block-reader.js';
import { CairnError } from '../../../../src/core/errors.js';
import type { GuestFileSystem, GuestNodeId } from '../../../../src/core/guest-filesystem.js';
import { btrfsDriver } from '../../../../src/guest/fs/btrfs/index.js';
import { crc32c } from '../../../../src/util/crc32c.js';
import {
  chunkMappings,
  compressibleText,
  FIXED_FSID,
  mkfsBtrfs,
  physicalCopies,
  prng,
  treeBlocks,
  withBtrfsMount,
} from '../../../helpers/btrfs-images.js';
import { FAKE_TIME, pattern, run, tempDir } from '../../../helpers/ext4-images.js';

const CASES_PER_IMAGE = Number(process.env.CAIRN_FUZZ_CASES ?? 150);
const DEADLINE_MS = 3000;
const MAX_NODES = 2000;
const MAX_FILE_BYTES = 1024 * 1024;
const SUPERBLOCK = 0x10000;

interface Block {
  readonly start: number;
  readonly size: number;
}

interface BaseImage {
  readonly name: string;
  readonly bytes: Buffer;
  /** The primary superblock and every tree block's first copy: where mutations land. */
  readonly blocks: readonly Block[];
}

interface Regression {
  readonly image: string;
  readonly seed: number;
  readonly mutations?: readonly [number, number][];
  readonly note?: string;
}

const REGRESSIONS: Regression[] = JSON.parse(
  readFileSync(new URL('../../../fixtures/btrfs-fuzz-regressions.json', import.meta.url), 'utf8'),
) as Regression[];

/** The base image with byte patches laid over it; reads outside the volume throw a RangeError the reader must never provoke. */
class PatchedVolume implements BlockReader {
  readonly blockSize = 4096;
  constructor(
    private readonly bytes: Buffer,
    private readonly patches: readonly [number, number][],
  ) {}
  get size(): number {
    return this.bytes.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.bytes.length)
      throw new RangeError(`read ${offset}+${length}`);
    const out = Buffer.from(this.bytes.subarray(offset, offset + length));
    for (const [at, value] of this.patches) if (at >= offset && at < offset + length) out[at - offset] = value;
    return out;
  }
  async allocation(offset: number, length: number): Promise<{ offset: number; length: number; zero: boolean }[]> {
    return [{ offset, length, zero: false }];
  }
}

/**
 * The byte patches of one seed: 1-8 bytes over the metadata (bit flips, small deltas that make
 * counts off by one, arbitrary bytes). Odd seeds keep to one block and then re-checksum it
 * (crc32c over everything after the 32-byte csum field), so the damage gets past the checksum.
 */
export function mutationsFor(base: BaseImage, seed: number): [number, number][] {
  const random = prng(seed);
  const recsum = seed % 2 === 1;
  const count = 1 + Math.floor(random() * (recsum ? 4 : 8));
  const out = new Map<number, number>();
  const one = base.blocks[Math.floor(random() * base.blocks.length)]!;
  for (let i = 0; i < count; i++) {
    const block = recsum ? one : base.blocks[Math.floor(random() * base.blocks.length)]!;
    // Skip the checksum field itself when re-checksumming: it is overwritten anyway.
    const skip = recsum ? 32 : 0;
    const at = block.start + skip + Math.floor(random() * (block.size - skip));
    const mode = random();
    const old = out.get(at) ?? base.bytes[at]!;
    const value =
      mode < 0.4
        ? old ^ (1 << Math.floor(random() * 8))
        : mode < 0.6
          ? (old + (random() < 0.5 ? 1 : 255)) & 0xff
          : Math.floor(random() * 256);
    out.set(at, value);
  }
  if (recsum) {
    const copy = Buffer.from(base.bytes.subarray(one.start, one.start + one.size));
    for (const [at, value] of out) copy[at - one.start] = value;
    const sum = Buffer.alloc(4);
    sum.writeUInt32LE(crc32c(copy.subarray(32)));
    for (let i = 0; i < 4; i++) out.set(one.start + i, sum[i]!);
  }
  return [...out.entries()];
}

/** Walks everything: readdir, lookup, stat, read (capped), extents, readlink. Returns the node count. */
async function walk(fs: GuestFileSystem): Promise<number> {
  const seen = new Set<GuestNodeId>();
  const queue: GuestNodeId[] = [fs.rootId];
  let nodes = 0;
  while (queue.length > 0 && nodes < MAX_NODES) {
    const id = queue.shift()!;
    if (seen.has(id)) continue;
    seen.add(id);
    nodes++;
    const stat = await fs.stat(id);
    if (stat.type === 'dir') {
      let entries = 0;
      for await (const entry of fs.readdir(id)) {
        if (++entries <= 50) await fs.lookup(id, entry.name);
        queue.push(entry.id);
      }
    } else if (stat.type === 'file') {
      for (let at = 0; at < Math.min(stat.size, MAX_FILE_BYTES); at += 256 * 1024) await fs.read(id, at, 256 * 1024);
      await fs.extents(id, 0, stat.size);
    } else if (stat.type === 'symlink') {
      await fs.readlink(id);
    }
  }
  return nodes;
}

async function runCase(base: BaseImage, mutations: readonly [number, number][]): Promise<'listed' | 'error'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`deadline of ${DEADLINE_MS} ms passed`)), DEADLINE_MS);
  });
  try {
    const volume = new PatchedVolume(base.bytes, mutations);
    const work = (async () => walk(await btrfsDriver.open(volume, { name: 'fuzz', metadataCacheBytes: 2 * 1024 * 1024 })))();
    await Promise.race([work, deadline]);
    return 'listed';
  } catch (err) {
    if (err instanceof CairnError && (err.code === 'ERR_FORMAT_INVALID' || err.code === 'ERR_UNSUPPORTED')) {
      if (process.env.CAIRN_FUZZ_VERBOSE) console.log(`${base.name}: ${err.message.replace(/\d+/g, 'N')}`);
      return 'error';
    }
    throw new Error(`${base.name} mutations ${JSON.stringify(mutations)}: ${String(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** The superblock and the first copy of every tree block dump-tree lists (all trees). */
function metadataBlocks(image: string, nodeSize: number): Block[] {
  const chunks = chunkMappings(image);
  const blocks: Block[] = [{ start: SUPERBLOCK, size: 4096 }];
  for (const b of treeBlocks(image, [])) blocks.push({ start: physicalCopies(chunks, b.logical)[0]!, size: nodeSize });
  return blocks;
}

let dir: string;
const bases: BaseImage[] = [];

function fillSource(src: string): void {
  mkdirSync(join(src, 'sub', 'deeper'), { recursive: true });
  mkdirSync(join(src, 'wide'));
  writeFileSync(join(src, 'small.txt'), 'small\n');
  writeFileSync(join(src, 'inline-ish'), pattern(1000, 1));
  writeFileSync(join(src, 'sub', 'medium.bin'), pattern(40_000, 2));
  writeFileSync(join(src, 'sub', 'deeper', 'big.bin'), pattern(300_000, 3));
  for (let i = 0; i < 120; i++)
    writeFileSync(join(src, 'wide', `entry-${i}-${'w'.repeat(i % 30)}`), i % 10 === 0 ? pattern(i * 10, i) : '');
  symlinkSync('small.txt', join(src, 'link'));
}

/** mkfs --rootdir: the same bytes every run for a given btrfs-progs (fixed fsid and times; the device uuid varies, and nothing reads it). */
function buildRootdir(name: string, args: string[]): BaseImage {
  const src = join(dir, `${name}-src`);
  fillSource(src);
  for (const rel of ['', 'sub', 'sub/deeper', 'wide', 'small.txt', 'inline-ish', 'sub/medium.bin', 'sub/deeper/big.bin'])
    utimesSync(join(src, rel), FAKE_TIME, FAKE_TIME);
  const image = mkfsBtrfs(join(dir, `${name}.img`), {
    size: 48 * 1024 * 1024,
    args: ['-m', 'single', '-n', '4096', ...args],
    from: src,
    fsid: FIXED_FSID,
  });
  return { name, bytes: readFileSync(image), blocks: metadataBlocks(image, 4096) };
}

async function buildKernel(name: string): Promise<BaseImage> {
  const image = mkfsBtrfs(join(dir, `${name}.img`), { size: 128 * 1024 * 1024, args: ['-m', 'single', '-n', '4096'] });
  await withBtrfsMount(image, ['compress=zstd'], (mnt) => {
    fillSource(mnt);
    writeFileSync(join(mnt, 'zstd.txt'), compressibleText(300_000, 1));
    writeFileSync(join(mnt, 'zstd-inline.txt'), compressibleText(1500, 2));
    for (const codec of ['zlib', 'lzo']) {
      writeFileSync(join(mnt, `${codec}.txt`), '');
      run('btrfs', ['property', 'set', join(mnt, `${codec}.txt`), 'compression', codec]);
      writeFileSync(join(mnt, `${codec}.txt`), compressibleText(200_000, 3));
    }
    run('btrfs', ['-q', 'subvolume', 'create', join(mnt, 'subvol')]);
    writeFileSync(join(mnt, 'subvol', 'inside.txt'), compressibleText(20_000, 4));
    run('btrfs', ['-q', 'subvolume', 'create', join(mnt, 'subvol', 'nested')]);
    writeFileSync(join(mnt, 'subvol', 'nested', 'n.txt'), 'nested\n');
    run('btrfs', ['-q', 'subvolume', 'snapshot', join(mnt, 'subvol'), join(mnt, 'snapshot')]);
  });
  return { name, bytes: readFileSync(image), blocks: metadataBlocks(image, 4096) };
}

beforeAll(async () => {
  dir = tempDir('btrfsfuzz');
  bases.push(buildRootdir('btrfs-rootdir-crc32c', []));
  bases.push(await buildKernel('btrfs-kernel-subvolumes-compressed'));
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('btrfs reader fuzz', () => {
  it('walks each undamaged base image completely', async () => {
    for (const base of bases) expect(await runCase(base, [])).toBe('listed');
  });

  it('replays every seed that ever failed', async () => {
    for (const r of REGRESSIONS) {
      const base = bases.find((b) => b.name === r.image)!;
      await runCase(base, r.mutations ?? mutationsFor(base, r.seed));
    }
  });

  it(`survives ${CASES_PER_IMAGE * 2} mutated copies of each image`, async () => {
    const outcomes = { listed: 0, error: 0 };
    const heapBefore = process.memoryUsage().heapUsed;
    for (const base of bases) {
      for (let seed = 1; seed <= CASES_PER_IMAGE * 2; seed++) outcomes[await runCase(base, mutationsFor(base, seed))]++;
    }
    // Both outcomes must occur, or the mutations are not reaching anything the reader checks.
    expect(outcomes.listed).toBeGreaterThan(0);
    expect(outcomes.error).toBeGreaterThan(0);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(512 * 1024 * 1024);
  }, 120_000);
});
