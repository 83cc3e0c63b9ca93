// A deliberately small and MISBEHAVING NBD server, for the faults no real server produces on demand
// (replies that contradict the export size, short structured reads, overlapping or stray chunks).
// Correct behaviour is the default; each test overrides one reply handler. Not a reference server.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  NBD_CMD,
  NBD_HANDSHAKE_FLAG,
  NBD_OPT,
  NBD_REP,
  NBD_REPLY_FLAG,
  NBD_SIZE,
  NBD_TRANSMISSION_FLAG,
  NbdByteQueue,
  decodeInfoRequest,
  decodeMetaContextRequest,
  decodeOptionHeader,
  decodeRequest,
  encodeBlockStatusChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOptionReply,
  encodeRepInfo,
  encodeRepMetaContext,
  encodeServerGreeting,
  encodeSimpleReply,
  type NbdRequest,
} from '../../../../src/nbd/protocol/index.js';

export const DONE = NBD_REPLY_FLAG.NBD_REPLY_FLAG_DONE;

export interface FakeServerOptions {
  disk: Buffer;
  /** Context names the server offers, with the ids it hands out. */
  contexts?: Record<string, number>;
  structuredReplies?: boolean;
  /** Answer GO with ERR_UNSUP so the client falls back to EXPORT_NAME. */
  noGo?: boolean;
  exportName?: string;
  transmissionFlags?: number;
  /** Overrides the reply to one request; return true when handled. */
  onRequest?: (req: NbdRequest, sock: net.Socket, disk: Buffer) => boolean | void;
  /** Extents for BLOCK_STATUS replies (default: one extent of flags 0 covering the request). */
  status?: (req: NbdRequest, contextId: number) => Array<{ length: number; flags: number }>;
}

export interface FakeServer {
  uri: string;
  requests: NbdRequest[];
  close: () => Promise<void>;
}

export async function startFakeServer(opts: FakeServerOptions): Promise<FakeServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-fake-nbd-'));
  const socketPath = path.join(dir, 'nbd.sock');
  const requests: NbdRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    void serve(sock, opts, requests).catch(() => sock.destroy());
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const exportName = opts.exportName ?? 'disk';
  return {
    uri: `nbd+unix:///${exportName}?socket=${socketPath}`,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function serve(sock: net.Socket, opts: FakeServerOptions, requests: NbdRequest[]): Promise<void> {
  const q = NbdByteQueue.fromStream(sock);
  const contexts = opts.contexts ?? { 'base:allocation': 1 };
  const sr = opts.structuredReplies ?? true;
  const flags = opts.transmissionFlags ?? NBD_TRANSMISSION_FLAG.NBD_FLAG_HAS_FLAGS | NBD_TRANSMISSION_FLAG.NBD_FLAG_SEND_TRIM;
  const selected: number[] = [];
  sock.write(encodeServerGreeting(NBD_HANDSHAKE_FLAG.NBD_FLAG_FIXED_NEWSTYLE | NBD_HANDSHAKE_FLAG.NBD_FLAG_NO_ZEROES));
  await q.read(4);
  let srOn = false;
  for (;;) {
    const { option, length } = decodeOptionHeader(await q.read(NBD_SIZE.OPTION_HEADER));
    const data = await q.read(length);
    if (option === NBD_OPT.NBD_OPT_STRUCTURED_REPLY) {
      srOn = sr;
      sock.write(encodeOptionReply(option, sr ? NBD_REP.NBD_REP_ACK : NBD_REP.NBD_REP_ERR_UNSUP));
    } else if (option === NBD_OPT.NBD_OPT_SET_META_CONTEXT) {
      for (const query of decodeMetaContextRequest(data).queries) {
        const id = contexts[query];
        if (id !== undefined) {
          selected.push(id);
          sock.write(encodeOptionReply(option, NBD_REP.NBD_REP_META_CONTEXT, encodeRepMetaContext(id, query)));
        }
      }
      sock.write(encodeOptionReply(option, NBD_REP.NBD_REP_ACK));
    } else if (option === NBD_OPT.NBD_OPT_GO) {
      if (decodeInfoRequest(data).exportName !== (opts.exportName ?? 'disk')) {
        sock.write(encodeOptionReply(option, NBD_REP.NBD_REP_ERR_UNKNOWN, Buffer.from('no such export')));
        continue;
      }
      if (opts.noGo) {
        sock.write(encodeOptionReply(option, NBD_REP.NBD_REP_ERR_UNSUP));
        continue;
      }
      sock.write(
        encodeOptionReply(
          option,
          NBD_REP.NBD_REP_INFO,
          encodeRepInfo({ kind: 'export', size: opts.disk.length, transmissionFlags: flags }),
        ),
      );
      sock.write(encodeOptionReply(option, NBD_REP.NBD_REP_ACK));
      break;
    } else if (option === NBD_OPT.NBD_OPT_EXPORT_NAME) {
      const reply = Buffer.alloc(10);
      reply.writeBigUInt64BE(BigInt(opts.disk.length), 0);
      reply.writeUInt16BE(flags, 8);
      sock.write(reply);
      break;
    } else {
      sock.write(encodeOptionReply(option, NBD_REP.NBD_REP_ERR_UNSUP));
    }
  }
  for (;;) {
    const req = decodeRequest(await q.read(NBD_SIZE.REQUEST));
    requests.push(req);
    if (req.type === NBD_CMD.NBD_CMD_DISC) {
      sock.end();
      return;
    }
    if (opts.onRequest?.(req, sock, opts.disk)) continue;
    if (req.type === NBD_CMD.NBD_CMD_READ) {
      const data = opts.disk.subarray(req.offset, req.offset + req.length);
      if (srOn) {
        sock.write(encodeOffsetDataHeader(req.cookie, DONE, req.offset, data.length));
        sock.write(data);
      } else {
        sock.write(encodeSimpleReply(req.cookie, 0));
        sock.write(data);
      }
    } else if (req.type === NBD_CMD.NBD_CMD_BLOCK_STATUS) {
      selected.forEach((id, i) => {
        const extents = opts.status?.(req, id) ?? [{ length: req.length, flags: 0 }];
        sock.write(encodeBlockStatusChunk(req.cookie, i === selected.length - 1 ? DONE : 0, id, extents));
      });
    } else {
      sock.write(srOn ? encodeNoneChunk(req.cookie, DONE) : encodeSimpleReply(req.cookie, 0));
    }
  }
}
