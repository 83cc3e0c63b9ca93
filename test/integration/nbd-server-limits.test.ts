import { execFile } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { NBD_CMD, NBD_OPT, NBD_REP, encodeInfoRequest, encodeRequest, type NbdRequest } from '../../src/nbd/protocol/index.js';
import { DISK_SIZE, olderDisk, serveMemoryCatalog, type Served } from '../unit/nbd/server/fixture.js';
import { RawNbdClient } from '../unit/nbd/server/raw-client.js';

// The server's own bounds against hostile clients, measured through its getters, with real clients
// (nbdinfo) on other connections proving that good clients are not locked out meanwhile.
const EXPORT = 'vm1/latest/sda';
const MiB = 1024 * 1024;

let served: Served | undefined;
const clients: RawNbdClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await served?.dispose();
  served = undefined;
});

function nbdinfo(socketPath: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    execFile('nbdinfo', [...args, `nbd+unix:///${EXPORT}?socket=${socketPath}`], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code === 'string') return reject(err); // a missing nbdinfo fails the test
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, ms: Date.now() - started });
    });
  });
}

async function attach(where: string | { host: string; port: number; localAddress: string }, structured = false): Promise<RawNbdClient> {
  const client = await RawNbdClient.connect(where);
  clients.push(client);
  await client.handshake();
  if (structured) expect((await client.option(NBD_OPT.NBD_OPT_STRUCTURED_REPLY))[0]!.type).toBe(NBD_REP.NBD_REP_ACK);
  const go = await client.option(NBD_OPT.NBD_OPT_GO, encodeInfoRequest({ exportName: EXPORT, infos: [] }));
  expect(go[go.length - 1]!.type).toBe(NBD_REP.NBD_REP_ACK);
  return client;
}

async function readWorks(client: RawNbdClient, cookie: bigint): Promise<void> {
  const r: NbdRequest = { type: NBD_CMD.NBD_CMD_READ, flags: 0, cookie, offset: 0, length: 512 };
  client.send(r);
  const reply = await client.nextChunk(512);
  expect(reply).toMatchObject({ cookie, error: 0 });
  expect(reply.payload.equals(olderDisk().subarray(0, 512))).toBe(true);
}

/** The client keeps its socket open but never reads another byte. */
function stopReading(client: RawNbdClient): void {
  client.socket.pause();
  client.queue.end();
  client.socket.removeAllListeners('data');
}

describe('NBD server against a client that floods requests and never reads replies', () => {
  it('stops reading it at its in-flight bounds, queues little, and keeps serving others', async () => {
    served = await serveMemoryCatalog();
    const server = served.server;
    const flooder = await attach(served.socketPath, true);
    stopReading(flooder);
    // 200 000 reads of 64 MiB on a 1 MiB export: each one is refused with an error chunk.
    const bad = encodeRequest({ type: NBD_CMD.NBD_CMD_READ, flags: 0, cookie: 1n, offset: 0, length: 64 * MiB });
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => bad));
    for (let i = 0; i < 200; i++) flooder.socket.write(batch);
    const sent = 200 * batch.length;

    // Sample what the server holds while it works through what it accepts.
    let maxQueued = 0;
    let maxRequests = 0;
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      maxQueued = Math.max(maxQueued, server.queuedReplyBytes);
      maxRequests = Math.max(maxRequests, server.inFlightRequests);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // 256 requests in flight (the default) and their ~90-byte error chunks on top of the socket's
    // own 16 KiB; without the bound the server took every request and queued every reply (~17 MB).
    expect(maxRequests).toBeLessThanOrEqual(256);
    expect(maxQueued).toBeLessThan(256 * 1024);
    expect(server.inFlightBytes).toBeLessThanOrEqual(256 * 4096);
    // Back-pressure reached the flooder: most of what it wrote is still in its own socket.
    expect(flooder.socket.writableLength).toBeGreaterThan(sent / 2);

    // A good client on another connection: a real one, then a raw read.
    const info = await nbdinfo(served.socketPath, '--size');
    expect(info.code, info.stderr).toBe(0);
    expect(Number(info.stdout.trim())).toBe(DISK_SIZE);
    await readWorks(await attach(served.socketPath), 7n);

    flooder.close();
    await expect.poll(() => server.inFlightRequests, { timeout: 10_000 }).toBe(0);
    await expect.poll(() => server.inFlightBytes, { timeout: 10_000 }).toBe(0);
  });
});

describe('NBD server connection slots', () => {
  it('drops the oldest unfinished handshakes so a real client gets in at once among many idle connections', async () => {
    served = await serveMemoryCatalog({ maxConnections: 8, negotiationTimeoutMs: 60_000 });
    const idle: RawNbdClient[] = [];
    for (let i = 0; i < 40; i++) idle.push(await RawNbdClient.connect(served.socketPath));
    clients.push(...idle);
    // The first 32 made room for the later ones; the newest 8 hold every slot.
    await Promise.all(idle.slice(0, 32).map((c) => c.closed));
    await expect.poll(() => served!.server.connectionCount).toBe(8);

    const info = await nbdinfo(served.socketPath, '--size');
    expect(info.code, info.stderr).toBe(0);
    expect(Number(info.stdout.trim())).toBe(DISK_SIZE);
    expect(info.ms).toBeLessThan(10_000); // far below the handshake timeout, which is what freed slots before
    expect(served.logs.some((l) => l.level === 'warn' && /dropping the oldest connection still in its handshake/.test(l.msg ?? ''))).toBe(
      true,
    );
  });

  it('never drops attached clients for newcomers', async () => {
    served = await serveMemoryCatalog({ maxConnections: 3, negotiationTimeoutMs: 60_000 });
    const attached = await Promise.all([attach(served.socketPath), attach(served.socketPath)]);
    const idle = await RawNbdClient.connect(served.socketPath);
    clients.push(idle);
    // Full: the newcomer takes the idle one's slot, and the next one is refused.
    const newcomer = await attach(served.socketPath);
    await idle.closed;
    const refused = await RawNbdClient.connect(served.socketPath);
    clients.push(refused);
    await refused.closed;
    for (const [i, client] of [...attached, newcomer].entries()) await readWorks(client, BigInt(100 + i));
    expect(served.logs.some((l) => l.level === 'warn' && /connection limit \(3\) reached/.test(l.msg ?? ''))).toBe(true);
  });

  it('bounds connections per client address over TCP, so one host cannot take every slot', async () => {
    served = await serveMemoryCatalog({ maxConnections: 8, maxConnectionsPerClient: 2, negotiationTimeoutMs: 60_000 });
    const { port } = (await served.server.listen({ kind: 'tcp', host: '127.0.0.1', port: 0 })) as { port: number };
    const from = (localAddress: string): { host: string; port: number; localAddress: string } => ({
      host: '127.0.0.1',
      port,
      localAddress,
    });
    const greedy = [await attach(from('127.0.0.2')), await attach(from('127.0.0.2'))];
    // Its third connection is refused (both of its slots are attached); another host is served.
    const third = await RawNbdClient.connect(from('127.0.0.2'));
    clients.push(third);
    await third.closed;
    expect(served.logs.some((l) => l.level === 'warn' && /127\.0\.0\.2 holds 2 connections/.test(l.msg ?? ''))).toBe(true);
    await readWorks(await attach(from('127.0.0.3')), 1n);
    // A host's idle handshake gives way to its own newcomer, not to anyone else's connection.
    const idle = await RawNbdClient.connect(from('127.0.0.4'));
    clients.push(idle);
    const other = await attach(from('127.0.0.4'));
    const newcomer = await attach(from('127.0.0.4'));
    await idle.closed;
    await readWorks(other, 2n);
    await readWorks(newcomer, 3n);
    for (const [i, client] of greedy.entries()) await readWorks(client, BigInt(10 + i));
  });
});
