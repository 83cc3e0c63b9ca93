import { CairnError } from '../../core/errors.js';
import { NBD_SIZE } from './constants.js';

/** Every malformed message is reported with this one code; context names what was wrong. */
export function nbdProtocolError(message: string, context: Record<string, unknown> = {}): CairnError {
  return new CairnError('ERR_NBD_PROTOCOL', message, context);
}

/** Reads a big-endian u64 that must fit a JS number (offsets, sizes); larger values are refused. */
export function readU64beSafe(buf: Buffer, offset: number, field: string): number {
  const value = buf.readBigUInt64BE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw nbdProtocolError(`NBD ${field} ${value} exceeds 2^53`, { field, value: value.toString() });
  }
  return Number(value);
}

/**
 * Reads a big-endian u64 offset from an untrusted peer without refusing it: values beyond 2^53 are
 * past every disk anyway, so they saturate to a number the range checks reject.
 */
export function readU64beSaturating(buf: Buffer, offset: number): number {
  const value = buf.readBigUInt64BE(offset);
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER + 1 : Number(value);
}

export function writeU64be(buf: Buffer, value: number | bigint, offset: number): void {
  if (typeof value === 'number' && (!Number.isSafeInteger(value) || value < 0)) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `NBD u64 value ${value} is not a safe non-negative integer`, { value });
  }
  buf.writeBigUInt64BE(BigInt(value), offset);
}

/** UTF-8 bytes of a protocol string; the spec caps strings at 4096 bytes. */
export function encodeNbdString(text: string, field: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > NBD_SIZE.MAX_STRING) {
    throw new CairnError('ERR_INVALID_ARGUMENT', `NBD ${field} is longer than ${NBD_SIZE.MAX_STRING} bytes`, {
      field,
      length: bytes.length,
    });
  }
  return bytes;
}

/**
 * UTF-8 bytes of a message we send while reporting an error (where failing is no option): clipped
 * to `maxBytes` (at most the spec's 4096) on a character boundary.
 */
export function clippedNbdString(text: string, maxBytes: number = NBD_SIZE.MAX_STRING): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const limit = Math.min(maxBytes, NBD_SIZE.MAX_STRING);
  if (bytes.length <= limit) return bytes;
  let end = limit;
  // A continuation byte (10xxxxxx) at the cut means a character straddles it: cut before its lead byte.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** Decodes a protocol string, refusing over-long ones and NUL bytes (the spec forbids both). */
export function decodeNbdString(bytes: Buffer, field: string): string {
  if (bytes.length > NBD_SIZE.MAX_STRING) {
    throw nbdProtocolError(`NBD ${field} is longer than ${NBD_SIZE.MAX_STRING} bytes`, { field, length: bytes.length });
  }
  if (bytes.includes(0)) throw nbdProtocolError(`NBD ${field} contains a NUL byte`, { field });
  return bytes.toString('utf8');
}

export function assertLength(buf: Buffer, expected: number, what: string): void {
  if (buf.length !== expected) {
    throw nbdProtocolError(`NBD ${what}: expected ${expected} bytes, got ${buf.length}`, { what, length: buf.length });
  }
}

export function assertMinLength(buf: Buffer, minimum: number, what: string): void {
  if (buf.length < minimum) {
    throw nbdProtocolError(`NBD ${what}: expected at least ${minimum} bytes, got ${buf.length}`, {
      what,
      length: buf.length,
    });
  }
}
