import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CHUNK_FILE, decodeChunk, sha256Hex } from '../../../src/store/chunk-format.js';
import { zstdDecodedBound } from '../../../src/util/zstd-frame.js';

/** A chunk file around a zstd payload made by the zstd program (a real encoder, not Cairn's). */
function chunkFile(payload: Buffer, plainLength: number): Buffer {
  const header = Buffer.alloc(CHUNK_FILE.HEADER_SIZE);
  CHUNK_FILE.MAGIC.copy(header, 0);
  header.writeUInt8(CHUNK_FILE.VERSION, 4);
  header.writeUInt8(CHUNK_FILE.CODEC_ZSTD, 5);
  header.writeUInt32BE(plainLength, 8);
  return Buffer.concat([header, payload]);
}

const zstd = (input: Buffer, ...args: string[]) => execFileSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 1 << 30 });

describe('zstd frame bound', () => {
  it('accepts what real encoders produce for a chunk, at fast and at splitting levels', async () => {
    const text = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `line ${i} of a guest log ${i % 97}\n`).join('')).subarray(
      0,
      1 << 20,
    );
    for (const level of ['-1', '-3', '-16', '-19']) {
      const file = chunkFile(zstd(text, level), text.length);
      expect((await decodeChunk(file, sha256Hex(text))).equals(text), level).toBe(true);
    }
  });

  it('refuses a frame that decodes far past its chunk before decoding it (a zstd bomb)', async () => {
    const zeros = Buffer.alloc(256 * 1024 * 1024);
    const payload = zstd(zeros, '-3');
    expect(payload.length).toBeLessThan(64 * 1024);
    const bound = zstdDecodedBound(payload);
    expect('bound' in bound && bound.bound).toBeGreaterThanOrEqual(zeros.length);
    await expect(decodeChunk(chunkFile(payload, 65536), sha256Hex(zeros.subarray(0, 65536)))).rejects.toMatchObject({
      code: 'ERR_CHUNK_CORRUPT',
      message: expect.stringMatching(/could decode to \d+ bytes/),
    });
  });

  it('refuses a second frame after the first, trailing bytes and a truncated block', async () => {
    const plain = Buffer.from('abc'.repeat(30_000));
    const one = zstd(plain, '-3');
    const digest = sha256Hex(plain);
    for (const [what, payload] of [
      ['two frames', Buffer.concat([one, zstd(Buffer.alloc(64 << 20), '-3')])],
      ['trailing bytes', Buffer.concat([one, Buffer.from([1, 2, 3])])],
      ['truncated', one.subarray(0, one.length - 5)],
    ] as const) {
      await expect(decodeChunk(chunkFile(payload, plain.length), digest), what).rejects.toMatchObject({ code: 'ERR_CHUNK_CORRUPT' });
    }
    expect((await decodeChunk(chunkFile(one, plain.length), digest)).equals(plain)).toBe(true);
  });
});
