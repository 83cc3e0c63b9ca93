import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  NBD_CMD,
  NBD_CMD_FLAG,
  NBD_ERROR,
  NBD_OPT,
  NBD_REP,
  NBD_REPLY_TYPE,
  NBD_STATE,
  decodeBlockStatusPayload,
  decodeErrorPayload,
  decodeOffsetDataPayload,
  decodeOffsetHolePayload,
  encodeInfoRequest,
  encodeMetaContextRequest,
  encodeRequest,
  type NbdRequest,
} from '../../../../src/nbd/protocol/index.js';
import { BLOCK, DISK_SIZE, newerDisk, olderDisk, serveMemoryCatalog, type Served } from './fixture.js';
import { RawNbdClient, type ReplyChunk } from './raw-client.js';

const OLD = '20261121T000000Z';
let served: Served;
let clients: RawNbdClient[] = [];

beforeEach(async () => {
  served = await serveMemoryCatalog({ maxConnections: 4 });
});
afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await served.dispose();
});

/** Connects and GOes to `name`, optionally with structured replies and meta contexts. */
async function attach(name: string, opts: { structured?: boolean; contexts?: string[] } = {}): Promise<RawNbdClient> {
  const client = await RawNbdClient.connect(served.socketPath);
  clients.push(client);
  await client.handshake();
  if (opts.structured) expect((await client.option(NBD_OPT.NBD_OPT_STRUCTURED_REPLY))[0]!.type).toBe(NBD_REP.NBD_REP_ACK);
  if (opts.contexts) {
    await client.option(NBD_OPT.NBD_OPT_SET_META_CONTEXT, encodeMetaContextRequest({ exportName: name, queries: opts.contexts }));
  }
  const go = await client.option(NBD_OPT.NBD_OPT_GO, encodeInfoRequest({ exportName: name, infos: [] }));
  expect(go[go.length - 1]!.type).toBe(NBD_REP.NBD_REP_ACK);
  return client;
}

let nextCookie = 1n;
function req(type: number, offset: number, length: number, flags = 0): NbdRequest {
  return { type, offset, length, flags, cookie: nextCookie++ };
}

/** Reassembles a structured READ reply into bytes, checking chunks cover the range exactly once. */
function assemble(chunks: ReplyChunk[], offset: number, length: number): { data: Buffer; holes: number } {
  const data = Buffer.alloc(length, 0xee);
  const covered = new Uint8Array(length);
  let holes = 0;
  for (const c of chunks) {
    let start: number;
    let len: number;
    if (c.type === NBD_REPLY_TYPE.NBD_REPLY_TYPE_OFFSET_DATA) {
      const p = decodeOffsetDataPayload(c.payload);
      start = p.offset - offset;
      len = p.data.length;
      p.data.copy(data, start);
    } else if (c.type === NBD_REPLY_TYPE.NBD_REPLY_TYPE_OFFSET_HOLE) {
      const p = decodeOffsetHolePayload(c.payload);
      start = p.offset - offset;
      len = p.length;
      data.fill(0, start, start + len);
      holes++;
    } else {
      throw new Error(`unexpected chunk type ${c.type}`);
    }
    if (covered.subarray(start, start + len).some((b) => b !== 0)) throw new Error(`overlapping chunk at ${start}`);
    covered.fill(1, start, start + len);
  }
  expect(covered.every((b) => b === 1)).toBe(true);
  return { data, holes };
}

describe('NBD server transmission', () => {
  it('answers simple READs with the exact bytes', async () => {
    const client = await attach(`vm1/${OLD}/sda`);
    const r = req(NBD_CMD.NBD_CMD_READ, BLOCK - 100, 3 * BLOCK);
    client.send(r);
    const reply = await client.nextChunk(r.length);
    expect(reply).toMatchObject({ cookie: r.cookie, structured: false, error: 0 });
    expect(reply.payload.equals(olderDisk().subarray(r.offset, r.offset + r.length))).toBe(true);
  });

  it('answers structured READs with OFFSET_DATA and OFFSET_HOLE chunks', async () => {
    const client = await attach('vm1/latest/sda', { structured: true });
    const r = req(NBD_CMD.NBD_CMD_READ, 0, DISK_SIZE);
    client.send(r);
    const chunks = await client.structuredReply();
    const { data, holes } = assemble(chunks, 0, DISK_SIZE);
    expect(data.equals(newerDisk())).toBe(true);
    expect(holes).toBe(3); // block 1, blocks 4..6 and 8..14 (block 7 holds data in the newer point)
    // DF asks for one unfragmented chunk.
    const df = req(NBD_CMD.NBD_CMD_READ, 0, 2 * BLOCK, NBD_CMD_FLAG.NBD_CMD_FLAG_DF);
    client.send(df);
    const one = await client.structuredReply();
    expect(one).toHaveLength(1);
    expect(decodeOffsetDataPayload(one[0]!.payload).data.equals(newerDisk().subarray(0, 2 * BLOCK))).toBe(true);
  });

  it('refuses reads past the end, writes, trims, unknown commands and flags with the documented errors', async () => {
    const client = await attach('vm1/latest/sda', { structured: true });
    const cases: [NbdRequest, number, Buffer?][] = [
      [req(NBD_CMD.NBD_CMD_READ, DISK_SIZE - 10, 20), NBD_ERROR.NBD_EINVAL],
      [req(NBD_CMD.NBD_CMD_READ, 2 ** 60, 1), NBD_ERROR.NBD_EINVAL],
      [req(NBD_CMD.NBD_CMD_READ, 0, 33 * 1024 * 1024), NBD_ERROR.NBD_EINVAL],
      [req(NBD_CMD.NBD_CMD_WRITE, 0, 4096), NBD_ERROR.NBD_EPERM, Buffer.alloc(4096, 1)],
      [req(NBD_CMD.NBD_CMD_TRIM, 0, 4096), NBD_ERROR.NBD_EPERM],
      [req(NBD_CMD.NBD_CMD_WRITE_ZEROES, 0, 4096), NBD_ERROR.NBD_EPERM],
      [req(42, 0, 0), NBD_ERROR.NBD_EINVAL],
      [req(NBD_CMD.NBD_CMD_RESIZE, 0, 0), NBD_ERROR.NBD_EINVAL],
      [req(NBD_CMD.NBD_CMD_READ, 0, 512, 0x8000), NBD_ERROR.NBD_EINVAL],
      [req(NBD_CMD.NBD_CMD_READ, 0, 512, NBD_CMD_FLAG.NBD_CMD_FLAG_FUA), NBD_ERROR.NBD_EINVAL],
      [req(NBD_CMD.NBD_CMD_BLOCK_STATUS, 0, 512), NBD_ERROR.NBD_EINVAL], // no context selected
      [req(NBD_CMD.NBD_CMD_CACHE, DISK_SIZE, 1), NBD_ERROR.NBD_EINVAL],
    ];
    for (const [r, error, payload] of cases) {
      client.send(r, payload);
      const chunks = await client.structuredReply();
      expect(chunks, `cmd ${r.type} flags ${r.flags}`).toHaveLength(1);
      expect(chunks[0]!.cookie).toBe(r.cookie);
      expect(chunks[0]!.error, `cmd ${r.type} flags ${r.flags}`).toBe(error);
      expect(decodeErrorPayload(chunks[0]!.type, chunks[0]!.payload).message.length).toBeGreaterThan(0);
    }
    // The session is intact after all that: FLUSH, CACHE and a READ still work.
    const flush = req(NBD_CMD.NBD_CMD_FLUSH, 0, 0);
    client.send(flush);
    expect(await client.nextChunk()).toMatchObject({ cookie: flush.cookie, error: 0 });
    const cache = req(NBD_CMD.NBD_CMD_CACHE, 0, DISK_SIZE);
    client.send(cache);
    expect(await client.nextChunk()).toMatchObject({ cookie: cache.cookie, error: 0 });
    const read = req(NBD_CMD.NBD_CMD_READ, 15 * BLOCK, 512);
    client.send(read);
    expect(assemble(await client.structuredReply(), read.offset, 512).data.every((b) => b === 0x55)).toBe(true);
  });

  it('uses simple error replies without structured replies', async () => {
    const client = await attach('vm1/latest/sda');
    const r = req(NBD_CMD.NBD_CMD_READ, DISK_SIZE, 1);
    client.send(r);
    expect(await client.nextChunk(1)).toMatchObject({ structured: false, error: NBD_ERROR.NBD_EINVAL, cookie: r.cookie });
  });

  it('reports base:allocation holes as HOLE|ZERO and cairn:changed blocks as dirty', async () => {
    const client = await attach('vm1/latest/sda', { structured: true, contexts: ['base:allocation', `cairn:changed:${OLD}`] });
    const r = req(NBD_CMD.NBD_CMD_BLOCK_STATUS, 0, DISK_SIZE);
    client.send(r);
    const chunks = await client.structuredReply();
    expect(chunks).toHaveLength(2);
    const byId = new Map(
      chunks.map((c) => [decodeBlockStatusPayload(c.payload).contextId, decodeBlockStatusPayload(c.payload).descriptors]),
    );
    const H = NBD_STATE.NBD_STATE_HOLE | NBD_STATE.NBD_STATE_ZERO;
    expect(byId.get(1)).toEqual([
      { length: BLOCK, flags: 0 },
      { length: BLOCK, flags: H },
      { length: 2 * BLOCK, flags: 0 },
      { length: 3 * BLOCK, flags: H },
      { length: BLOCK, flags: 0 },
      { length: 7 * BLOCK, flags: H },
      { length: BLOCK, flags: 0 },
    ]);
    expect(byId.get(2)).toEqual([
      { length: 3 * BLOCK, flags: 0 },
      { length: BLOCK, flags: 1 },
      { length: 3 * BLOCK, flags: 0 },
      { length: BLOCK, flags: 1 },
      { length: 8 * BLOCK, flags: 0 },
    ]);
    const one = req(NBD_CMD.NBD_CMD_BLOCK_STATUS, BLOCK + 10, 100, NBD_CMD_FLAG.NBD_CMD_FLAG_REQ_ONE);
    client.send(one);
    const [first] = await client.structuredReply();
    expect(decodeBlockStatusPayload(first!.payload).descriptors).toEqual([{ length: 100, flags: H }]);
  });

  it('answers concurrent requests out of order', async () => {
    served.newer.delayFor = (offset) => (offset === 0 ? 300 : 0);
    const client = await attach('vm1/latest/sda', { structured: true });
    const slow = req(NBD_CMD.NBD_CMD_READ, 0, 4096);
    const fast = req(NBD_CMD.NBD_CMD_READ, 15 * BLOCK, 4096);
    client.socket.write(Buffer.concat([encodeRequest(slow), encodeRequest(fast)]));
    const firstReply = await client.nextChunk();
    const secondReply = await client.nextChunk();
    expect(firstReply.cookie).toBe(fast.cookie);
    expect(secondReply.cookie).toBe(slow.cookie);
  });

  it('reports damaged data as EIO with the offset inside the request', async () => {
    served.newer.failAt = 2 * BLOCK + 5;
    const client = await attach('vm1/latest/sda', { structured: true });
    const r = req(NBD_CMD.NBD_CMD_READ, 2 * BLOCK, BLOCK);
    client.send(r);
    const [chunk, ...rest] = await client.structuredReply();
    expect(rest).toHaveLength(0);
    expect(chunk!.type).toBe(NBD_REPLY_TYPE.NBD_REPLY_TYPE_ERROR_OFFSET);
    expect(decodeErrorPayload(chunk!.type, chunk!.payload)).toMatchObject({ error: NBD_ERROR.NBD_EIO, offset: 2 * BLOCK + 5 });
  });
});

describe('NBD server against hostile clients', () => {
  it('drops a client with a bad request magic and keeps serving others', async () => {
    const bad = await attach('vm1/latest/sda');
    bad.socket.write(Buffer.alloc(28, 0x42));
    await bad.closed;
    const good = await attach('vm1/latest/sda');
    const r = req(NBD_CMD.NBD_CMD_READ, 0, 16);
    good.send(r);
    expect((await good.nextChunk(16)).payload.every((b) => b === 0xaa)).toBe(true);
  });

  it('hangs up on a write payload over 32 MiB', async () => {
    const client = await attach('vm1/latest/sda');
    client.send(req(NBD_CMD.NBD_CMD_WRITE, 0, 0xffffffff));
    await client.closed;
    expect(served.logs.some((l) => l.level === 'warn' && /protocol violation/.test(l.msg ?? ''))).toBe(true);
  });

  it('survives truncated requests and abrupt disconnects with reads in flight', async () => {
    served.newer.delayFor = () => 100;
    for (let i = 0; i < 3; i++) {
      const client = await attach('vm1/latest/sda', { structured: true });
      for (let j = 0; j < 8; j++) client.send(req(NBD_CMD.NBD_CMD_READ, j * BLOCK, BLOCK));
      client.socket.write(encodeRequest(req(NBD_CMD.NBD_CMD_READ, 0, 4096)).subarray(0, 13));
      client.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    await expect.poll(() => served.server.connectionCount, { timeout: 5000 }).toBe(0);
    const good = await attach('vm1/latest/sda');
    const r = req(NBD_CMD.NBD_CMD_READ, 0, 4);
    good.send(r);
    expect((await good.nextChunk(4)).error).toBe(0);
  });

  it('releases every connection and every in-flight byte after hundreds of abrupt disconnects', async () => {
    served.newer.delayFor = (offset) => (offset % (2 * BLOCK) === 0 ? 5 : 0);
    for (let round = 0; round < 50; round++) {
      // This suite's server admits 4 clients: wait for the previous batch to be gone.
      await expect.poll(() => served.server.connectionCount, { timeout: 5000, interval: 5 }).toBe(0);
      const batch = await Promise.all(Array.from({ length: 4 }, () => attach('vm1/latest/sda', { structured: round % 2 === 0 })));
      for (const client of batch) {
        for (let j = 0; j < 16; j++) client.send(req(NBD_CMD.NBD_CMD_READ, (j % 16) * BLOCK, BLOCK));
        client.close();
      }
      clients = [];
    }
    await expect.poll(() => served.server.connectionCount, { timeout: 10_000 }).toBe(0);
    expect(served.server.inFlightBytes).toBe(0);
  });

  it('refuses clients beyond the connection limit with a clear log line once every slot is attached', async () => {
    const attached = await Promise.all(Array.from({ length: 4 }, () => attach('vm1/latest/sda')));
    const late = [];
    for (let i = 0; i < 2; i++) late.push(await RawNbdClient.connect(served.socketPath));
    clients.push(...late);
    await Promise.all(late.map((s) => s.closed));
    expect(served.server.connectionCount).toBe(4);
    expect(served.logs.some((l) => l.level === 'warn' && /connection limit \(4\) reached/.test(l.msg ?? ''))).toBe(true);
    // The attached clients were not touched.
    for (const client of attached) {
      const r = req(NBD_CMD.NBD_CMD_READ, 0, 4);
      client.send(r);
      expect((await client.nextChunk(4)).error).toBe(0);
    }
  });

  it('answers in-flight reads before shutting down, then closes', async () => {
    served.newer.delayFor = () => 200;
    const client = await attach('vm1/latest/sda');
    const r = req(NBD_CMD.NBD_CMD_READ, 0, 1024);
    client.send(r);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closing = served.server.close();
    const reply = await client.nextChunk(1024);
    expect(reply).toMatchObject({ cookie: r.cookie, error: 0 });
    await client.closed;
    await closing;
  });

  it('ends the session on NBD_CMD_DISC after answering what was in flight', async () => {
    served.newer.delayFor = () => 100;
    const client = await attach('vm1/latest/sda');
    const r = req(NBD_CMD.NBD_CMD_READ, 0, 512);
    client.socket.write(Buffer.concat([encodeRequest(r), encodeRequest(req(NBD_CMD.NBD_CMD_DISC, 0, 0))]));
    expect((await client.nextChunk(512)).cookie).toBe(r.cookie);
    await client.closed;
  });
});

describe('NBD server against a client that stops reading', () => {
  it('drops it after the write stall timeout and frees its budget', async () => {
    const own = await serveMemoryCatalog({ writeStallTimeoutMs: 300 });
    try {
      const client = await RawNbdClient.connect(own.socketPath);
      await client.handshake();
      await client.option(NBD_OPT.NBD_OPT_GO, encodeInfoRequest({ exportName: 'vm1/latest/sda', infos: [] }));
      client.socket.pause();
      client.queue.end(); // stop consuming entirely
      client.socket.removeAllListeners('data');
      for (let i = 0; i < 64; i++) client.send(req(NBD_CMD.NBD_CMD_READ, 0, DISK_SIZE));
      // The paused client cannot see the close itself; the server's log and counters show it.
      await expect.poll(() => own.logs.some((l) => /stopped reading replies/.test(l.msg ?? '')), { timeout: 5000 }).toBe(true);
      await expect.poll(() => own.server.connectionCount, { timeout: 5000 }).toBe(0);
      await expect.poll(() => own.server.inFlightBytes, { timeout: 5000 }).toBe(0);
      client.close();
    } finally {
      await own.dispose();
    }
  });
});
