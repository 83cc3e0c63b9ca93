// The harness of a guest filesystem fuzz test: an in-memory volume that refuses reads outside it,
// a seeded PRNG (a seed names its mutations, so failures replay), byte mutations over an image's
// metadata ranges, a complete walk of a filesystem, and one case run under a deadline where the
// only acceptable failures are clean CairnErrors. (ext4-fuzz.test.ts predates it and has its own.)
import type { BlockReader } from '../../src/core/block-reader.js';
import { CairnError } from '../../src/core/errors.js';
import type { GuestFileSystem, GuestNodeId } from '../../src/core/guest-filesystem.js';

export interface FuzzBase {
  readonly name: string;
  readonly bytes: Buffer;
  /** Byte ranges holding metadata: where mutations land. */
  readonly metadata: readonly [number, number][];
}

/** A seed that once failed, kept as a regression case (with its mutations when the base changed since). */
export interface FuzzRegression {
  readonly image: string;
  readonly seed: number;
  readonly mutations?: readonly [number, number][];
  readonly note?: string;
}

/** A volume in memory; reading outside it throws a RangeError, which a reader must never provoke. */
export class MemoryVolume implements BlockReader {
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

/** Mulberry32: a tiny seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One to eight byte changes inside the metadata ranges: bit flips, off-by-one deltas and arbitrary bytes. */
export function mutationsFor(base: FuzzBase, seed: number): [number, number][] {
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

export interface WalkLimits {
  readonly maxNodes: number;
  readonly maxFileBytes: number;
  /** Names also looked up with this suffix (NTFS streams: ':stream'). */
  readonly lookupSuffixes?: readonly string[];
}

/** Walks everything: readdir, lookup (the first 50 names of each directory), stat, read (capped), extents, readlink. */
export async function walkAll(fs: GuestFileSystem, limits: WalkLimits): Promise<number> {
  const seen = new Set<GuestNodeId>();
  const queue: GuestNodeId[] = [fs.rootId];
  let nodes = 0;
  while (queue.length > 0 && nodes < limits.maxNodes) {
    const id = queue.shift()!;
    if (seen.has(id)) continue;
    seen.add(id);
    nodes++;
    const stat = await fs.stat(id);
    if (stat.type === 'dir') {
      let entries = 0;
      for await (const entry of fs.readdir(id)) {
        if (++entries <= 50) {
          await fs.lookup(id, entry.name);
          for (const suffix of limits.lookupSuffixes ?? []) await fs.lookup(id, Buffer.concat([entry.name, Buffer.from(suffix)]));
        }
        queue.push(entry.id);
      }
    } else if (stat.type === 'file') {
      for (let at = 0; at < Math.min(stat.size, limits.maxFileBytes); at += 256 * 1024) await fs.read(id, at, 256 * 1024);
      await fs.extents(id, 0, stat.size);
    } else if (stat.type === 'symlink') {
      await fs.readlink(id);
    }
  }
  return nodes;
}

/**
 * Opens and walks a mutated copy of `base` under a deadline. 'listed' or 'error' (a clean
 * ERR_FORMAT_INVALID or ERR_UNSUPPORTED); anything else throws, naming the mutations.
 */
export async function runFuzzCase(
  base: FuzzBase,
  mutations: readonly [number, number][],
  deadlineMs: number,
  openAndWalk: (volume: BlockReader) => Promise<unknown>,
): Promise<'listed' | 'error'> {
  const bytes = Buffer.from(base.bytes);
  for (const [offset, value] of mutations) bytes[offset] = value;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`deadline of ${deadlineMs} ms passed`)), deadlineMs);
  });
  try {
    await Promise.race([openAndWalk(new MemoryVolume(bytes)), deadline]);
    return 'listed';
  } catch (err) {
    if (err instanceof CairnError && (err.code === 'ERR_FORMAT_INVALID' || err.code === 'ERR_UNSUPPORTED')) return 'error';
    throw new Error(`${base.name} mutations ${JSON.stringify(mutations)}: ${String(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
