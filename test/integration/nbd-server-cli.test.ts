import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  NBD_CMD,
  NBD_OPT,
  NBD_REP,
  NBD_SIZE,
  NbdByteQueue,
  decodeSimpleReply,
  encodeClientFlags,
  encodeInfoRequest,
  encodeOption,
  encodeRequest,
} from '../../src/nbd/protocol/index.js';
import { CAIRN, cairn, canConnect, nbdUri, run, serveIsRegistered, startServe, waitFor, type ServeProcess } from './nbd-server-harness.js';

// `cairn serve` as a process: addresses, the loopback rule, the connection limit, hostile clients and
// partition exports, on a small repository made with the real CLI.
let dir: string;
let repo: string;
let image: string;
const servers: ServeProcess[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cairn-nbd-cli-'));
  repo = join(dir, 'repo');
  image = join(dir, 'disk.raw');
  await run('qemu-img', ['create', '-f', 'raw', image, '8M']);
  // GPT with two partitions; p1 holds a pattern.
  const sfdisk = await new Promise<number>((resolve) => {
    const child = spawn('sfdisk', ['-q', image], { stdio: ['pipe', 'ignore', 'inherit'] });
    child.stdin!.end('label: gpt\nstart=2048, size=4096, type=L\nstart=8192, size=6144, type=L\n');
    child.once('exit', (code) => resolve(code ?? 1));
  });
  expect(sfdisk).toBe(0);
  expect((await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x6b 1M 2M', image])).code).toBe(0);
  await cairn(['init', '--repo', repo, '--chunk-size', '64KiB']);
  await cairn(['backup', '--repo', repo, '--vm', 'web', '--disk', `vda=${image}`]);
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) {
    if (s.child.exitCode === null) {
      s.child.kill('SIGKILL');
      await s.exited;
    }
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function serveOn(args: string[], ready: (s: ServeProcess) => Promise<boolean>): Promise<ServeProcess> {
  const s = await startServe(['--repo', repo, ...args]);
  servers.push(s);
  await waitFor('cairn serve to listen', async () => {
    if (s.child.exitCode !== null) throw new Error(`cairn serve exited: ${s.stderr()}`);
    return ready(s);
  });
  return s;
}

function boundAddresses(s: ServeProcess): string[] {
  for (const line of s.stderr().split('\n')) {
    if (!line.includes('serving restore points over NBD')) continue;
    return (JSON.parse(line) as { addresses: string[] }).addresses;
  }
  return [];
}

function rawConnect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    sockets.push(s);
    s.on('error', () => undefined);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** rawConnect, retried while the listen backlog is full (EAGAIN), within a deadline. */
async function connectRetrying(path: string): Promise<Socket> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await rawConnect(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Handshake plus GO (simple replies) on a raw socket, for sending hand-made requests afterwards. */
async function rawAttach(path: string, exportName: string): Promise<{ socket: Socket; queue: NbdByteQueue }> {
  const socket = await rawConnect(path);
  const queue = NbdByteQueue.fromStream(socket);
  await queue.read(NBD_SIZE.SERVER_GREETING);
  socket.write(encodeClientFlags(3));
  socket.write(encodeOption(NBD_OPT.NBD_OPT_GO, encodeInfoRequest({ exportName, infos: [] })));
  for (;;) {
    const header = await queue.read(NBD_SIZE.OPTION_REPLY_HEADER);
    await queue.read(header.readUInt32BE(16));
    if (header.readUInt32BE(12) === NBD_REP.NBD_REP_ACK) return { socket, queue };
    if (header.readUInt32BE(12) & 0x80000000) throw new Error('GO refused');
  }
}

describe('cairn serve (process)', () => {
  it('is registered in the CLI', async () => {
    expect(await serveIsRegistered()).toBe(true);
  });

  it('refuses a non-loopback address without --listen-any, with one clear line', async () => {
    const r = await run(process.execPath, [CAIRN, 'serve', '--repo', repo, '--nbd', 'tcp://0.0.0.0:0']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--listen-any/);
  });

  it('listens on TCP and a Unix socket at once; qemu-img reads through both', async () => {
    const sock = join(dir, 'both.sock');
    const s = await serveOn(['--nbd', 'tcp://127.0.0.1:0', '--nbd', `unix:${sock}`], async (p) => boundAddresses(p).length === 2);
    const tcp = boundAddresses(s).find((a) => a.startsWith('tcp://'))!;
    const port = Number(/:(\d+)$/.exec(tcp)![1]);
    expect(port).toBeGreaterThan(0);
    const viaTcp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', image, `nbd://127.0.0.1:${port}/web/latest/vda`]);
    expect(viaTcp.code, viaTcp.stderr).toBe(0);
    const viaUnix = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', image, nbdUri(sock, 'web/latest/vda')]);
    expect(viaUnix.code, viaUnix.stderr).toBe(0);
  });

  it('serves partitions as VM/POINT/DISK/pN', async () => {
    const sock = join(dir, 'part.sock');
    await serveOn(['--nbd', `unix:${sock}`], () => canConnect(sock));
    const out = join(dir, 'p1.raw');
    const r = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', nbdUri(sock, 'web/latest/vda/p1'), out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out).equals(readFileSync(image).subarray(1024 * 1024, 3 * 1024 * 1024))).toBe(true);
  });

  it('keeps a slot for a real client among thousands of idle connections beyond --max-connections', async () => {
    const sock = join(dir, 'limit.sock');
    const s = await serveOn(['--nbd', `unix:${sock}`, '--max-connections', '16'], () => canConnect(sock));
    // In waves: a Unix socket's listen backlog answers EAGAIN (not a retry) when a loaded server
    // accepts slower than 2000 simultaneous connects arrive.
    const idle: Socket[] = [];
    for (let wave = 0; wave < 20; wave++) idle.push(...(await Promise.all(Array.from({ length: 100 }, () => connectRetrying(sock)))));
    await waitFor('the limit log line', () => /connection limit reached \(16 in all/.test(s.stderr()));
    // The oldest idle handshake makes room at once: no waiting for the handshake timeout (10 s).
    const started = Date.now();
    const admitted = await run('nbdinfo', ['--size', nbdUri(sock, 'web/latest/vda')]);
    expect(admitted.code, admitted.stderr).toBe(0);
    expect(Number(admitted.stdout.trim())).toBe(8 * 1024 * 1024);
    expect(Date.now() - started).toBeLessThan(5000);
    for (const i of idle) i.destroy();
  });

  it('survives malformed and hostile clients, and keeps serving', async () => {
    const sock = join(dir, 'hostile.sock');
    const s = await serveOn(['--nbd', `unix:${sock}`], () => canConnect(sock));
    // Garbage instead of client flags; a truncated option; a bad request magic; an oversized write;
    // a read past the end; a flood of requests then an abrupt disconnect.
    (await rawConnect(sock)).end(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    const truncated = await rawConnect(sock);
    truncated.write(encodeClientFlags(3));
    truncated.end(encodeOption(NBD_OPT.NBD_OPT_GO, encodeInfoRequest({ exportName: 'web/latest/vda', infos: [] })).subarray(0, 20));
    const badMagic = await rawAttach(sock, 'web/latest/vda');
    badMagic.socket.write(Buffer.alloc(28, 0xff));
    const oversized = await rawAttach(sock, 'web/latest/vda');
    oversized.socket.write(encodeRequest({ type: NBD_CMD.NBD_CMD_WRITE, flags: 0, cookie: 1n, offset: 0, length: 0x7fffffff }));
    const pastEnd = await rawAttach(sock, 'web/latest/vda');
    pastEnd.socket.write(encodeRequest({ type: NBD_CMD.NBD_CMD_READ, flags: 0, cookie: 7n, offset: 8 * 1024 * 1024 - 512, length: 1024 }));
    expect(decodeSimpleReply(await pastEnd.queue.read(16))).toEqual({ error: 22, cookie: 7n });
    const flood = await rawAttach(sock, 'web/latest/vda');
    for (let i = 0; i < 2000; i++) {
      flood.socket.write(
        encodeRequest({ type: NBD_CMD.NBD_CMD_READ, flags: 0, cookie: BigInt(i), offset: (i % 128) * 65536, length: 65536 }),
      );
    }
    flood.socket.destroy();
    await waitFor('hostile sockets closed', () => badMagic.socket.destroyed || badMagic.socket.readableEnded);
    const r = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', image, nbdUri(sock, 'web/latest/vda')]);
    expect(r.code, r.stderr).toBe(0);
    expect(s.child.exitCode).toBeNull();
    expect(s.stderr()).toMatch(/protocol violation/);
  });

  it('names the damage when an export cannot be opened: qemu prints it, libnbd logs it, healthy exports go on', async () => {
    const point = JSON.parse((await cairn(['backup', '--repo', repo, '--vm', 'broken', '--disk', `vda=${image}`, '--json'])).stdout) as {
      point: string;
    };
    // One flipped byte in the index's first digest: the manifest's digest of the index no longer matches.
    const index = join(repo, 'vms', 'broken', point.point, 'vda.cidx');
    const bytes = readFileSync(index);
    bytes.writeUInt8(bytes.readUInt8(40) ^ 0xff, 40);
    writeFileSync(index, bytes);
    const sock = join(dir, 'damaged.sock');
    const s = await serveOn(['--nbd', `unix:${sock}`], () => canConnect(sock));

    const qemu = await run('qemu-img', ['info', nbdUri(sock, 'broken/latest/vda')]);
    expect(qemu.code).not.toBe(0);
    // ERR_PLATFORM, sent before, read to qemu as a server too old for NBD_OPT_GO.
    expect(qemu.stderr).not.toMatch(/lacks support/);
    expect(qemu.stderr).toMatch(/server reported: export 'broken\/latest\/vda' cannot be served: index .*vda\.cidx is damaged/);
    const libnbd = await run('nbdinfo', [nbdUri(sock, 'broken/latest/vda')], { env: { ...process.env, LIBNBD_DEBUG: '1' } });
    expect(libnbd.code).not.toBe(0);
    expect(libnbd.stderr).toMatch(/server error message: export 'broken\/latest\/vda' cannot be served: index .*is damaged/);
    // A missing export is still told apart: ERR_UNKNOWN, which libnbd words as a missing name.
    const missing = await run('nbdinfo', [nbdUri(sock, 'broken/latest/nope')]);
    expect(missing.stderr).not.toMatch(/damaged/);
    expect(s.stderr()).toMatch(/NBD export could not be opened/);
    const healthy = await run('nbdinfo', ['--size', nbdUri(sock, 'web/latest/vda')]);
    expect(healthy.code, healthy.stderr).toBe(0);
  });

  it('says in one line why it cannot listen: a missing directory, an address in use, a real permission problem', async () => {
    const serveOnce = (args: string[], prefix: string[] = []): Promise<{ code: number; stderr: string }> =>
      run(prefix[0] ?? process.execPath, [
        ...prefix.slice(1),
        ...(prefix.length > 0 ? [process.execPath] : []),
        CAIRN,
        'serve',
        '--repo',
        repo,
        ...args,
      ]);
    const lines = (text: string): string[] => text.trim().split('\n');

    const missing = await serveOnce(['--nbd', `unix:${join(dir, 'no-such-dir', 's.sock')}`]);
    expect(missing.code).toBe(3); // ERR_NOT_FOUND, not the EACCES libuv reports
    expect(lines(missing.stderr)).toEqual([
      `cairn: cannot listen on unix:${join(dir, 'no-such-dir', 's.sock')}: directory ${join(dir, 'no-such-dir')} does not exist`,
    ]);

    const first = await serveOn(['--nbd', 'tcp://127.0.0.1:0'], async (p) => boundAddresses(p).length === 1);
    const taken = boundAddresses(first)[0]!;
    const inUse = await serveOnce(['--nbd', taken]);
    expect(inUse.code).toBe(2);
    expect(lines(inUse.stderr)).toEqual([
      `cairn: cannot listen on ${taken}: the address is already in use (another server is listening there)`,
    ]);

    // As nobody, in a directory only root may write to; repositories are private, so open this one to all.
    chmodSync(dir, 0o755);
    execFileSync('chmod', ['-R', 'a+rX', repo]);
    const privateDir = join(dir, 'private');
    mkdirSync(privateDir, { mode: 0o700 });
    const denied = await serveOnce(
      ['--nbd', `unix:${join(privateDir, 's.sock')}`],
      ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
    );
    expect(denied.code).toBe(2);
    expect(lines(denied.stderr)).toEqual([
      `cairn: cannot listen on unix:${join(privateDir, 's.sock')}: permission denied creating a socket in ${privateDir}`,
    ]);
  });

  it('stops on SIGINT with exit code 0', async () => {
    const sock = join(dir, 'int.sock');
    const s = await serveOn(['--nbd', `unix:${sock}`], () => canConnect(sock));
    s.child.kill('SIGINT');
    expect(await s.exited).toBe(0);
    expect(await canConnect(sock)).toBe(false);
  });
});
