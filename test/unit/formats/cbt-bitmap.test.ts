import { describe, expect, it } from 'vitest';
import { assertBitmapCovers, assertBitmapFits, parseChangedBlockBitmap } from '../../../src/formats/cbt-bitmap.js';

describe('changed-block bitmap', () => {
  it('reads base64 text, bit n in byte n/8 from the least significant bit', () => {
    const raw = Buffer.from([0b0000_0101, 0b1000_0000]);
    const bitmap = parseChangedBlockBitmap(Buffer.from(raw.toString('base64') + '\n'));
    expect(bitmap.blockSize).toBe(65536);
    expect(bitmap.blockCount).toBe(16);
    expect([0, 1, 2, 3, 15].map((i) => bitmap.isChanged(i))).toEqual([true, false, true, false, true]);
  });

  it('reads raw bytes', () => {
    const bitmap = parseChangedBlockBitmap(Buffer.from([0x00, 0x02, 0xff]), 4096);
    expect(bitmap.isChanged(9)).toBe(true);
    expect(bitmap.isChanged(8)).toBe(false);
    expect(bitmap.isChanged(20)).toBe(true);
  });

  it('refuses a bitmap too short for the disk', () => {
    const bitmap = parseChangedBlockBitmap(Buffer.from([0x01]), 65536);
    expect(() => assertBitmapCovers(bitmap, 8 * 65536, 'sda')).not.toThrow();
    expect(() => assertBitmapCovers(bitmap, 9 * 65536, 'sda')).toThrow(/covers 8 blocks/);
  });

  it('refuses text that is not valid base64 instead of reading it as raw bytes', () => {
    for (const text of ['this is not base64!\n', 'AAAA=AAA', 'AAAAA', 'AA==AA==', '====']) {
      expect(() => parseChangedBlockBitmap(Buffer.from(text))).toThrow(/not valid base64/);
    }
    expect(parseChangedBlockBitmap(Buffer.from('AAE=\n')).blockCount).toBe(16);
  });

  it('refuses a bitmap longer than the disk needs, beyond the 64-bit word blktap rounds up to', () => {
    const bitmap = (bytes: number) => parseChangedBlockBitmap(Buffer.alloc(bytes, 0x00), 65536);
    // 248 blocks need 31 bytes; one word of 8 bytes more is still that disk's bitmap.
    expect(() => assertBitmapFits(bitmap(31), 248 * 65536, 'sda')).not.toThrow();
    expect(() => assertBitmapFits(bitmap(32), 248 * 65536, 'sda')).not.toThrow();
    expect(() => assertBitmapFits(bitmap(33), 248 * 65536, 'sda')).toThrow(/covers 264 blocks of 65536 bytes, more than the disk's 248/);
    expect(() => assertBitmapFits(bitmap(64), 248 * 65536, 'sda')).toThrow(/more than the disk/);
  });
});
