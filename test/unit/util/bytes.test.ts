import { describe, expect, it } from 'vitest';
import { formatBytes, isAllZero, parseSize, u64ToNumber } from '../../../src/util/bytes.js';

describe('parseSize', () => {
  it('reads binary and decimal units', () => {
    expect(parseSize('64KiB')).toBe(65536);
    expect(parseSize('1M')).toBe(1048576);
    expect(parseSize('1MB')).toBe(1_000_000);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('1.5GiB')).toBe(1.5 * 2 ** 30);
  });
  it('rejects garbage with a clear error', () => {
    expect(() => parseSize('12 parsecs')).toThrow(/invalid size/);
    expect(() => parseSize('0.3')).toThrow(/whole number/);
  });
});

describe('u64ToNumber', () => {
  it('refuses values above 2^53', () => {
    expect(u64ToNumber(2n ** 53n - 1n)).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => u64ToNumber(2n ** 53n)).toThrow(/out of the supported range/);
  });
});

describe('isAllZero', () => {
  it('detects a single non-zero byte anywhere, also past the first MiB', () => {
    const buf = Buffer.alloc(3 * 1024 * 1024);
    expect(isAllZero(buf)).toBe(true);
    buf[buf.length - 1] = 1;
    expect(isAllZero(buf)).toBe(false);
  });
  it('formats sizes', () => {
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(12)).toBe('12 B');
  });
});
