import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from '../../../../src/nbd/client/index.js';
import {
  NBD_CMD,
  NBD_ERROR,
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeOffsetDataHeader,
  encodeOffsetHoleChunk,
  encodeSimpleReply,
} from '../../../../src/nbd/protocol/index.js';
import { DONE, startFakeServer, type FakeServer, type FakeServerOptions } from './misbehaving-server.js';

const disk = Buffer.alloc(1024 * 1024);
for (let i = 0; i < disk.length; i++) disk[i] = (i * 7 + (i >> 12)) & 0xff;

let server: FakeServer | undefined;
let client: NbdClient | undefined;
afterEach(async () => {
  await client?.close();
  await server?.close();
  client = server = undefined;
});

async function connect(opts: Partial<FakeServerOptions> = {}, requestTimeoutMs = 5000): Promise<NbdClient> {
  server = await startFakeServer({ disk, ...opts });
  client = await NbdClient.open({ uri: server.uri, metaContexts: ['base:allocation'], requestTimeoutMs });
  return client;
}

describe('NbdClient against a (misbehaving) fake server', () => {
  it('reads and queries block status from a well-behaved reply', async () => {
    const c = await connect({
      status: () => [
        { length: 4096, flags: 3 },
        { length: 65536, flags: 0 },
      ],
    });
    expect(c.size).toBe(disk.length);
    expect(c.canTrim).toBe(true);
    expect(await c.read(1000, 5000)).toEqual(disk.subarray(1000, 6000));
    expect(await c.blockStatus('base:allocation', 0, 65536)).toEqual([
      { offset: 0, length: 4096, flags: 3 },
      { offset: 4096, length: 61440, flags: 0 },
    ]);
  });

  it('assembles reads from data and hole chunks in any order', async () => {
    const c = await connect({
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_READ) return false;
        const half = req.length / 2;
        sock.write(encodeOffsetHoleChunk(req.cookie, 0, req.offset + half, half));
        sock.write(encodeOffsetDataHeader(req.cookie, DONE, req.offset, half));
        sock.write(disk.subarray(req.offset, req.offset + half));
        return true;
      },
    });
    const got = await c.read(8192, 8192);
    expect(got.subarray(0, 4096)).toEqual(disk.subarray(8192, 12288));
    expect(got.subarray(4096).every((b) => b === 0)).toBe(true);
  });

  it('splits a long read into requests of the request size that land in one buffer', async () => {
    server = await startFakeServer({ disk });
    client = await NbdClient.open({ uri: server.uri, requestSize: 64 * 1024 });
    const got = await client.read(4096, 300 * 1024);
    expect(got.equals(disk.subarray(4096, 4096 + 300 * 1024))).toBe(true);
    const reads = server.requests.filter((r) => r.type === NBD_CMD.NBD_CMD_READ);
    expect(reads.map((r) => [r.offset, r.length])).toEqual([
      [4096, 65536],
      [4096 + 65536, 65536],
      [4096 + 2 * 65536, 65536],
      [4096 + 3 * 65536, 65536],
      [4096 + 4 * 65536, 300 * 1024 - 4 * 65536],
    ]);
    expect(client.bytesRead).toBe(300 * 1024);
  });

  it('reads replies that arrive a few bytes at a time, and many in one burst', async () => {
    // Replies leave in request order through one queue: the first dribbled 7 bytes at a time (every
    // field boundary falls inside a piece), the other twenty in a single write.
    let pending: Buffer[] = [];
    const c = await connect({
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_READ) return false;
        pending.push(encodeOffsetDataHeader(req.cookie, DONE, req.offset, req.length), disk.subarray(req.offset, req.offset + req.length));
        if (pending.length < 42) return true;
        const [first, rest] = [Buffer.concat(pending.slice(0, 2)), Buffer.concat(pending.slice(2))];
        pending = [];
        let at = 0;
        const step = () => {
          if (at >= first.length) return void sock.write(rest);
          sock.write(first.subarray(at, at + 7));
          at += 7;
          setImmediate(step);
        };
        step();
        return true;
      },
    });
    const reads = [c.read(0, 700), ...Array.from({ length: 20 }, (_, i) => c.read(4096 * (i + 1), 1000 + i))];
    const [slow, ...fast] = await Promise.all(reads);
    expect(slow).toEqual(disk.subarray(0, 700));
    fast.forEach((got, i) => expect(got).toEqual(disk.subarray(4096 * (i + 1), 4096 * (i + 1) + 1000 + i)));
  });

  it('falls back to simple replies and EXPORT_NAME for old servers', async () => {
    const c = await connect({ structuredReplies: false, noGo: true });
    expect(c.hasMetaContext('base:allocation')).toBe(false);
    expect(await c.read(0, 65536)).toEqual(disk.subarray(0, 65536));
  });

  it('fails one request on an NBD error reply and keeps the connection', async () => {
    const c = await connect({
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_READ || req.offset !== 0) return false;
        sock.write(encodeErrorChunk(req.cookie, DONE, NBD_ERROR.NBD_EIO, 'injected'));
        return true;
      },
    });
    await expect(c.read(0, 512)).rejects.toMatchObject({ code: 'ERR_NBD_REMOTE', message: expect.stringMatching(/NBD_EIO.*injected/) });
    expect(await c.read(512, 512)).toEqual(disk.subarray(512, 1024));
  });

  it('refuses a block-status reply that runs past the export size', async () => {
    const c = await connect({ status: (req) => [{ length: disk.length - req.offset + 4096, flags: 0 }] });
    await expect(c.blockStatus('base:allocation', disk.length - 65536, 65536)).rejects.toMatchObject({
      code: 'ERR_NBD_PROTOCOL',
      message: expect.stringMatching(/past the export size/),
    });
    // A protocol violation poisons the connection: nothing more is trusted from it.
    await expect(c.read(0, 512)).rejects.toMatchObject({ code: 'ERR_NBD_PROTOCOL' });
  });

  it('refuses extents after the requested range is covered, zero-length extents and unknown contexts', async () => {
    for (const status of [
      () => [
        { length: 512, flags: 0 },
        { length: 0, flags: 0 },
      ],
      (req: { length: number }) => [
        { length: req.length, flags: 0 },
        { length: 512, flags: 0 },
      ],
    ]) {
      const c = await connect({ status });
      await expect(c.blockStatus('base:allocation', 0, 4096)).rejects.toMatchObject({ code: 'ERR_NBD_PROTOCOL' });
      await client!.close();
      await server!.close();
    }
    const c = await connect({
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_BLOCK_STATUS) return false;
        sock.write(encodeBlockStatusChunk(req.cookie, DONE, 99, [{ length: req.length, flags: 0 }]));
        return true;
      },
    });
    await expect(c.blockStatus('base:allocation', 0, 4096)).rejects.toMatchObject({ code: 'ERR_NBD_PROTOCOL' });
  });

  it('reports a structured read that ends short', async () => {
    const c = await connect({
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_READ) return false;
        sock.write(encodeOffsetDataHeader(req.cookie, DONE, req.offset, req.length - 512));
        sock.write(disk.subarray(req.offset, req.offset + req.length - 512));
        return true;
      },
    });
    await expect(c.read(0, 4096)).rejects.toMatchObject({ code: 'ERR_NBD_PROTOCOL', message: expect.stringMatching(/short read/) });
  });

  it('refuses read chunks outside the request or overlapping each other', async () => {
    const c = await connect({
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_READ) return false;
        sock.write(encodeOffsetDataHeader(req.cookie, 0, req.offset, 512));
        sock.write(disk.subarray(req.offset, req.offset + 512));
        sock.write(encodeOffsetHoleChunk(req.cookie, DONE, req.offset + 256, req.length - 256));
        return true;
      },
    });
    await expect(c.read(0, 4096)).rejects.toMatchObject({ code: 'ERR_NBD_PROTOCOL', message: expect.stringMatching(/overlapping/) });
    await client!.close();
    await server!.close();
    const c2 = await connect({
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_READ) return false;
        sock.write(encodeOffsetHoleChunk(req.cookie, DONE, req.offset + 4096, 512));
        return true;
      },
    });
    await expect(c2.read(0, 4096)).rejects.toMatchObject({
      code: 'ERR_NBD_PROTOCOL',
      message: expect.stringMatching(/outside the request/),
    });
  });

  it('refuses a reply to a cookie it never sent', async () => {
    const c = await connect({
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_READ) return false;
        sock.write(encodeSimpleReply(req.cookie + 1000n, 0));
        return true;
      },
    });
    await expect(c.read(0, 512)).rejects.toMatchObject({ code: 'ERR_NBD_PROTOCOL', message: expect.stringMatching(/unknown cookie/) });
  });

  it('reports a connection dropped mid-reply as a short read', async () => {
    const c = await connect({
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_READ) return false;
        sock.write(encodeOffsetDataHeader(req.cookie, DONE, req.offset, req.length));
        sock.end(disk.subarray(req.offset, req.offset + 100));
        return true;
      },
    });
    await expect(c.read(0, 4096)).rejects.toMatchObject({ code: 'ERR_IO', message: expect.stringMatching(/short read/) });
  });

  it('times out when the server stops answering', async () => {
    const c = await connect({ onRequest: (req) => req.type === NBD_CMD.NBD_CMD_READ }, 300);
    const started = Date.now();
    await expect(c.read(0, 512)).rejects.toMatchObject({ code: 'ERR_TIMEOUT', message: expect.stringMatching(/stalled/) });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('names a missing export', async () => {
    server = await startFakeServer({ disk, exportName: 'other' });
    await expect(NbdClient.open({ uri: server.uri.replace('/other', '/missing') })).rejects.toMatchObject({
      code: 'ERR_NOT_FOUND',
      message: expect.stringMatching(/export "missing" has no such export: no such export/),
    });
  });

  it('gives up on a server that accepts but never greets, and on one that is not NBD', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-nbd-silent-'));
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    const garbage = net.createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((r) => silent.listen(path.join(dir, 'silent.sock'), r));
    await new Promise<void>((r) => garbage.listen(path.join(dir, 'garbage.sock'), r));
    try {
      await expect(
        NbdClient.open({ uri: `nbd+unix:///x?socket=${path.join(dir, 'silent.sock')}`, connectTimeoutMs: 300 }),
      ).rejects.toMatchObject({ code: 'ERR_TIMEOUT', message: expect.stringMatching(/handshake within 300 ms/) });
      await expect(NbdClient.open({ uri: `nbd+unix:///x?socket=${path.join(dir, 'garbage.sock')}` })).rejects.toMatchObject({
        code: 'ERR_NBD_PROTOCOL',
        message: expect.stringMatching(/not an NBD server/),
      });
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
      garbage.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
