import { randomBytes } from 'node:crypto';
import { rename, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../src/store/chunk-format.js';
import { collectGarbage } from '../../../src/store/gc.js';
import { DigestList } from '../../../src/store/disk-index.js';
import { useTempRepository } from '../../helpers/cairn-cli.js';

const CHUNK = 64 * 1024;

describe('garbage collection', () => {
  const temp = useTempRepository(CHUNK);

  async function storeChunk(ageMs: number): Promise<string> {
    const plain = randomBytes(CHUNK);
    const digest = sha256Hex(plain);
    await temp.repo.chunks.writeChunk(digest, plain);
    const then = new Date(Date.now() - ageMs);
    await utimes(temp.repo.chunks.chunkPath(digest), then, then);
    return digest;
  }

  async function publish(vm: string, digests: string[]): Promise<void> {
    const list = new DigestList();
    digests.forEach((d, i) => list.set(i, d));
    const draft = await temp.repo.createDraft(vm);
    await draft.addDisk(
      'sda',
      { chunkSize: CHUNK, diskSize: digests.length * CHUNK, digests: list },
      { bytesRead: 0, bytesStored: 0, dataChunks: digests.length },
    );
    await draft.publish({ id: '20260101T000000Z', createdMs: Date.now(), source: 'test', chunkSize: CHUNK });
  }

  const exists = (digest: string) =>
    stat(temp.repo.chunks.chunkPath(digest)).then(
      () => true,
      () => false,
    );

  it('deletes old unreferenced chunks and keeps referenced and recent ones', async () => {
    const referenced = await storeChunk(3_600_000);
    const orphan = await storeChunk(3_600_000);
    const recent = await storeChunk(0);
    await publish('vm', [referenced]);
    const result = await collectGarbage(temp.repo, { graceMs: 60_000 });
    expect(result).toMatchObject({ referencedChunks: 1, removedChunks: 1, keptRecentChunks: 1 });
    expect(await exists(referenced)).toBe(true);
    expect(await exists(orphan)).toBe(false);
    expect(await exists(recent)).toBe(true);
  });

  it('keeps an old chunk that a backup touches between mark and sweep', async () => {
    const touched = await storeChunk(3_600_000);
    const result = await collectGarbage(temp.repo, {
      graceMs: 60_000,
      // A backup starting now reuses the chunk: it touches it, which must save it.
      afterMark: async () => {
        expect(await temp.repo.chunks.touchChunk(touched)).toBe(true);
      },
    });
    expect(result.removedChunks).toBe(0);
    expect(await exists(touched)).toBe(true);
  });

  it('keeps chunks newer than the start of a backup that is running', async () => {
    const lock = await temp.repo.lockVmForBackup('busy');
    try {
      const written = await storeChunk(0);
      const result = await collectGarbage(temp.repo, { graceMs: 0 });
      expect(result.removedChunks).toBe(0);
      expect(await exists(written)).toBe(true);
    } finally {
      await lock.release();
    }
  });

  it("refuses to sweep while a running backup's base point has been removed", async () => {
    const digest = await storeChunk(3_600_000);
    await publish('vm', [digest]);
    const lock = await temp.repo.lockVmForBackup('vm');
    try {
      await lock.update({ base: { vm: 'vm', point: '20260101T000000Z' } });
      await temp.repo.removePoint('vm', '20260101T000000Z');
      await expect(collectGarbage(temp.repo, { graceMs: 0 })).rejects.toMatchObject({
        code: 'ERR_LOCKED',
        message: expect.stringContaining('as its base'),
      });
      expect(await exists(digest)).toBe(true);
    } finally {
      await lock.release();
    }
    expect((await collectGarbage(temp.repo, { graceMs: 0 })).removedChunks).toBe(1);
  });

  it('puts back a chunk an interrupted GC had set aside', async () => {
    const digest = await storeChunk(3_600_000);
    await publish('vm', [digest]);
    const path = temp.repo.chunks.chunkPath(digest);
    await rename(path, join(path, '..', `.gc-${digest}`));
    await collectGarbage(temp.repo, { graceMs: 60_000 });
    expect(await exists(digest)).toBe(true);
    expect((await temp.repo.chunks.readChunk(digest)).length).toBe(CHUNK);
  });

  it('dry run deletes nothing', async () => {
    const orphan = await storeChunk(3_600_000);
    const result = await collectGarbage(temp.repo, { graceMs: 0, dryRun: true });
    expect(result.removedChunks).toBe(1);
    expect(await exists(orphan)).toBe(true);
  });
});
