import type { ChunkStore } from '../core/chunk-store.js';
import { isAllZero } from '../util/bytes.js';
import { sha256HexAsync } from '../store/chunk-format.js';
import { DigestList, type DiskIndex } from '../store/disk-index.js';
import { assembleChunks, type AssembledChunk, type ChunkRun } from './chunk-assembler.js';
import type { DiskSource, ExtentPlan } from './disk-source.js';

/** The same disk in the base point: where `unchanged` extents are taken from. */
export interface BaseDisk {
  size: number;
  digests: DigestList;
}

export interface DiskWriteStats {
  bytesRead: number;
  /** Bytes written to the repository for new chunks (after compression). */
  bytesStored: number;
  chunksWritten: number;
  chunksReused: number;
  dataChunks: number;
}

export interface DiskWriteOptions {
  source: DiskSource;
  store: ChunkStore;
  chunkSize: number;
  base?: BaseDisk;
  plan: ExtentPlan;
  /** Chunks processed at once; bounds memory to about 2 × concurrency × chunkSize. */
  concurrency?: number;
  onProgress?: (bytesDone: number) => void;
  signal?: AbortSignal;
}

/** Eight 1 MiB chunks in flight: 10 % faster than four on two cores (the pool waits less), +25 MiB RSS. */
function defaultConcurrency(chunkSize: number): number {
  return Math.max(2, Math.min(8, Math.floor((32 * 1024 * 1024) / chunkSize)));
}

/**
 * Writes one disk's extent stream into the chunk store and returns its index. Whole-chunk unchanged
 * ranges reuse the base digest without reading; partly changed chunks read the base chunk once;
 * all-zero chunks become holes; a chunk already in the store is touched (so GC keeps it), not rewritten.
 */
export async function writeDisk(options: DiskWriteOptions): Promise<{ index: DiskIndex; stats: DiskWriteStats }> {
  const { source, store, chunkSize, base } = options;
  const digests = new DigestList(source.size !== undefined ? Math.ceil(source.size / chunkSize) : 16);
  const stats: DiskWriteStats = { bytesRead: 0, bytesStored: 0, chunksWritten: 0, chunksReused: 0, dataChunks: 0 };
  const limit = options.concurrency ?? defaultConcurrency(chunkSize);
  const inFlight = new Set<Promise<void>>();
  const finished = new Map<number, { offset: number; length: number }>();
  const pendingWrites = new Map<string, Promise<number>>();
  let nextToAcknowledge = 0;
  let bytesDone = 0;
  let failure: unknown;
  let diskSize = 0;

  async function baseChunk(index: number): Promise<Buffer | undefined> {
    const digest = base?.digests.get(index);
    return digest === undefined ? undefined : store.readChunk(digest);
  }

  async function materialize(chunk: AssembledChunk): Promise<Buffer> {
    const only = chunk.parts[0];
    if (chunk.parts.length === 1 && only?.kind === 'data' && only.data) return only.data;
    const plain = Buffer.alloc(chunk.length);
    let baseData: Buffer | undefined | null = null;
    for (const part of chunk.parts) {
      if (part.kind === 'data') part.data!.copy(plain, part.start);
      else if (part.kind === 'unchanged') {
        if (baseData === null) baseData = await baseChunk(chunk.index);
        // Beyond the base data (a hole, or a disk that grew) the base reads as zeros.
        if (baseData) baseData.copy(plain, part.start, part.start, Math.min(baseData.length, part.start + part.length));
      }
    }
    return plain;
  }

  async function storeChunk(chunk: AssembledChunk): Promise<string | undefined> {
    const parts = chunk.parts;
    const baseDigest = base?.digests.get(chunk.index);
    const baseLength = base ? Math.max(0, Math.min(chunkSize, base.size - chunk.offset)) : 0;
    // Chunks of the base point need no touch: GC keeps every chunk of a running backup's base point.
    if (parts.every((p) => p.kind === 'unchanged') && chunk.length === baseLength) return baseDigest;
    if (parts.every((p) => p.kind === 'zero')) return undefined;
    const plain = await materialize(chunk);
    if (isAllZero(plain)) return undefined;
    const digest = await sha256HexAsync(plain);
    const pending = pendingWrites.get(digest);
    if (digest === baseDigest) {
      stats.chunksReused++;
    } else if (pending) {
      // The same content is being written by another job of this disk right now.
      await pending;
      stats.chunksReused++;
    } else if (await store.touchChunk(digest)) {
      stats.chunksReused++;
    } else if (pendingWrites.has(digest)) {
      await pendingWrites.get(digest);
      stats.chunksReused++;
    } else {
      // Await first: `stats.bytesStored += await …` would read the total before other jobs add to it.
      const writing = store.writeChunk(digest, plain);
      pendingWrites.set(digest, writing);
      const written = await writing.finally(() => pendingWrites.delete(digest));
      stats.bytesStored += written;
      stats.chunksWritten++;
    }
    return digest;
  }

  /** Acknowledges finished ranges strictly in offset order; calls are chained so they never interleave. */
  let acknowledging: Promise<void> = Promise.resolve();
  function acknowledgeInOrder(): Promise<void> {
    acknowledging = acknowledging.then(async () => {
      while (finished.has(nextToAcknowledge)) {
        const range = finished.get(nextToAcknowledge)!;
        finished.delete(nextToAcknowledge);
        nextToAcknowledge++;
        if (source.acknowledgeStored) await source.acknowledgeStored(range.offset, range.length);
      }
    });
    return acknowledging;
  }

  function start(chunk: AssembledChunk): void {
    const job = (async () => {
      const digest = await storeChunk(chunk);
      digests.set(chunk.index, digest);
      if (digest !== undefined) stats.dataChunks++;
      finished.set(chunk.index, { offset: chunk.offset, length: chunk.length });
      bytesDone += chunk.length;
      options.onProgress?.(bytesDone);
      await acknowledgeInOrder();
    })().catch((err: unknown) => {
      failure ??= err;
    });
    inFlight.add(job);
    void job.finally(() => inFlight.delete(job));
  }

  const chunkAt = (index: number, kind: 'zero' | 'unchanged'): AssembledChunk => {
    const offset = index * chunkSize;
    const length = source.size === undefined ? chunkSize : Math.min(chunkSize, source.size - offset);
    return { type: 'chunk', index, offset, length, parts: [{ start: 0, length, kind }] };
  };

  /** Zero runs become holes and unchanged runs copy the base digests, without a job per chunk. */
  async function takeRun(run: ChunkRun): Promise<void> {
    for (let index = run.firstIndex; index < run.firstIndex + run.count; index++) {
      const chunk = chunkAt(index, run.kind);
      const baseLength = base ? Math.max(0, Math.min(chunkSize, base.size - chunk.offset)) : 0;
      if (run.kind === 'unchanged' && chunk.length !== baseLength) {
        // The disk grew or shrank around this chunk: it needs the full treatment.
        diskSize = chunk.offset + chunk.length;
        start(chunk);
        while (inFlight.size >= limit) await Promise.race(inFlight);
        continue;
      }
      const digest = run.kind === 'unchanged' ? base?.digests.get(index) : undefined;
      digests.set(index, digest);
      if (digest !== undefined) stats.dataChunks++;
      finished.set(index, { offset: chunk.offset, length: chunk.length });
      bytesDone += chunk.length;
      diskSize = chunk.offset + chunk.length;
    }
    options.onProgress?.(bytesDone);
    await acknowledgeInOrder();
  }

  try {
    for await (const item of assembleChunks(source.extents(options.plan), chunkSize, source.size)) {
      if (failure) break;
      options.signal?.throwIfAborted();
      if (item.type === 'run') {
        await takeRun(item);
        continue;
      }
      diskSize = item.offset + item.length;
      start(item);
      while (inFlight.size >= limit) await Promise.race(inFlight);
    }
  } catch (err) {
    failure ??= err;
  }
  await Promise.all(inFlight);
  if (failure) throw failure;

  const size = source.size ?? diskSize;
  digests.resize(Math.ceil(size / chunkSize));
  stats.bytesRead = source.bytesRead;
  return { index: { chunkSize, diskSize: size, digests }, stats };
}
