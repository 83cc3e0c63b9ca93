import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CHUNK_FILE, decodeChunk, encodeChunk, sha256Hex } from '../../../src/store/chunk-format.js';

describe('chunk file format', () => {
  it('compresses text and round-trips it', async () => {
    const plain = Buffer.from('backup '.repeat(100_000));
    const file = Buffer.concat(await encodeChunk(plain));
    expect(file[5]).toBe(CHUNK_FILE.CODEC_ZSTD);
    expect(file.length).toBeLessThan(plain.length / 10);
    expect((await decodeChunk(file, sha256Hex(plain))).equals(plain)).toBe(true);
  });

  it('stores incompressible data plain', async () => {
    const plain = randomBytes(256 * 1024);
    const file = Buffer.concat(await encodeChunk(plain));
    expect(file[5]).toBe(CHUNK_FILE.CODEC_PLAIN);
    expect((await decodeChunk(file, sha256Hex(plain))).equals(plain)).toBe(true);
  });

  it('reports a flipped byte as ERR_CHUNK_CORRUPT naming the chunk', async () => {
    for (const plain of [randomBytes(4096), Buffer.from('x'.repeat(65536))]) {
      const digest = sha256Hex(plain);
      const file = Buffer.concat(await encodeChunk(plain));
      file[file.length - 3]! ^= 0x40;
      await expect(decodeChunk(file, digest)).rejects.toMatchObject({ code: 'ERR_CHUNK_CORRUPT', context: { chunkId: digest } });
    }
  });

  it('rejects a bad header and a truncated file', async () => {
    const plain = randomBytes(1000);
    const file = Buffer.concat(await encodeChunk(plain));
    await expect(decodeChunk(file.subarray(0, 8), sha256Hex(plain))).rejects.toMatchObject({ code: 'ERR_CHUNK_CORRUPT' });
    const badMagic = Buffer.from(file);
    badMagic[0] = 0;
    await expect(decodeChunk(badMagic, sha256Hex(plain))).rejects.toThrow(/bad header/);
  });
});
