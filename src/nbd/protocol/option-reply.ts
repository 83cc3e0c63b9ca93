import { NBD_INFO, NBD_MAGIC, NBD_SIZE } from './constants.js';
import { assertLength, assertMinLength, decodeNbdString, encodeNbdString, nbdProtocolError, readU64beSafe, writeU64be } from './wire.js';

/** Option reply framing: magic, u32 option (echoed), u32 reply type, u32 data length, data. */
export interface NbdOptionReplyHeader {
  option: number;
  type: number;
  length: number;
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.OPTION_REPLY_HEADER + data.length);
  buf.writeBigUInt64BE(NBD_MAGIC.NBD_REP_MAGIC, 0);
  buf.writeUInt32BE(option >>> 0, 8);
  buf.writeUInt32BE(type >>> 0, 12);
  buf.writeUInt32BE(data.length, 16);
  data.copy(buf, NBD_SIZE.OPTION_REPLY_HEADER);
  return buf;
}

export function decodeOptionReplyHeader(buf: Buffer): NbdOptionReplyHeader {
  assertLength(buf, NBD_SIZE.OPTION_REPLY_HEADER, 'option reply header');
  const magic = buf.readBigUInt64BE(0);
  if (magic !== NBD_MAGIC.NBD_REP_MAGIC) throw nbdProtocolError('bad NBD option reply magic', { magic: magic.toString(16) });
  return { option: buf.readUInt32BE(8), type: buf.readUInt32BE(12), length: buf.readUInt32BE(16) };
}

/** NBD_REP_SERVER data: u32 name length, name, optional description filling the rest. */
export function encodeRepServer(exportName: string, description = ''): Buffer {
  const name = encodeNbdString(exportName, 'export name');
  const desc = encodeNbdString(description, 'export description');
  const buf = Buffer.alloc(4 + name.length + desc.length);
  buf.writeUInt32BE(name.length, 0);
  name.copy(buf, 4);
  desc.copy(buf, 4 + name.length);
  return buf;
}

export function decodeRepServer(data: Buffer): { exportName: string; description: string } {
  assertMinLength(data, 4, 'NBD_REP_SERVER');
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 4) throw nbdProtocolError('NBD_REP_SERVER name length exceeds the reply', { nameLength });
  return {
    exportName: decodeNbdString(data.subarray(4, 4 + nameLength), 'export name'),
    description: decodeNbdString(data.subarray(4 + nameLength), 'export description'),
  };
}

/** The payload of one NBD_REP_INFO reply. */
export type NbdInfoReply =
  | { kind: 'export'; size: number; transmissionFlags: number }
  | { kind: 'name'; name: string }
  | { kind: 'description'; description: string }
  | { kind: 'block-size'; minimum: number; preferred: number; maximum: number }
  | { kind: 'unknown'; info: number; data: Buffer };

export function encodeRepInfo(reply: NbdInfoReply): Buffer {
  switch (reply.kind) {
    case 'export': {
      const buf = Buffer.alloc(12);
      buf.writeUInt16BE(NBD_INFO.NBD_INFO_EXPORT, 0);
      writeU64be(buf, reply.size, 2);
      buf.writeUInt16BE(reply.transmissionFlags, 10);
      return buf;
    }
    case 'name':
    case 'description': {
      const info = reply.kind === 'name' ? NBD_INFO.NBD_INFO_NAME : NBD_INFO.NBD_INFO_DESCRIPTION;
      const text = encodeNbdString(reply.kind === 'name' ? reply.name : reply.description, reply.kind);
      const buf = Buffer.alloc(2 + text.length);
      buf.writeUInt16BE(info, 0);
      text.copy(buf, 2);
      return buf;
    }
    case 'block-size': {
      const buf = Buffer.alloc(14);
      buf.writeUInt16BE(NBD_INFO.NBD_INFO_BLOCK_SIZE, 0);
      buf.writeUInt32BE(reply.minimum, 2);
      buf.writeUInt32BE(reply.preferred, 6);
      buf.writeUInt32BE(reply.maximum >>> 0, 10);
      return buf;
    }
    case 'unknown': {
      const buf = Buffer.alloc(2 + reply.data.length);
      buf.writeUInt16BE(reply.info, 0);
      reply.data.copy(buf, 2);
      return buf;
    }
  }
}

export function decodeRepInfo(data: Buffer): NbdInfoReply {
  assertMinLength(data, 2, 'NBD_REP_INFO');
  const info = data.readUInt16BE(0);
  switch (info) {
    case NBD_INFO.NBD_INFO_EXPORT:
      assertLength(data, 12, 'NBD_INFO_EXPORT');
      return { kind: 'export', size: readU64beSafe(data, 2, 'export size'), transmissionFlags: data.readUInt16BE(10) };
    case NBD_INFO.NBD_INFO_NAME:
      return { kind: 'name', name: decodeNbdString(data.subarray(2), 'export name') };
    case NBD_INFO.NBD_INFO_DESCRIPTION:
      return { kind: 'description', description: decodeNbdString(data.subarray(2), 'export description') };
    case NBD_INFO.NBD_INFO_BLOCK_SIZE:
      assertLength(data, 14, 'NBD_INFO_BLOCK_SIZE');
      return {
        kind: 'block-size',
        minimum: data.readUInt32BE(2),
        preferred: data.readUInt32BE(6),
        maximum: data.readUInt32BE(10),
      };
    default:
      return { kind: 'unknown', info, data: Buffer.from(data.subarray(2)) };
  }
}

/** NBD_REP_META_CONTEXT data: u32 context id, name. */
export function encodeRepMetaContext(contextId: number, name: string): Buffer {
  const text = encodeNbdString(name, 'meta context name');
  const buf = Buffer.alloc(4 + text.length);
  buf.writeUInt32BE(contextId >>> 0, 0);
  text.copy(buf, 4);
  return buf;
}

export function decodeRepMetaContext(data: Buffer): { contextId: number; name: string } {
  assertMinLength(data, 4, 'NBD_REP_META_CONTEXT');
  return { contextId: data.readUInt32BE(0), name: decodeNbdString(data.subarray(4), 'meta context name') };
}

/** Error replies may carry a human-readable message as their data. */
export function decodeRepErrorMessage(data: Buffer): string {
  return data.subarray(0, NBD_SIZE.MAX_STRING).toString('utf8');
}
