// Decoding of compressed extents: frames from the real zstd tool and zlib streams from zlib itself,
// zero-padded to a sector as btrfs stores them, decode to ram_bytes; anything that would decode to
// more, is truncated, or is noise is a DecodeError (which the reader turns into ERR_FORMAT_INVALID
// naming the extent), whatever the codec.
import { execFileSync } from 'node:child_process';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeExtent, DecodeError, zstdFrameLength } from '../../../../src/guest/fs/btrfs/compression.js';
import { FILE_EXTENT } from '../../../../src/guest/fs/btrfs/layout.js';
import { compressibleText } from '../../../helpers/btrfs-images.js';

const SECTOR = 4096;
const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc(SECTOR - (b.length % SECTOR))]);
const plain = compressibleText(128 * 1024, 1);
const zstdFrame = execFileSync('zstd', ['-3', '-c', '-q'], { input: plain });
const zlibStream = deflateSync(plain);

describe('btrfs extent decoding', () => {
  it('decodes a zero-padded zstd frame (the tool writes the frame; the padding is btrfs)', async () => {
    expect(zstdFrameLength(pad(zstdFrame))).toBe(zstdFrame.length);
    expect((await decodeExtent(FILE_EXTENT.COMPRESS_ZSTD, pad(zstdFrame), plain.length, SECTOR)).equals(plain)).toBe(true);
  });

  it('decodes a zero-padded zlib stream, and zero-fills a short one to ram_bytes', async () => {
    expect((await decodeExtent(FILE_EXTENT.COMPRESS_ZLIB, pad(zlibStream), plain.length, SECTOR)).equals(plain)).toBe(true);
    const short = await decodeExtent(FILE_EXTENT.COMPRESS_ZLIB, pad(deflateSync(plain.subarray(0, 1000))), 8192, SECTOR);
    expect(short.subarray(0, 1000).equals(plain.subarray(0, 1000))).toBe(true);
    expect(short.subarray(1000).every((b) => b === 0)).toBe(true);
  });

  it('refuses a frame whose blocks could regenerate far more than an extent, before decoding it', () => {
    // A frame without a content size: 64 RLE blocks of 128 KiB each (8 MiB from 4 bytes per block).
    const header = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]);
    const rle = (last: boolean): Buffer => {
      const value = ((128 * 1024) << 3) | (1 << 1) | (last ? 1 : 0);
      return Buffer.from([value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, 0x41]);
    };
    const bomb = Buffer.concat([header, ...Array.from({ length: 64 }, (_, i) => rle(i === 63))]);
    expect(() => zstdFrameLength(bomb)).toThrow(/may regenerate more than/);
  });

  it('refuses streams that decode to more than ram_bytes, truncated streams and noise', async () => {
    for (const [type, stream] of [
      [FILE_EXTENT.COMPRESS_ZSTD, zstdFrame],
      [FILE_EXTENT.COMPRESS_ZLIB, zlibStream],
    ] as const) {
      await expect(decodeExtent(type, pad(stream), plain.length - 1, SECTOR)).rejects.toThrow(DecodeError);
      await expect(decodeExtent(type, stream.subarray(0, stream.length >> 1), plain.length, SECTOR)).rejects.toThrow(DecodeError);
    }
    for (let seed = 1; seed <= 300; seed++) {
      const noise = Buffer.from(Array.from({ length: 8 + ((seed * 7919) % 3000) }, (_, i) => (seed * 31 + i * i * 17) & 0xff));
      for (const type of [FILE_EXTENT.COMPRESS_ZLIB, FILE_EXTENT.COMPRESS_LZO, FILE_EXTENT.COMPRESS_ZSTD]) {
        const out = await decodeExtent(type, noise, 16384, SECTOR).catch((err: unknown) => {
          if (err instanceof DecodeError) return undefined;
          throw err;
        });
        if (out) expect(out.length).toBe(16384);
      }
    }
  });
});
