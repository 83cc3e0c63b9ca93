import { randomBytes } from 'node:crypto';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Extent } from '../../../src/core/extent.js';
import type { DiskSource } from '../../../src/ingest/disk-source.js';
import { FileSource } from '../../../src/ingest/file-source.js';
import { writeDisk } from '../../../src/ingest/point-writer.js';
import { bitmapOf } from '../../../src/formats/cbt-bitmap.js';
import { DiskReader } from '../../../src/restore/disk-reader.js';
import { ChunkCache } from '../../../src/util/cache.js';
import { useTempRepository } from '../../helpers/cairn-cli.js';

const CHUNK = 64 * 1024;

/** A source that yields the given extents: the extent-stream contract, driven directly. */
function extentSource(size: number, extents: Extent[]): DiskSource {
  return {
    description: 'test extents',
    size,
    bytesRead: extents.reduce((n, e) => n + (e.data?.length ?? 0), 0),
    async *extents() {
      yield* extents;
    },
    async close() {},
  };
}

describe('point writer', () => {
  const temp = useTempRepository(CHUNK);

  const readAll = async (index: Awaited<ReturnType<typeof writeDisk>>['index']) =>
    new DiskReader(index, temp.repo.chunks, new ChunkCache(1 << 20), 'test').read(0, index.diskSize);

  it('stores data, turns zero chunks into holes and dedups equal chunks', async () => {
    const block = randomBytes(CHUNK);
    const size = 4 * CHUNK;
    const image = Buffer.concat([block, Buffer.alloc(CHUNK), block, Buffer.alloc(CHUNK)]);
    const { index, stats } = await writeDisk({
      source: extentSource(size, [{ offset: 0, length: size, kind: 'data', data: image }]),
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      plan: { chunkSize: CHUNK, hasBase: false },
    });
    expect([0, 1, 2, 3].map((i) => index.digests.isHole(i))).toEqual([false, true, false, true]);
    expect(index.digests.get(0)).toBe(index.digests.get(2));
    expect(stats.chunksWritten).toBe(1);
    expect(stats.chunksReused).toBe(1);
    expect((await readAll(index)).equals(image)).toBe(true);
  });

  /** Writes `image` as a full backup. */
  const writeFull = (image: Buffer) =>
    writeDisk({
      source: extentSource(image.length, [{ offset: 0, length: image.length, kind: 'data', data: image }]),
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      plan: { chunkSize: CHUNK, hasBase: false },
    });

  /** Writes an incremental on top of `base` where only `changes` are data and the rest is unchanged. */
  const writeChanges = (base: Awaited<ReturnType<typeof writeDisk>>['index'], changes: { offset: number; data: Buffer | 'zero' }[]) => {
    const extents: Extent[] = [];
    let position = 0;
    for (const change of [...changes].sort((a, b) => a.offset - b.offset)) {
      const length = change.data === 'zero' ? CHUNK / 16 : change.data.length;
      if (change.offset > position) extents.push({ offset: position, length: change.offset - position, kind: 'unchanged' });
      extents.push(
        change.data === 'zero'
          ? { offset: change.offset, length, kind: 'zero' }
          : { offset: change.offset, length, kind: 'data', data: change.data },
      );
      position = change.offset + length;
    }
    if (position < base.diskSize) extents.push({ offset: position, length: base.diskSize - position, kind: 'unchanged' });
    return writeDisk({
      source: extentSource(base.diskSize, extents),
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      base: { size: base.diskSize, digests: base.digests, patches: base.patches },
      plan: { chunkSize: CHUNK, hasBase: true, baseSize: base.diskSize },
    });
  };

  it('records a few changed bytes of a chunk as a patch over the base chunk', async () => {
    const size = 3 * CHUNK + 1000; // a short last chunk
    const baseImage = randomBytes(size);
    const base = await writeFull(baseImage);
    const change = randomBytes(100);
    const expected = Buffer.from(baseImage);
    change.copy(expected, CHUNK + 10);
    const { index, stats } = await writeChanges(base.index, [{ offset: CHUNK + 10, data: change }]);
    // One small patch chunk holds the 100 changed bytes; the slot keeps its base chunk.
    expect(stats.chunksWritten).toBe(1);
    expect(stats.bytesStored).toBeLessThan(1000);
    expect([0, 1, 2, 3].map((i) => index.digests.get(i))).toEqual([0, 1, 2, 3].map((i) => base.index.digests.get(i)));
    expect(index.patches?.get(1)).toEqual([{ start: 10, length: 100, chunkOffset: 0, digest: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    expect((await readAll(index)).equals(expected)).toBe(true);
  });

  it('collects the changed bytes of many patched slots into few patch chunks, and acknowledges ranges in order once stored', async () => {
    const slots = 9;
    const baseImage = randomBytes(slots * CHUNK);
    const base = await writeFull(baseImage);
    const expected = Buffer.from(baseImage);
    const changes = Array.from({ length: slots }, (_, slot) => ({ offset: slot * CHUNK + 1024, data: randomBytes(CHUNK / 4) }));
    for (const change of changes) change.data.copy(expected, change.offset);
    const extents: Extent[] = [];
    let position = 0;
    for (const change of changes) {
      extents.push({ offset: position, length: change.offset - position, kind: 'unchanged' });
      extents.push({ offset: change.offset, length: change.data.length, kind: 'data', data: change.data });
      position = change.offset + change.data.length;
    }
    extents.push({ offset: position, length: slots * CHUNK - position, kind: 'unchanged' });
    const source = extentSource(slots * CHUNK, extents);
    const countChunks = async () => {
      let count = 0;
      for await (const chunk of temp.repo.chunks.listChunks()) count += chunk ? 1 : 0;
      return count;
    };
    const baseChunks = await countChunks();
    const acknowledged: number[] = [];
    const chunksAtAcknowledgement: number[] = [];
    source.acknowledgeStored = async (offset) => {
      acknowledged.push(offset);
      chunksAtAcknowledgement.push((await countChunks()) - baseChunks);
    };
    const result = await writeDisk({
      source,
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      base: { size: base.index.diskSize, digests: base.index.digests },
      plan: { chunkSize: CHUNK, hasBase: true, baseSize: base.index.diskSize },
    });
    const { index, stats } = result;
    // 9 × 16 KiB of changes fill bundles of at most one chunk (64 KiB): 3 patch chunks, not 9.
    expect(stats.chunksWritten).toBe(3);
    expect(new Set([...index.patches!.values()].map((patches) => patches[0]!.digest)).size).toBe(3);
    expect(acknowledged).toEqual(Array.from({ length: slots }, (_, slot) => slot * CHUNK));
    // Four slots fill a bundle: slot k is acknowledged only once bundle floor(k / 4) is written.
    chunksAtAcknowledgement.forEach((count, slot) => expect(count).toBeGreaterThanOrEqual(Math.floor(slot / 4) + 1));
    expect((await readAll(index)).equals(expected)).toBe(true);
  });

  it('stores bundles early only for a source that wants its ranges acknowledged soon (NBD trim after read)', async () => {
    // 600 slots with 128 changed bytes each: a full bundle (one 64 KiB chunk) holds 512 of them,
    // more than the 256 unacknowledged ranges after which an acknowledging source gets its bundle.
    const slots = 600;
    const base = await writeFull(randomBytes(slots * CHUNK));
    const patchBytes = 128;
    const changedSource = () => {
      const extents: Extent[] = [];
      for (let slot = 0; slot < slots; slot++) {
        extents.push({ offset: slot * CHUNK, length: patchBytes, kind: 'data', data: randomBytes(patchBytes) });
        extents.push({ offset: slot * CHUNK + patchBytes, length: CHUNK - patchBytes, kind: 'unchanged' });
      }
      return extentSource(slots * CHUNK, extents);
    };
    const backup = (source: DiskSource) =>
      writeDisk({
        source,
        store: temp.repo.chunks,
        chunkSize: CHUNK,
        base: { size: base.index.diskSize, digests: base.index.digests },
        plan: { chunkSize: CHUNK, hasBase: true, baseSize: base.index.diskSize },
      });
    const acknowledged: number[] = [];
    const quiet = changedSource();
    quiet.acknowledgeStored = async (offset) => {
      acknowledged.push(offset);
    };
    expect((await backup(quiet)).stats.chunksWritten).toBe(2);
    expect(acknowledged).toHaveLength(slots);

    const trimming = { ...changedSource(), wantsAcknowledgement: true, acknowledgeStored: async () => {} };
    expect((await backup(trimming)).stats.chunksWritten).toBeGreaterThanOrEqual(3);
  });

  it('rewrites a chunk whole when more than a quarter of it changed', async () => {
    const baseImage = randomBytes(2 * CHUNK);
    const base = await writeFull(baseImage);
    const change = randomBytes(CHUNK / 2);
    const expected = Buffer.from(baseImage);
    change.copy(expected, CHUNK + 100);
    const { index } = await writeChanges(base.index, [{ offset: CHUNK + 100, data: change }]);
    expect(index.patches?.size ?? 0).toBe(0);
    expect(index.digests.get(1)).not.toBe(base.index.digests.get(1));
    expect((await readAll(index)).equals(expected)).toBe(true);
  });

  it('carries patches forward through a chain of incrementals and rewrites a slot once it has too many', async () => {
    const image = randomBytes(2 * CHUNK);
    let current = (await writeFull(image)).index;
    const slotOneChunks = new Set([current.digests.get(1)]);
    const block = CHUNK / 64; // 1 KiB blocks: up to 16 patches per slot before a rewrite
    for (let round = 0; round < 20; round++) {
      const data = randomBytes(block);
      const offset = CHUNK + ((round * 3) % 64) * block;
      data.copy(image, offset);
      const zeroAt = (round * 5) % 16;
      image.fill(0, zeroAt * (CHUNK / 16), zeroAt * (CHUNK / 16) + CHUNK / 16);
      current = (
        await writeChanges(current, [
          { offset, data },
          { offset: zeroAt * (CHUNK / 16), data: 'zero' },
        ])
      ).index;
      expect((await readAll(current)).equals(image)).toBe(true);
      for (const patches of current.patches?.values() ?? []) expect(patches.length).toBeLessThanOrEqual(16);
      slotOneChunks.add(current.digests.get(1));
    }
    // Slot 1 gained a patch per round; past 16 it was rewritten as a new whole chunk.
    expect(slotOneChunks.size).toBe(2);
    // Slot 0 only ever got zero patches: no patch chunk, and it still reads back exactly.
    expect(current.patches?.get(0)?.every((patch) => patch.digest === undefined) ?? true).toBe(true);
  });

  it('patches a hole of the base with the changed data, and a zero change into a hole stays a hole', async () => {
    const baseImage = Buffer.concat([randomBytes(CHUNK), Buffer.alloc(CHUNK)]);
    const base = await writeFull(baseImage);
    expect(base.index.digests.isHole(1)).toBe(true);
    const change = randomBytes(4096);
    const { index } = await writeChanges(base.index, [{ offset: CHUNK + 4096, data: change }]);
    const expected = Buffer.from(baseImage);
    change.copy(expected, CHUNK + 4096);
    expect(index.digests.isHole(1)).toBe(true);
    expect(index.patches?.get(1)?.length).toBe(1);
    expect((await readAll(index)).equals(expected)).toBe(true);
    const reader = new DiskReader(index, temp.repo.chunks, new ChunkCache(1 << 20), 'test');
    expect(await reader.allocation(0, 2 * CHUNK)).toEqual([{ offset: 0, length: 2 * CHUNK, zero: false }]);
    const zeroed = await writeChanges(base.index, [{ offset: CHUNK, data: 'zero' }]);
    const zeroReader = new DiskReader(zeroed.index, temp.repo.chunks, new ChunkCache(1 << 20), 'test');
    expect(await zeroReader.allocation(CHUNK, CHUNK)).toEqual([{ offset: CHUNK, length: CHUNK, zero: true }]);
  });

  it('handles whole runs of holes and unchanged chunks, also when the disk shrank inside a chunk', async () => {
    const baseSize = 4 * CHUNK;
    const baseImage = randomBytes(baseSize);
    const base = await writeDisk({
      source: extentSource(baseSize, [{ offset: 0, length: baseSize, kind: 'data', data: baseImage }]),
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      plan: { chunkSize: CHUNK, hasBase: false },
    });
    const size = 2 * CHUNK + CHUNK / 2;
    const acknowledged: number[] = [];
    const source = extentSource(size, [{ offset: 0, length: size, kind: 'unchanged' }]);
    source.acknowledgeStored = async (offset) => {
      acknowledged.push(offset);
    };
    const { index, stats } = await writeDisk({
      source,
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      base: { size: baseSize, digests: base.index.digests },
      plan: { chunkSize: CHUNK, hasBase: true, baseSize },
    });
    expect(index.digests.length).toBe(3);
    expect(index.digests.get(0)).toBe(base.index.digests.get(0));
    expect(stats.chunksWritten).toBe(1); // the cut last chunk is new content
    expect(acknowledged).toEqual([0, CHUNK, 2 * CHUNK]);
    expect((await readAll(index)).equals(baseImage.subarray(0, size))).toBe(true);

    const holes = await writeDisk({
      source: extentSource(1000 * CHUNK, [{ offset: 0, length: 1000 * CHUNK, kind: 'zero' }]),
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      plan: { chunkSize: CHUNK, hasBase: false },
    });
    expect(holes.index.digests.length).toBe(1000);
    expect(holes.stats.dataChunks).toBe(0);
  });

  it('reads only the blocks a changed-block bitmap marks, from a real file', async () => {
    const size = 8 * CHUNK;
    const image = randomBytes(size);
    const path = join(temp.dir, 'disk.raw');
    await writeFile(path, image);
    const first = await FileSource.open(path);
    const base = await writeDisk({ source: first, store: temp.repo.chunks, chunkSize: CHUNK, plan: { chunkSize: CHUNK, hasBase: false } });
    await first.close();
    // Change block 5 (of 16 KiB blocks, i.e. inside chunk 1) and mark it.
    const blockSize = 16 * 1024;
    randomBytes(blockSize).copy(image, 5 * blockSize);
    await writeFile(path, image);
    const bits = Buffer.alloc(4);
    bits[0] = 1 << 5;
    const second = await FileSource.open(path);
    const { index, stats } = await writeDisk({
      source: second,
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      base: { size, digests: base.index.digests },
      plan: { chunkSize: CHUNK, hasBase: true, baseSize: size, changedBlocks: bitmapOf(bits, blockSize) },
    });
    await second.close();
    expect(stats.bytesRead).toBe(blockSize);
    expect(stats.chunksWritten).toBe(1);
    expect((await readAll(index)).equals(image)).toBe(true);
  });

  it('fails with a message naming a source that is truncated under it', async () => {
    const path = join(temp.dir, 'shrinking.raw');
    await writeFile(path, randomBytes(6 * CHUNK));
    const source = await FileSource.open(path);
    await truncate(path, 2 * CHUNK + 5);
    await expect(
      writeDisk({ source, store: temp.repo.chunks, chunkSize: CHUNK, plan: { chunkSize: CHUNK, hasBase: false } }),
    ).rejects.toMatchObject({
      code: 'ERR_SOURCE',
      message: expect.stringContaining(`file ${path} is truncated`),
    });
    await source.close();
  });
});
