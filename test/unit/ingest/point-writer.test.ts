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
import { ByteCache } from '../../../src/util/cache.js';
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
    new DiskReader(index, temp.repo.chunks, new ByteCache(1 << 20), 'test').read(0, index.diskSize);

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

  it('takes unchanged ranges from the base and overlays partly changed chunks', async () => {
    const size = 3 * CHUNK + 1000; // a short last chunk
    const baseImage = randomBytes(size);
    const base = await writeDisk({
      source: extentSource(size, [{ offset: 0, length: size, kind: 'data', data: baseImage }]),
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      plan: { chunkSize: CHUNK, hasBase: false },
    });
    const patch = randomBytes(100);
    const expected = Buffer.from(baseImage);
    patch.copy(expected, CHUNK + 10);
    const extents: Extent[] = [
      { offset: 0, length: CHUNK + 10, kind: 'unchanged' },
      { offset: CHUNK + 10, length: 100, kind: 'data', data: patch },
      { offset: CHUNK + 110, length: size - CHUNK - 110, kind: 'unchanged' },
    ];
    const { index, stats } = await writeDisk({
      source: extentSource(size, extents),
      store: temp.repo.chunks,
      chunkSize: CHUNK,
      base: { size, digests: base.index.digests },
      plan: { chunkSize: CHUNK, hasBase: true, baseSize: size },
    });
    expect(stats.chunksWritten).toBe(1);
    expect(index.digests.get(0)).toBe(base.index.digests.get(0));
    expect(index.digests.get(1)).not.toBe(base.index.digests.get(1));
    expect(index.digests.get(3)).toBe(base.index.digests.get(3));
    expect((await readAll(index)).equals(expected)).toBe(true);
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
