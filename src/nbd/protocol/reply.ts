import { NBD_MAGIC, NBD_REPLY_TYPE, NBD_SIZE } from './constants.js';
import { assertLength, assertMinLength, clippedNbdString, nbdProtocolError, readU64beSafe, writeU64be } from './wire.js';

/** Simple reply: magic, u32 error, u64 cookie (READ data follows when error is 0). */
export interface NbdSimpleReply {
  error: number;
  cookie: bigint;
}

export function encodeSimpleReply(cookie: bigint, error: number): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.SIMPLE_REPLY);
  buf.writeUInt32BE(NBD_MAGIC.NBD_SIMPLE_REPLY_MAGIC, 0);
  buf.writeUInt32BE(error >>> 0, 4);
  buf.writeBigUInt64BE(cookie, 8);
  return buf;
}

/** Reply magic of a header (first 4 bytes), telling simple (16-byte) from structured (20-byte) replies. */
export function decodeReplyMagic(buf: Buffer): number {
  assertMinLength(buf, 4, 'reply magic');
  const magic = buf.readUInt32BE(0);
  if (magic !== NBD_MAGIC.NBD_SIMPLE_REPLY_MAGIC && magic !== NBD_MAGIC.NBD_STRUCTURED_REPLY_MAGIC) {
    throw nbdProtocolError('bad NBD reply magic', { magic: magic.toString(16) });
  }
  return magic;
}

export function decodeSimpleReply(buf: Buffer): NbdSimpleReply {
  assertLength(buf, NBD_SIZE.SIMPLE_REPLY, 'simple reply');
  if (buf.readUInt32BE(0) !== NBD_MAGIC.NBD_SIMPLE_REPLY_MAGIC) throw nbdProtocolError('bad NBD simple reply magic');
  return { error: buf.readUInt32BE(4), cookie: buf.readBigUInt64BE(8) };
}

/** Structured reply chunk header: magic, u16 flags, u16 type, u64 cookie, u32 payload length. */
export interface NbdStructuredReplyHeader {
  flags: number;
  type: number;
  cookie: bigint;
  length: number;
}

export function encodeStructuredReplyHeader(header: NbdStructuredReplyHeader): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.STRUCTURED_REPLY_HEADER);
  writeStructuredHeader(buf, header);
  return buf;
}

function writeStructuredHeader(buf: Buffer, header: NbdStructuredReplyHeader): void {
  buf.writeUInt32BE(NBD_MAGIC.NBD_STRUCTURED_REPLY_MAGIC, 0);
  buf.writeUInt16BE(header.flags, 4);
  buf.writeUInt16BE(header.type, 6);
  buf.writeBigUInt64BE(header.cookie, 8);
  buf.writeUInt32BE(header.length >>> 0, 16);
}

export function decodeStructuredReplyHeader(buf: Buffer): NbdStructuredReplyHeader {
  assertLength(buf, NBD_SIZE.STRUCTURED_REPLY_HEADER, 'structured reply header');
  if (buf.readUInt32BE(0) !== NBD_MAGIC.NBD_STRUCTURED_REPLY_MAGIC) {
    throw nbdProtocolError('bad NBD structured reply magic', { magic: buf.readUInt32BE(0).toString(16) });
  }
  return { flags: buf.readUInt16BE(4), type: buf.readUInt16BE(6), cookie: buf.readBigUInt64BE(8), length: buf.readUInt32BE(16) };
}

/** A whole NBD_REPLY_TYPE_NONE chunk (used with DONE to end a reply). */
export function encodeNoneChunk(cookie: bigint, flags: number): Buffer {
  return encodeStructuredReplyHeader({ flags, type: NBD_REPLY_TYPE.NBD_REPLY_TYPE_NONE, cookie, length: 0 });
}

/** Header plus u64 offset of an OFFSET_DATA chunk; the caller writes the `dataLength` bytes after it (no copy). */
export function encodeOffsetDataHeader(cookie: bigint, flags: number, offset: number, dataLength: number): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.STRUCTURED_REPLY_HEADER + 8);
  writeStructuredHeader(buf, { flags, type: NBD_REPLY_TYPE.NBD_REPLY_TYPE_OFFSET_DATA, cookie, length: 8 + dataLength });
  writeU64be(buf, offset, NBD_SIZE.STRUCTURED_REPLY_HEADER);
  return buf;
}

/** A whole OFFSET_HOLE chunk: u64 offset, u32 hole size (nonzero). */
export function encodeOffsetHoleChunk(cookie: bigint, flags: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.STRUCTURED_REPLY_HEADER + 12);
  writeStructuredHeader(buf, { flags, type: NBD_REPLY_TYPE.NBD_REPLY_TYPE_OFFSET_HOLE, cookie, length: 12 });
  writeU64be(buf, offset, NBD_SIZE.STRUCTURED_REPLY_HEADER);
  buf.writeUInt32BE(length, NBD_SIZE.STRUCTURED_REPLY_HEADER + 8);
  return buf;
}

/** One descriptor of a BLOCK_STATUS chunk: length (nonzero) and the context's flags. */
export interface NbdBlockDescriptor {
  length: number;
  flags: number;
}

/** A whole BLOCK_STATUS chunk: u32 context id, then (u32 length, u32 flags) per descriptor. */
export function encodeBlockStatusChunk(
  cookie: bigint,
  flags: number,
  contextId: number,
  descriptors: readonly NbdBlockDescriptor[],
): Buffer {
  const payload = 4 + 8 * descriptors.length;
  const buf = Buffer.alloc(NBD_SIZE.STRUCTURED_REPLY_HEADER + payload);
  writeStructuredHeader(buf, { flags, type: NBD_REPLY_TYPE.NBD_REPLY_TYPE_BLOCK_STATUS, cookie, length: payload });
  let at = NBD_SIZE.STRUCTURED_REPLY_HEADER;
  buf.writeUInt32BE(contextId >>> 0, at);
  at += 4;
  for (const d of descriptors) {
    buf.writeUInt32BE(d.length >>> 0, at);
    buf.writeUInt32BE(d.flags >>> 0, at + 4);
    at += 8;
  }
  return buf;
}

/** A whole ERROR chunk, or ERROR_OFFSET when `offset` is given. */
export function encodeErrorChunk(cookie: bigint, flags: number, error: number, message: string, offset?: number): Buffer {
  // The message length is a u16 and should stay short; clip rather than fail while reporting an error.
  const text = clippedNbdString(message, 1024);
  const payload = 6 + text.length + (offset === undefined ? 0 : 8);
  const buf = Buffer.alloc(NBD_SIZE.STRUCTURED_REPLY_HEADER + payload);
  const type = offset === undefined ? NBD_REPLY_TYPE.NBD_REPLY_TYPE_ERROR : NBD_REPLY_TYPE.NBD_REPLY_TYPE_ERROR_OFFSET;
  writeStructuredHeader(buf, { flags, type, cookie, length: payload });
  let at = NBD_SIZE.STRUCTURED_REPLY_HEADER;
  buf.writeUInt32BE(error >>> 0, at);
  buf.writeUInt16BE(text.length, at + 4);
  text.copy(buf, at + 6);
  at += 6 + text.length;
  if (offset !== undefined) writeU64be(buf, offset, at);
  return buf;
}

export function decodeOffsetDataPayload(payload: Buffer): { offset: number; data: Buffer } {
  assertMinLength(payload, 9, 'OFFSET_DATA chunk');
  return { offset: readU64beSafe(payload, 0, 'chunk offset'), data: payload.subarray(8) };
}

export function decodeOffsetHolePayload(payload: Buffer): { offset: number; length: number } {
  assertLength(payload, 12, 'OFFSET_HOLE chunk');
  const length = payload.readUInt32BE(8);
  if (length === 0) throw nbdProtocolError('NBD OFFSET_HOLE chunk with zero length');
  return { offset: readU64beSafe(payload, 0, 'chunk offset'), length };
}

export function decodeBlockStatusPayload(payload: Buffer): { contextId: number; descriptors: NbdBlockDescriptor[] } {
  assertMinLength(payload, 12, 'BLOCK_STATUS chunk');
  if ((payload.length - 4) % 8 !== 0) throw nbdProtocolError('NBD BLOCK_STATUS chunk length is not 4 + 8n', { length: payload.length });
  const descriptors: NbdBlockDescriptor[] = [];
  for (let at = 4; at < payload.length; at += 8) {
    descriptors.push({ length: payload.readUInt32BE(at), flags: payload.readUInt32BE(at + 4) });
  }
  return { contextId: payload.readUInt32BE(0), descriptors };
}

/** Decodes ERROR and ERROR_OFFSET payloads (and any other error chunk type as ERROR). */
export function decodeErrorPayload(type: number, payload: Buffer): { error: number; message: string; offset?: number } {
  assertMinLength(payload, 6, 'error chunk');
  const error = payload.readUInt32BE(0);
  const messageLength = payload.readUInt16BE(4);
  if (6 + messageLength > payload.length) throw nbdProtocolError('NBD error chunk message exceeds the chunk', { messageLength });
  const message = payload.subarray(6, 6 + messageLength).toString('utf8');
  if (type === NBD_REPLY_TYPE.NBD_REPLY_TYPE_ERROR_OFFSET) {
    assertLength(payload, 6 + messageLength + 8, 'ERROR_OFFSET chunk');
    return { error, message, offset: readU64beSafe(payload, 6 + messageLength, 'error offset') };
  }
  return { error, message };
}
