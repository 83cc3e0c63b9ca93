import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile, readFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../src/store/chunk-format.js';
import { FsChunkStore } from '../../../src/store/fs-chunk-store.js';

describe('FsChunkStore.readChunkInto', () => {
  let root: string;
  let store: FsChunkStore;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'cairn-read-into-'));
    store = new FsChunkStore(root, { readConcurrency: 2 });
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  it('reads plain and zstd chunks into the given buffer, verified', async () => {
    const plain = randomBytes(64 * 1024);
    const text = Buffer.from('a log line that compresses\n'.repeat(3000));
    for (const data of [plain, text]) {
      const digest = sha256Hex(data);
      await store.writeChunk(digest, data);
      const target = Buffer.alloc(128 * 1024, 0xee);
      const got = await store.readChunkInto(digest, () => target);
      expect(got.buffer).toBe(target.buffer);
      expect(got.equals(data)).toBe(true);
      expect((await store.readChunk(digest)).equals(data)).toBe(true);
    }
  });

  it('returns a chunk larger than the buffer in a buffer of its own', async () => {
    const data = randomBytes(32 * 1024);
    const digest = sha256Hex(data);
    await store.writeChunk(digest, data);
    const target = Buffer.alloc(4096);
    const got = await store.readChunkInto(digest, () => target);
    expect(got.buffer).not.toBe(target.buffer);
    expect(got.equals(data)).toBe(true);
  });

  it('names damaged and missing chunks', async () => {
    const data = Buffer.from('x'.repeat(50_000));
    const digest = sha256Hex(data);
    await store.writeChunk(digest, data);
    const path = store.chunkPath(digest);
    const file = await readFile(path);
    file[file.length - 2]! ^= 1;
    await chmod(path, 0o644);
    await writeFile(path, file);
    await expect(store.readChunkInto(digest, () => Buffer.alloc(65536))).rejects.toMatchObject({ code: 'ERR_CHUNK_CORRUPT' });
    await expect(store.readChunkInto('0'.repeat(64), () => Buffer.alloc(65536))).rejects.toMatchObject({ code: 'ERR_CHUNK_MISSING' });
  });
});
