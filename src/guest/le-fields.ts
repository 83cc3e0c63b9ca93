import { CairnError } from '../core/errors.js';

/** Reads a little-endian u64 and refuses values that do not fit a JS number exactly. */
export function u64leSafe(bytes: Buffer, offset: number, field: string): number {
  const value = bytes.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CairnError('ERR_FORMAT_INVALID', `${field} is out of range (${value})`, { field, value: value.toString() });
  }
  return Number(value);
}

/** Formats a 16-byte GUID as GPT stores it: the first three fields little-endian, the rest as bytes. */
export function guidFromBytesMixedEndian(bytes: Buffer, offset: number): string {
  const hex = (start: number, end: number, reverse: boolean): string => {
    const part = Buffer.from(bytes.subarray(offset + start, offset + end));
    if (reverse) part.reverse();
    return part.toString('hex');
  };
  return [hex(0, 4, true), hex(4, 6, true), hex(6, 8, true), hex(8, 10, false), hex(10, 16, false)].join('-').toUpperCase();
}
