import { NBD_MAGIC, NBD_SIZE } from './constants.js';
import { assertLength, nbdProtocolError, readU64beSaturating, writeU64be } from './wire.js';

/** A transmission-phase request (compact header): magic, u16 flags, u16 type, u64 cookie, u64 offset, u32 length. */
export interface NbdRequest {
  flags: number;
  type: number;
  /** Opaque to the server, echoed in every reply chunk. */
  cookie: bigint;
  /** Offsets beyond 2^53 decode as 2^53 (past the end of any disk), so range checks reject them. */
  offset: number;
  length: number;
}

export function encodeRequest(request: NbdRequest): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.REQUEST);
  buf.writeUInt32BE(NBD_MAGIC.NBD_REQUEST_MAGIC, 0);
  buf.writeUInt16BE(request.flags, 4);
  buf.writeUInt16BE(request.type, 6);
  buf.writeBigUInt64BE(request.cookie, 8);
  writeU64be(buf, request.offset, 16);
  buf.writeUInt32BE(request.length >>> 0, 24);
  return buf;
}

/** A wrong magic is unrecoverable: the stream is out of sync and the connection must be dropped. */
export function decodeRequest(buf: Buffer): NbdRequest {
  assertLength(buf, NBD_SIZE.REQUEST, 'request');
  const magic = buf.readUInt32BE(0);
  if (magic !== NBD_MAGIC.NBD_REQUEST_MAGIC) {
    throw nbdProtocolError('bad NBD request magic', { magic: magic.toString(16) });
  }
  return {
    flags: buf.readUInt16BE(4),
    type: buf.readUInt16BE(6),
    cookie: buf.readBigUInt64BE(8),
    offset: readU64beSaturating(buf, 16),
    length: buf.readUInt32BE(24),
  };
}
