import { CairnError } from '../core/errors.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: KiB,
  KB: 1000,
  KIB: KiB,
  M: MiB,
  MB: 1000 ** 2,
  MIB: MiB,
  G: GiB,
  GB: 1000 ** 3,
  GIB: GiB,
  T: 1024 * GiB,
  TB: 1000 ** 4,
  TIB: 1024 * GiB,
};

/** Parses `64KiB`, `1M`, `4096`, `1.5GiB` into bytes (K/M/G alone are binary, as qemu-img reads them). */
export function parseSize(text: string, what = 'size'): number {
  const match = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  const unit = match ? UNITS[(match[2] ?? '').toUpperCase()] : undefined;
  if (!match || unit === undefined) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid ${what} '${text}': expected a number with an optional unit (KiB, MiB, GiB…)`);
  }
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `invalid ${what} '${text}': not a whole number of bytes`);
  }
  return bytes;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${units[unit]}`;
}

/** The one checked conversion of a 64-bit value to a number: refuses anything above 2^53. */
export function u64ToNumber(value: bigint, what = 'value'): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CairnError('ERR_FORMAT_INVALID', `${what} ${value} is out of the supported range (0 to 2^53)`, { value: value.toString() });
  }
  return Number(value);
}

export function readU64be(buf: Buffer, offset: number, what?: string): number {
  return u64ToNumber(buf.readBigUInt64BE(offset), what);
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 30;
}

const ZERO_PAGE = Buffer.alloc(MiB);

/** True when every byte is zero; memcmp against a shared zero page is much faster than a JS loop. */
export function isAllZero(buf: Buffer): boolean {
  for (let pos = 0; pos < buf.length; pos += ZERO_PAGE.length) {
    const end = Math.min(buf.length, pos + ZERO_PAGE.length);
    if (!buf.subarray(pos, end).equals(ZERO_PAGE.subarray(0, end - pos))) return false;
  }
  return true;
}

/**
 * A copy of `source[start, end)` in memory of its own, so that a small piece of a big cached block
 * (a name, an inode's block map) does not pin the block. Faster than Buffer.from(subarray) for the
 * tiny pieces guest filesystem readers copy by the hundred thousand.
 */
export function copyBytes(source: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  source.copy(out, 0, start, end);
  return out;
}
