import { NBD_MAGIC, NBD_SIZE } from './constants.js';
import { assertLength, nbdProtocolError, writeU64be } from './wire.js';

/** Server greeting of the newstyle handshake: NBDMAGIC, IHAVEOPT, u16 handshake flags. */
export function encodeServerGreeting(handshakeFlags: number): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.SERVER_GREETING);
  buf.writeBigUInt64BE(NBD_MAGIC.NBDMAGIC, 0);
  buf.writeBigUInt64BE(NBD_MAGIC.IHAVEOPT, 8);
  buf.writeUInt16BE(handshakeFlags, 16);
  return buf;
}

/** Returns the handshake flags; refuses oldstyle servers and anything that is not NBD. */
export function decodeServerGreeting(buf: Buffer): { handshakeFlags: number } {
  assertLength(buf, NBD_SIZE.SERVER_GREETING, 'server greeting');
  if (buf.readBigUInt64BE(0) !== NBD_MAGIC.NBDMAGIC) {
    throw nbdProtocolError('not an NBD server: bad greeting magic', { magic: buf.subarray(0, 8).toString('hex') });
  }
  const second = buf.readBigUInt64BE(8);
  if (second !== NBD_MAGIC.IHAVEOPT) {
    throw nbdProtocolError('NBD server does not speak the newstyle handshake', { magic: second.toString(16) });
  }
  return { handshakeFlags: buf.readUInt16BE(16) };
}

export function encodeClientFlags(clientFlags: number): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.CLIENT_FLAGS);
  buf.writeUInt32BE(clientFlags >>> 0, 0);
  return buf;
}

export function decodeClientFlags(buf: Buffer): number {
  assertLength(buf, NBD_SIZE.CLIENT_FLAGS, 'client flags');
  return buf.readUInt32BE(0);
}

/** Reply to NBD_OPT_EXPORT_NAME: u64 size, u16 transmission flags, 124 zeros unless NO_ZEROES. */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.EXPORT_NAME_REPLY + (noZeroes ? 0 : NBD_SIZE.EXPORT_NAME_PADDING));
  writeU64be(buf, size, 0);
  buf.writeUInt16BE(transmissionFlags, 8);
  return buf;
}

/** Decodes the first 10 bytes of the EXPORT_NAME reply (the caller skips any padding). */
export function decodeExportNameReply(buf: Buffer): { size: number; transmissionFlags: number } {
  assertLength(buf, NBD_SIZE.EXPORT_NAME_REPLY, 'export name reply');
  const size = buf.readBigUInt64BE(0);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw nbdProtocolError('NBD export size exceeds 2^53', { size: size.toString() });
  return { size: Number(size), transmissionFlags: buf.readUInt16BE(8) };
}
