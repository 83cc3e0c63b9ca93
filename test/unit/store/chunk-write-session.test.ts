import { randomBytes } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../src/store/chunk-format.js';
import { useTempRepository } from '../../helpers/cairn-cli.js';

const CHUNK = 64 * 1024;

describe('a backup taking back the chunks it created', () => {
  const temp = useTempRepository(CHUNK);
  const held = async (vm: string) => temp.repo.lockVmForBackup(vm);

  it('removes what it created and nobody touched, keeps what another writer reused', async () => {
    const lock = await held('a');
    const session = temp.repo.startChunkWrites(lock);
    const lonely = randomBytes(CHUNK);
    const reused = randomBytes(CHUNK);
    await session.writeChunk(sha256Hex(lonely), lonely);
    await session.writeChunk(sha256Hex(reused), reused);
    // Another backup finds `reused` there and touches it, as the point writer does.
    const otherLock = await held('b');
    const other = temp.repo.startChunkWrites(otherLock);
    expect(await other.touchChunk(sha256Hex(reused))).toBe(true);
    expect(await session.discard()).toBe(1);
    await expect(lstat(temp.repo.chunks.chunkPath(sha256Hex(lonely)))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await temp.repo.chunks.readChunk(sha256Hex(reused))).equals(reused)).toBe(true);
    await lock.release();
    await otherLock.release();
  });

  it('a chunk two writers store at once belongs to the first; the second only reuses it', async () => {
    const first = temp.repo.startChunkWrites(await held('a'));
    const second = temp.repo.startChunkWrites(await held('b'));
    const plain = randomBytes(CHUNK);
    const digest = sha256Hex(plain);
    await first.writeChunk(digest, plain);
    await second.writeChunk(digest, plain);
    // The second writer's attempt touched the first one's file: neither takes it back.
    expect(await second.discard()).toBe(0);
    expect(await first.discard()).toBe(0);
    expect((await temp.repo.chunks.readChunk(digest)).equals(plain)).toBe(true);
  });

  it('a published backup keeps everything; its own reuse does not erase its mark', async () => {
    const session = temp.repo.startChunkWrites(await held('a'));
    const plain = randomBytes(CHUNK);
    await session.writeChunk(sha256Hex(plain), plain);
    expect(await session.touchChunk(sha256Hex(plain))).toBe(true);
    const before = await lstat(temp.repo.chunks.chunkPath(sha256Hex(plain)), { bigint: true });
    expect(before.mtimeNs % 1_000_000n).toBeGreaterThan(400_000n);
    session.keep();
    expect(await session.discard()).toBe(0);
    expect((await temp.repo.chunks.readChunk(sha256Hex(plain))).equals(plain)).toBe(true);
  });
});
