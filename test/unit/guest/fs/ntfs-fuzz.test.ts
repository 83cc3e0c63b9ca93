// Fuzzing the NTFS reader: deterministic small images (mkntfs -T, then filled through ntfs-3g with
// its clock frozen by faketime, so the same steps give the same bytes), a few hundred copies each
// with random bytes written over the metadata (boot sector, MFT records with their attributes and
// runlists, index blocks, compressed clusters), each walked completely. Every walk must end in a
// listing or a CairnError: any other exception, a hang past the deadline or runaway memory fails.
// Seeds that ever failed stay in test/fixtures/ntfs-fuzz-regressions.json.
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockReader } from '../../../../src/core/block-reader.js';
import { CairnError } from '../../../../src/core/errors.js';
import type { GuestFileSystem, GuestNodeId } from '../../../../src/core/guest-filesystem.js';
import { ntfsDriver } from '../../../../src/guest/fs/ntfs/index.js';
import {
  FILE_ATTRIBUTES,
  FROZEN_TIME,
  mftRecordOf,
  mftRecordOffset,
  mkntfs,
  ntfsinfoRuns,
  pattern,
  reparseBuffer,
  setAttributes,
  setReparse,
  tempDir,
  withNtfs3g,
} from '../../../helpers/ntfs-images.js';

const CASES_PER_IMAGE = Number(process.env.CAIRN_FUZZ_CASES ?? 150);
const DEADLINE_MS = 3000;
const MAX_NODES = 2000;
const MAX_FILE_BYTES = 1024 * 1024;
const MiB = 1024 * 1024;

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
  readFileSync(new URL('../../../fixtures/ntfs-fuzz-regressions.json', import.meta.url), 'utf8'),
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

/** Walks everything: readdir, lookup (streams too), stat, read (capped), extents, readlink. Returns the node count. */
async function walk(fs: GuestFileSystem): Promise<number> {
  const seen = new Set<GuestNodeId>();
  const queue: GuestNodeId[] = [fs.rootId];
  let nodes = 0;
  const visit = async (id: GuestNodeId): Promise<void> => {
    const stat = await fs.stat(id);
    if (stat.type === 'dir') {
      let entries = 0;
      for await (const entry of fs.readdir(id)) {
        if (++entries <= 50) {
          await fs.lookup(id, entry.name);
          await fs.lookup(id, Buffer.concat([entry.name, Buffer.from(':stream')]));
        }
        queue.push(entry.id);
      }
    } else if (stat.type === 'file') {
      for (let at = 0; at < Math.min(stat.size, MAX_FILE_BYTES); at += 256 * 1024) await fs.read(id, at, 256 * 1024);
      await fs.extents(id, 0, stat.size);
    } else if (stat.type === 'symlink') {
      await fs.readlink(id);
    }
  };
  while (queue.length > 0 && nodes < MAX_NODES) {
    const id = queue.shift()!;
    if (seen.has(id)) continue;
    seen.add(id);
    nodes++;
    await visit(id);
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
    const work = (async () => walk(await ntfsDriver.open(new MemoryVolume(bytes), { name: 'fuzz', metadataCacheBytes: 2 * MiB })))();
    await Promise.race([work, deadline]);
    return 'listed';
  } catch (err) {
    if (err instanceof CairnError && (err.code === 'ERR_FORMAT_INVALID' || err.code === 'ERR_UNSUPPORTED')) return 'error';
    throw new Error(`${base.name} mutations ${JSON.stringify(mutations)}: ${String(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

let dir: string;
const bases: BaseImage[] = [];

/** Fills a small tree (every structure the reader parses) through ntfs-3g with a frozen clock. */
function fillSmallTree(root: string): string[] {
  const paths: string[] = ['/', '/sub', '/sub/deeper', '/wide', '/packed'];
  mkdirSync(join(root, 'sub', 'deeper'), { recursive: true });
  mkdirSync(join(root, 'wide'));
  const file = (rel: string, data: Buffer | string): void => {
    writeFileSync(join(root, rel), data);
    paths.push(`/${rel}`);
  };
  file('small.txt', 'small\n');
  file('resident', pattern(300, 1));
  file('sub/medium.bin', pattern(40_000, 2));
  file('sub/deeper/big.bin', pattern(300_000, 3));
  file('small.txt:stream', 'a stream\n');
  for (let i = 0; i < 150; i++) file(`wide/entry-${i}-${'w'.repeat(i % 30)}`, i % 10 === 0 ? pattern(i * 10, i) : '');
  mkdirSync(join(root, 'packed'));
  setAttributes(join(root, 'packed'), FILE_ATTRIBUTES.COMPRESSED);
  file('packed/text.txt', 'compressible text, repeated. '.repeat(5000));
  symlinkSync('small.txt', join(root, 'interix-link'));
  mkdirSync(join(root, 'junction'));
  setReparse(join(root, 'junction'), reparseBuffer('junction', '\\??\\C:\\sub\\deeper'));
  writeFileSync(join(root, 'win-link'), '');
  setReparse(join(root, 'win-link'), reparseBuffer('relative-symlink', 'sub\\MEDIUM.bin'));
  paths.push('/interix-link', '/junction', '/win-link');
  for (let i = 0; i < 12; i++) writeFileSync(join(root, 'sub', `link-with-a-long-name-to-spill-the-record-${i}`), '');
  return paths;
}

async function buildBase(name: string, clusterSize: number): Promise<BaseImage> {
  const image = mkntfs(join(dir, `${name}.img`), { size: 8 * MiB, clusterSize });
  const paths = await withNtfs3g(image, ['streams_interface=windows'], (mnt) => fillSmallTree(mnt), FROZEN_TIME);
  const ranges: [number, number][] = [[0, 512]];
  // The MFT records in use (the first 100 hold every file of the tree).
  const firstMft = mftRecordOffset(image, 0, clusterSize);
  ranges.push([firstMft, 100 * 1024]);
  // Every directory's index blocks and the compressed file's stored clusters.
  for (const p of paths) {
    for (const [lcn, clusters] of ntfsinfoRuns(image, { path: p }, '$INDEX_ALLOCATION'))
      ranges.push([lcn * clusterSize, clusters * clusterSize]);
  }
  for (const [lcn, clusters] of ntfsinfoRuns(image, { path: '/packed/text.txt' }, '$DATA'))
    ranges.push([lcn * clusterSize, clusters * clusterSize]);
  expect(mftRecordOf(image, '/small.txt')).toBeLessThan(100);
  return { name, bytes: readFileSync(image), metadata: ranges };
}

beforeAll(async () => {
  dir = tempDir('ntfsfuzz');
  bases.push(await buildBase('ntfs-4k', 4096));
  bases.push(await buildBase('ntfs-512', 512));
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ntfs reader fuzz', () => {
  it('builds the same base images every time (so that seeds replay)', async () => {
    const again = await buildBase('ntfs-4k-again', 4096);
    expect(again.bytes.equals(bases[0]!.bytes)).toBe(true);
  }, 30_000);

  it('walks each undamaged base image completely', async () => {
    for (const base of bases) expect(await runCase(base, [])).toBe('listed');
  });

  it('replays every seed that ever failed', async () => {
    for (const r of REGRESSIONS) {
      const base = bases.find((b) => b.name === r.image)!;
      await runCase(base, r.mutations ?? mutationsFor(base, r.seed));
    }
  });

  it(
    `survives ${CASES_PER_IMAGE} mutated copies of each image`,
    async () => {
      const outcomes = { listed: 0, error: 0 };
      const heapBefore = process.memoryUsage().heapUsed;
      for (const base of bases) {
        for (let seed = 1; seed <= CASES_PER_IMAGE; seed++) outcomes[await runCase(base, mutationsFor(base, seed))]++;
      }
      if (process.env.CAIRN_FUZZ_VERBOSE) console.log(outcomes);
      // Both outcomes must occur, or the mutations are not reaching anything the reader checks.
      expect(outcomes.listed).toBeGreaterThan(0);
      expect(outcomes.error).toBeGreaterThan(0);
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(512 * 1024 * 1024);
    },
    120_000 + CASES_PER_IMAGE * 400,
  );
});
