import { NBD_MAGIC, NBD_SIZE } from './constants.js';
import { assertLength, assertMinLength, decodeNbdString, encodeNbdString, nbdProtocolError } from './wire.js';

/** Client option framing: IHAVEOPT, u32 option, u32 data length, data. */
export interface NbdOptionHeader {
  option: number;
  length: number;
}

export function encodeOptionHeader(option: number, length: number): Buffer {
  const buf = Buffer.alloc(NBD_SIZE.OPTION_HEADER);
  buf.writeBigUInt64BE(NBD_MAGIC.IHAVEOPT, 0);
  buf.writeUInt32BE(option >>> 0, 8);
  buf.writeUInt32BE(length >>> 0, 12);
  return buf;
}

/** A whole option message (header plus data). */
export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([encodeOptionHeader(option, data.length), data]);
}

/** Decodes the 16-byte header; a wrong magic is unrecoverable. The caller checks `length` before reading data. */
export function decodeOptionHeader(buf: Buffer): NbdOptionHeader {
  assertLength(buf, NBD_SIZE.OPTION_HEADER, 'option header');
  const magic = buf.readBigUInt64BE(0);
  if (magic !== NBD_MAGIC.IHAVEOPT) {
    throw nbdProtocolError('bad NBD option magic', { magic: magic.toString(16) });
  }
  return { option: buf.readUInt32BE(8), length: buf.readUInt32BE(12) };
}

/** Data of NBD_OPT_INFO and NBD_OPT_GO: u32 name length, name, u16 count, u16 information requests. */
export interface NbdInfoRequest {
  exportName: string;
  infos: number[];
}

export function encodeInfoRequest(request: NbdInfoRequest): Buffer {
  const name = encodeNbdString(request.exportName, 'export name');
  const buf = Buffer.alloc(4 + name.length + 2 + 2 * request.infos.length);
  buf.writeUInt32BE(name.length, 0);
  name.copy(buf, 4);
  let at = 4 + name.length;
  buf.writeUInt16BE(request.infos.length, at);
  at += 2;
  for (const info of request.infos) {
    buf.writeUInt16BE(info, at);
    at += 2;
  }
  return buf;
}

export function decodeInfoRequest(data: Buffer): NbdInfoRequest {
  assertMinLength(data, 6, 'INFO/GO data');
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 6) {
    throw nbdProtocolError('NBD INFO/GO export name length exceeds the option data', { nameLength, length: data.length });
  }
  const exportName = decodeNbdString(data.subarray(4, 4 + nameLength), 'export name');
  let at = 4 + nameLength;
  const count = data.readUInt16BE(at);
  at += 2;
  assertLength(data, at + 2 * count, 'INFO/GO data');
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(data.readUInt16BE(at + 2 * i));
  return { exportName, infos };
}

/** Data of NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: export name and query strings. */
export interface NbdMetaContextRequest {
  exportName: string;
  queries: string[];
}

export function encodeMetaContextRequest(request: NbdMetaContextRequest): Buffer {
  const parts: Buffer[] = [];
  const name = encodeNbdString(request.exportName, 'export name');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(name.length, 0);
  parts.push(head, name);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(request.queries.length, 0);
  parts.push(count);
  for (const query of request.queries) {
    const bytes = encodeNbdString(query, 'meta context query');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length, 0);
    parts.push(len, bytes);
  }
  return Buffer.concat(parts);
}

/** Refuses inconsistent lengths (the server answers NBD_REP_ERR_INVALID); query count is bounded by the data. */
export function decodeMetaContextRequest(data: Buffer): NbdMetaContextRequest {
  assertMinLength(data, 8, 'meta context data');
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 8) {
    throw nbdProtocolError('NBD meta context export name length exceeds the option data', { nameLength });
  }
  const exportName = decodeNbdString(data.subarray(4, 4 + nameLength), 'export name');
  let at = 4 + nameLength;
  const count = data.readUInt32BE(at);
  at += 4;
  // Each query takes at least its 4-byte length, so a count beyond that is a lie; check before looping.
  if (count > (data.length - at) / 4) {
    throw nbdProtocolError('NBD meta context query count exceeds the option data', { count });
  }
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    assertMinLength(data, at + 4, 'meta context query');
    const length = data.readUInt32BE(at);
    at += 4;
    if (length > data.length - at) throw nbdProtocolError('NBD meta context query length exceeds the option data', { length });
    queries.push(decodeNbdString(data.subarray(at, at + length), 'meta context query'));
    at += length;
  }
  if (at !== data.length) throw nbdProtocolError('NBD meta context data has trailing bytes', { trailing: data.length - at });
  return { exportName, queries };
}
