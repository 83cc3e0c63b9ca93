import { describe, expect, it } from 'vitest';
import {
  NBD_CMD,
  NBD_INFO,
  NBD_OPT,
  NBD_REPLY_FLAG,
  NBD_REPLY_TYPE,
  NBD_REP,
  NBD_SIZE,
  decodeBlockStatusPayload,
  decodeClientFlags,
  decodeErrorPayload,
  decodeExportNameReply,
  decodeInfoRequest,
  decodeMetaContextRequest,
  decodeOffsetDataPayload,
  decodeOffsetHolePayload,
  decodeOptionHeader,
  decodeOptionReplyHeader,
  decodeRepInfo,
  decodeRepMetaContext,
  decodeRepServer,
  decodeReplyMagic,
  decodeRequest,
  decodeServerGreeting,
  decodeSimpleReply,
  decodeStructuredReplyHeader,
  encodeBlockStatusChunk,
  encodeClientFlags,
  encodeErrorChunk,
  encodeExportNameReply,
  encodeInfoRequest,
  encodeMetaContextRequest,
  encodeOffsetDataHeader,
  encodeOffsetHoleChunk,
  encodeOption,
  encodeOptionReply,
  encodeRepInfo,
  encodeRepMetaContext,
  encodeRepServer,
  encodeRequest,
  encodeServerGreeting,
  encodeSimpleReply,
  nbdName,
} from '../../../../src/nbd/protocol/index.js';
import { isCairnError } from '../../../../src/core/errors.js';

function expectProtocolError(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(isCairnError(err, 'ERR_NBD_PROTOCOL')).toBe(true);
    return;
  }
  throw new Error('expected ERR_NBD_PROTOCOL');
}

describe('NBD handshake codecs', () => {
  it('encodes the greeting byte for byte as the spec lays it out', () => {
    const buf = encodeServerGreeting(3);
    expect(buf.toString('hex')).toBe('4e42444d41474943' + '49484156454f5054' + '0003');
    expect(decodeServerGreeting(buf)).toEqual({ handshakeFlags: 3 });
  });

  it('refuses an oldstyle or foreign greeting', () => {
    const old = Buffer.alloc(18);
    old.writeBigUInt64BE(0x4e42444d41474943n, 0);
    old.writeBigUInt64BE(0x00420281861253n, 8);
    expectProtocolError(() => decodeServerGreeting(old));
    expectProtocolError(() => decodeServerGreeting(Buffer.alloc(18)));
  });

  it('round-trips client flags and the EXPORT_NAME reply with and without padding', () => {
    expect(decodeClientFlags(encodeClientFlags(0x80000003))).toBe(0x80000003);
    const padded = encodeExportNameReply(1 << 30, 0x58f, false);
    expect(padded.length).toBe(134);
    expect(padded.subarray(10).every((b) => b === 0)).toBe(true);
    const bare = encodeExportNameReply(1 << 30, 0x58f, true);
    expect(bare.length).toBe(10);
    expect(decodeExportNameReply(bare)).toEqual({ size: 1 << 30, transmissionFlags: 0x58f });
  });
});

describe('NBD option codecs', () => {
  it('frames an option and refuses a bad magic', () => {
    const opt = encodeOption(NBD_OPT.NBD_OPT_LIST);
    expect(opt.length).toBe(NBD_SIZE.OPTION_HEADER);
    expect(decodeOptionHeader(opt)).toEqual({ option: 3, length: 0 });
    const bad = Buffer.from(opt);
    bad[0] = 0;
    expectProtocolError(() => decodeOptionHeader(bad));
  });

  it('round-trips GO data and rejects inconsistent lengths', () => {
    const data = encodeInfoRequest({ exportName: 'vm1/latest/sda', infos: [NBD_INFO.NBD_INFO_BLOCK_SIZE, 1] });
    expect(data.readUInt32BE(0)).toBe(14);
    expect(decodeInfoRequest(data)).toEqual({ exportName: 'vm1/latest/sda', infos: [3, 1] });
    expectProtocolError(() => decodeInfoRequest(data.subarray(0, data.length - 1)));
    const lying = Buffer.from(data);
    lying.writeUInt32BE(0xffffffff, 0);
    expectProtocolError(() => decodeInfoRequest(lying));
    expectProtocolError(() => decodeInfoRequest(Buffer.alloc(3)));
  });

  it('round-trips meta context queries and rejects a lying count', () => {
    const data = encodeMetaContextRequest({ exportName: 'a/b/c', queries: ['base:allocation', 'cairn:changed:p1'] });
    expect(decodeMetaContextRequest(data)).toEqual({ exportName: 'a/b/c', queries: ['base:allocation', 'cairn:changed:p1'] });
    const lying = Buffer.from(data);
    lying.writeUInt32BE(1_000_000_000, 4 + 5);
    expectProtocolError(() => decodeMetaContextRequest(lying));
    expectProtocolError(() => decodeMetaContextRequest(Buffer.concat([data, Buffer.from([1])])));
  });

  it('round-trips option replies and their payloads', () => {
    const reply = encodeOptionReply(NBD_OPT.NBD_OPT_GO, NBD_REP.NBD_REP_ERR_UNKNOWN, Buffer.from('no such export'));
    expect(decodeOptionReplyHeader(reply.subarray(0, 20))).toEqual({ option: 7, type: 0x80000006, length: 14 });
    expect(reply.subarray(0, 8).toString('hex')).toBe('0003e889045565a9');
    expect(decodeRepServer(encodeRepServer('vm/p/d', 'desc'))).toEqual({ exportName: 'vm/p/d', description: 'desc' });
    for (const info of [
      { kind: 'export', size: 2 ** 40, transmissionFlags: 0x58f },
      { kind: 'name', name: 'x/y/z' },
      { kind: 'description', description: 'hello' },
      { kind: 'block-size', minimum: 1, preferred: 4096, maximum: 0xffffffff },
    ] as const) {
      expect(decodeRepInfo(encodeRepInfo(info))).toEqual(info);
    }
    expect(encodeRepInfo({ kind: 'export', size: 1, transmissionFlags: 1 }).length).toBe(12);
    expect(encodeRepInfo({ kind: 'block-size', minimum: 1, preferred: 1, maximum: 1 }).length).toBe(14);
    expect(decodeRepMetaContext(encodeRepMetaContext(7, 'base:allocation'))).toEqual({ contextId: 7, name: 'base:allocation' });
  });
});

describe('NBD request and reply codecs', () => {
  it('round-trips a request and refuses a bad magic', () => {
    const req = { flags: 8, type: NBD_CMD.NBD_CMD_BLOCK_STATUS, cookie: 0xdeadbeefcafef00dn, offset: 2 ** 40, length: 65536 };
    const buf = encodeRequest(req);
    expect(buf.length).toBe(28);
    expect(buf.readUInt32BE(0)).toBe(0x25609513);
    expect(decodeRequest(buf)).toEqual(req);
    const bad = Buffer.from(buf);
    bad.writeUInt32BE(0x25609514, 0);
    expectProtocolError(() => decodeRequest(bad));
  });

  it('saturates offsets beyond 2^53 instead of throwing', () => {
    const buf = encodeRequest({ flags: 0, type: 0, cookie: 1n, offset: 0, length: 1 });
    buf.writeBigUInt64BE(0xffffffffffffffffn, 16);
    expect(decodeRequest(buf).offset).toBeGreaterThan(Number.MAX_SAFE_INTEGER);
  });

  it('round-trips simple and structured replies', () => {
    const simple = encodeSimpleReply(42n, 22);
    expect(decodeReplyMagic(simple)).toBe(0x67446698);
    expect(decodeSimpleReply(simple)).toEqual({ error: 22, cookie: 42n });

    const dataHeader = encodeOffsetDataHeader(5n, NBD_REPLY_FLAG.NBD_REPLY_FLAG_DONE, 4096, 512);
    expect(decodeStructuredReplyHeader(dataHeader.subarray(0, 20))).toEqual({ flags: 1, type: 1, cookie: 5n, length: 520 });
    expect(decodeOffsetDataPayload(Buffer.concat([dataHeader.subarray(20), Buffer.alloc(512, 7)])).offset).toBe(4096);

    const hole = encodeOffsetHoleChunk(5n, 0, 8192, 1 << 20);
    expect(decodeStructuredReplyHeader(hole.subarray(0, 20)).type).toBe(NBD_REPLY_TYPE.NBD_REPLY_TYPE_OFFSET_HOLE);
    expect(decodeOffsetHolePayload(hole.subarray(20))).toEqual({ offset: 8192, length: 1 << 20 });

    const status = encodeBlockStatusChunk(9n, 1, 3, [
      { length: 4096, flags: 3 },
      { length: 8192, flags: 0 },
    ]);
    expect(decodeStructuredReplyHeader(status.subarray(0, 20)).length).toBe(4 + 16);
    expect(decodeBlockStatusPayload(status.subarray(20))).toEqual({
      contextId: 3,
      descriptors: [
        { length: 4096, flags: 3 },
        { length: 8192, flags: 0 },
      ],
    });

    const err = encodeErrorChunk(9n, 1, 5, 'chunk damaged', 12345);
    const header = decodeStructuredReplyHeader(err.subarray(0, 20));
    expect(header.type).toBe(NBD_REPLY_TYPE.NBD_REPLY_TYPE_ERROR_OFFSET);
    expect(decodeErrorPayload(header.type, err.subarray(20))).toEqual({ error: 5, message: 'chunk damaged', offset: 12345 });
    const plain = encodeErrorChunk(9n, 1, 22, 'bad');
    expect(decodeErrorPayload(NBD_REPLY_TYPE.NBD_REPLY_TYPE_ERROR, plain.subarray(20))).toEqual({ error: 22, message: 'bad' });
  });

  it('names wire values for logs', () => {
    expect(nbdName(NBD_CMD, 0)).toBe('NBD_CMD_READ');
    expect(nbdName(NBD_OPT, 99)).toBe('unknown(99)');
  });
});
