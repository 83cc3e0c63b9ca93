// Fuzzing the ext4 reader: deterministic small images (fixed UUID, hash seed, clock and times), a
// few hundred copies each with random bytes written over the metadata (superblock, descriptors,
// inode table, directory, extent and indirect blocks), each walked completely. Every walk must end
// in a listing or a CairnError: any other exception, a hang past the deadline or runaway memory
// fails. Seeds that ever failed stay in test/fixtures/ext4-fuzz-regressions.json.
import { readFileSync, rmSync, utimesSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockReader } from '../../../../src/core/block-reader.js';
import { CairnError } from '../../../../src/core/errors.js';
import type { GuestFileSystem, GuestNodeId } from '../../../../src/core/guest-filesystem.js';
import { ext4Driver } from '../../../../src/guest/fs/ext4/index.js';
import { FAKE_TIME, mkfs, pattern, run, tempDir } from '../../../helpers/ext4-images.js';

const CASES_PER_IMAGE = Number(process.env.CAIRN_FUZZ_CASES ?? 100);
const DEADLINE_MS = 3000;
const MAX_NODES = 2000;
const MAX_FILE_BYTES = 1024 * 1024;

interface BaseImage {
  readonly name: string;
  readonly bytes: Buffer;
  /** Byte ranges holding metadata: where mutations land. */
  readonly metadata: readonly [number, number][];
}

interface Regression {
  readonly image: string;
  readonly seed: number;
  readonly mutations?: readonly [number, number][];
  readonly note?: string;
}

const REGRESSIONS: Regression[] = JSON.parse(
  readFileSync(new URL('../../../fixtures/ext4-fuzz-regressions.json', import.meta.url), 'utf8'),
) as Regression[];

/** A volume in memory; reading outside it throws a RangeError, which the reader must never provoke. */
class MemoryVolume implements BlockReader {
  readonly blockSize = 4096;
  constructor(private readonly bytes: Buffer) {}
  get size(): number {
    return this.bytes.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.bytes.length)
      throw new RangeError(`read ${offset}+${length}`);
    return Buffer.from(this.bytes.subarray(offset, offset + length));
  }
  async allocation(offset: number, length: number): Promise<{ offset: number; length: number; zero: boolean }[]> {
    return [{ offset, length, zero: false }];
  }
}

/** Mulberry32: a tiny seeded PRNG, so that a seed names its mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function mutationsFor(base: BaseImage, seed: number): [number, number][] {
  const random = prng(seed);
  const total = base.metadata.reduce((n, [, len]) => n + len, 0);
  const count = 1 + Math.floor(random() * 8);
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    let pick = Math.floor(random() * total);
    for (const [start, len] of base.metadata) {
      if (pick < len) {
        const mode = random();
        const old = base.bytes[start + pick]!;
        // Bit flips, small deltas (counts off by one) and arbitrary bytes.
        const value =
          mode < 0.4
            ? old ^ (1 << Math.floor(random() * 8))
            : mode < 0.6
              ? (old + (random() < 0.5 ? 1 : 255)) & 0xff
              : Math.floor(random() * 256);
        out.push([start + pick, value]);
        break;
      }
      pick -= len;
    }
  }
  return out;
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
  const bytes = Buffer.from(base.bytes);
  for (const [offset, value] of mutations) bytes[offset] = value;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`deadline of ${DEADLINE_MS} ms passed`)), DEADLINE_MS);
  });
  try {
    const work = (async () =>
      walk(await ext4Driver.open(new MemoryVolume(bytes), { name: 'fuzz', metadataCacheBytes: 2 * 1024 * 1024 })))();
    await Promise.race([work, deadline]);
    return 'listed';
  } catch (err) {
    if (err instanceof CairnError && (err.code === 'ERR_FORMAT_INVALID' || err.code === 'ERR_UNSUPPORTED')) return 'error';
    throw new Error(`${base.name} mutations ${JSON.stringify(mutations)}: ${String(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** The blocks debugfs lists for each path: all of a directory's, and the tree/indirect blocks of others. */
function metadataRanges(image: string, paths: { path: string; dir: boolean }[], blockSize: number): [number, number][] {
  const ranges: [number, number][] = [[1024, 1024]];
  const layout = run('dumpe2fs', [image]);
  for (const m of layout.matchAll(/Group descriptors at (\d+)-(\d+)/g))
    ranges.push([Number(m[1]) * blockSize, (Number(m[2]) - Number(m[1]) + 1) * blockSize]);
  const table = /Inode table at (\d+)-/.exec(layout)!;
  const inodeSize = Number(/Inode size:\s+(\d+)/.exec(layout)![1]);
  ranges.push([Number(table[1]) * blockSize, (paths.length + 12) * inodeSize]);
  const cmds = join(image + '.cmds');
  writeFileSync(cmds, paths.map((p) => `stat "${p.path}"`).join('\n') + '\n');
  const out = run('debugfs', ['-f', cmds, image]).split(/debugfs: stat/);
  out.shift();
  paths.forEach((p, i) => {
    const text = out[i] ?? '';
    for (const m of text.matchAll(/\(([A-Z]*\d*|\d+(?:-\d+)?)\):(\d+)(?:-(\d+))?/g)) {
      const isTree = /^[A-Z]/.test(m[1]!);
      if (!isTree && !p.dir) continue;
      const first = Number(m[2]);
      const last = m[3] ? Number(m[3]) : first;
      ranges.push([first * blockSize, (last - first + 1) * blockSize]);
    }
  });
  return ranges;
}

let dir: string;
const bases: BaseImage[] = [];

function buildBase(name: string, args: string[], blockSize: number): BaseImage {
  const src = join(dir, `${name}-src`);
  mkdirSync(join(src, 'sub', 'deeper'), { recursive: true });
  mkdirSync(join(src, 'wide'));
  const paths: { path: string; dir: boolean }[] = [
    { path: '/', dir: true },
    { path: '/lost+found', dir: true },
    { path: '/sub', dir: true },
    { path: '/sub/deeper', dir: true },
    { path: '/wide', dir: true },
  ];
  const file = (rel: string, data: Buffer | string): void => {
    writeFileSync(join(src, rel), data);
    paths.push({ path: `/${rel}`, dir: false });
  };
  file('small.txt', 'small\n');
  file('inline-ish', pattern(100, 1));
  file('sub/medium.bin', pattern(40_000, 2));
  file('sub/deeper/big.bin', pattern(300_000, 3));
  for (let i = 0; i < 120; i++) file(`wide/entry-${i}-${'w'.repeat(i % 30)}`, i % 10 === 0 ? pattern(i * 10, i) : '');
  symlinkSync('small.txt', join(src, 'fast-link'));
  symlinkSync('sub/'.repeat(30) + 'far', join(src, 'slow-link'));
  paths.push({ path: '/fast-link', dir: false }, { path: '/slow-link', dir: false });
  for (const p of paths) if (p.path !== '/lost+found' && !p.path.endsWith('-link')) utimesSync(join(src, p.path), FAKE_TIME, FAKE_TIME);
  const image = mkfs(join(dir, `${name}.img`), { size: 3 * 1024 * 1024, args: ['-b', String(blockSize), '-N', '256', ...args], from: src });
  // mke2fs -d copies ctime and atime from the source, which no one can set: pin them for replayable seeds.
  const pin = paths.map((p) => `sif "${p.path}" ctime @${FAKE_TIME}\nsif "${p.path}" atime @${FAKE_TIME}`).join('\n');
  writeFileSync(join(dir, `${name}.pin`), pin + '\n');
  run('debugfs', ['-w', '-f', join(dir, `${name}.pin`), image], { E2FSPROGS_FAKE_TIME: String(FAKE_TIME) });
  return { name, bytes: readFileSync(image), metadata: metadataRanges(image, paths, blockSize) };
}

beforeAll(() => {
  dir = tempDir('ext4fuzz');
  bases.push(buildBase('ext4-1k', [], 1024));
  bases.push(buildBase('ext4-inline-4k', ['-O', 'inline_data,^has_journal'], 4096));
  bases.push(buildBase('ext2-1k', ['-t', 'ext2'], 1024));
  // Without checksums most mutations get past the first check and reach the deeper parsers.
  bases.push(buildBase('ext4-nocsum-1k', ['-O', '^metadata_csum,^has_journal'], 1024));
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ext4 reader fuzz', () => {
  it('walks each undamaged base image completely', async () => {
    for (const base of bases) expect(await runCase(base, [])).toBe('listed');
  });

  it('replays every seed that ever failed', async () => {
    for (const r of REGRESSIONS) {
      const base = bases.find((b) => b.name === r.image)!;
      await runCase(base, r.mutations ?? mutationsFor(base, r.seed));
    }
  });

  it(`survives ${CASES_PER_IMAGE} mutated copies of each image`, async () => {
    const outcomes = { listed: 0, error: 0 };
    const heapBefore = process.memoryUsage().heapUsed;
    for (const base of bases) {
      for (let seed = 1; seed <= CASES_PER_IMAGE; seed++) outcomes[await runCase(base, mutationsFor(base, seed))]++;
    }
    // Both outcomes must occur, or the mutations are not reaching anything the reader checks.
    expect(outcomes.listed).toBeGreaterThan(0);
    expect(outcomes.error).toBeGreaterThan(0);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(512 * 1024 * 1024);
  }, 120_000);
});
