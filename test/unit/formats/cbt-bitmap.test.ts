import { describe, expect, it } from 'vitest';
import { assertBitmapCovers, parseChangedBlockBitmap } from '../../../src/formats/cbt-bitmap.js';

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
});
