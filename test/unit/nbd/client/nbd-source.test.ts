// NbdSource against the in-test server playing a snapshot-access export: reads and allocation
// queries outside the dirty extents fail there, so the source must never send them.
import { afterEach, describe, expect, it } from 'vitest';
import type { Extent } from '../../../../src/core/extent.js';
import { NbdSource } from '../../../../src/ingest/nbd-source.js';
import { NBD_CMD, NBD_ERROR, encodeErrorChunk } from '../../../../src/nbd/protocol/index.js';
import { DONE, startFakeServer, type FakeServer } from './misbehaving-server.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const disk = Buffer.alloc(4 * MiB);
for (let i = 0; i < disk.length; i += 4) disk.writeUInt32BE(i, i);
/** Dirty areas of bitmap "b": [offset, end). */
const dirty: Array<[number, number]> = [
  [64 * KiB, 128 * KiB],
  [1 * MiB - 64 * KiB, 1 * MiB + 64 * KiB],
  [3 * MiB, 3 * MiB + 320 * KiB],
];
const inDirty = (o: number, l: number) => dirty.some(([s, e]) => o >= s && o + l <= e);

function dirtyStatus(req: { offset: number; length: number }): Array<{ length: number; flags: number }> {
  const out: Array<{ length: number; flags: number }> = [];
  let at = req.offset;
  const end = req.offset + req.length;
  while (at < end) {
    const d = dirty.find(([s, e]) => at >= s && at < e);
    const next = d ? d[1] : Math.min(end, ...dirty.map(([s]) => s).filter((s) => s > at), disk.length);
    out.push({ length: Math.min(next, end) - at, flags: d ? 1 : 0 });
    at = Math.min(next, end);
  }
  return out;
}

let server: FakeServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function drain(source: NbdSource, plan: Parameters<NbdSource['extents']>[0]): Promise<Extent[]> {
  const out: Extent[] = [];
  for await (const e of source.extents(plan)) {
    out.push(e);
    await source.acknowledgeStored(e.offset, e.length);
  }
  return out;
}

describe('NbdSource', () => {
  it('incremental: reads only dirty extents and never asks base:allocation', async () => {
    server = await startFakeServer({
      disk,
      contexts: { 'base:allocation': 1, 'qemu:dirty-bitmap:b': 2 },
      status: (req) => dirtyStatus(req),
      onRequest: (req, sock) => {
        if (req.type === NBD_CMD.NBD_CMD_READ && !inDirty(req.offset, req.length)) {
          sock.write(encodeErrorChunk(req.cookie, DONE, NBD_ERROR.NBD_EINVAL, 'outside the snapshot-access area'));
          return true;
        }
        return false;
      },
    });
    const source = await NbdSource.open({ uri: server.uri, bitmap: 'b', discardAfterRead: true });
    const extents = await drain(source, { chunkSize: 256 * KiB, hasBase: true, baseSize: disk.length });
    await source.close();

    // The stream covers the disk without gaps, in order; data matches the disk.
    let at = 0;
    for (const e of extents) {
      expect(e.offset).toBe(at);
      at += e.length;
      if (e.kind === 'data') expect(e.data!.equals(disk.subarray(e.offset, e.offset + e.length))).toBe(true);
      else expect(e.kind).toBe('unchanged');
      if (e.kind === 'data') expect(inDirty(e.offset, e.length)).toBe(true);
    }
    expect(at).toBe(disk.length);
    const dirtyBytes = dirty.reduce((n, [s, e]) => n + e - s, 0);
    expect(source.bytesRead).toBe(dirtyBytes);

    const reads = server.requests.filter((r) => r.type === NBD_CMD.NBD_CMD_READ);
    expect(reads.every((r) => inDirty(r.offset, r.length))).toBe(true);
    // Trims cover exactly what was read, nothing else.
    const trims = server.requests.filter((r) => r.type === NBD_CMD.NBD_CMD_TRIM);
    expect(trims.every((r) => inDirty(r.offset, r.length))).toBe(true);
    expect(trims.reduce((n, r) => n + r.length, 0)).toBe(dirtyBytes);
    // The read chunks never cross a repository chunk boundary.
    expect(reads.every((r) => Math.floor(r.offset / (256 * KiB)) === Math.floor((r.offset + r.length - 1) / (256 * KiB)))).toBe(true);
  });

  it('incremental without a base point fails clearly instead of reading everything', async () => {
    server = await startFakeServer({ disk, contexts: { 'qemu:dirty-bitmap:b': 2 } });
    const source = await NbdSource.open({ uri: server.uri, bitmap: 'b' });
    await expect(drain(source, { chunkSize: MiB, hasBase: false })).rejects.toMatchObject({
      code: 'ERR_NOT_FOUND',
      message: expect.stringMatching(/needs a base point/),
    });
    await source.close();
    expect(server.requests.filter((r) => r.type === NBD_CMD.NBD_CMD_READ)).toEqual([]);
  });

  it('full: zero extents from base:allocation are recorded, not read', async () => {
    server = await startFakeServer({
      disk,
      status: (req) => [{ length: MiB - (req.offset % MiB), flags: req.offset < MiB ? 0 : 3 }],
    });
    const source = await NbdSource.open({ uri: server.uri, bitmapMode: 'none', bitmap: 'ignored' });
    const extents = await drain(source, { chunkSize: MiB, hasBase: false });
    await source.close();
    expect(extents.map((e) => [e.offset, e.length, e.kind])).toEqual([
      [0, MiB, 'data'],
      [MiB, MiB, 'zero'],
      [2 * MiB, MiB, 'zero'],
      [3 * MiB, MiB, 'zero'],
    ]);
    expect(source.bytesRead).toBe(MiB);
  });

  it('refuses --bitmap-mode reuse without a bitmap and unknown modes', async () => {
    await expect(NbdSource.open({ uri: 'nbd://h/x', bitmapMode: 'reuse' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(NbdSource.open({ uri: 'nbd://h/x', bitmapMode: 'sometimes' as never })).rejects.toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
  });

  it('keeps Xen session tokens out of the description', async () => {
    server = await startFakeServer({ disk, exportName: '/abc?session_id=OpaqueRef:secret' });
    const socketPath = server.uri.slice(server.uri.indexOf('?socket=') + 8);
    const uri = `nbd+unix:///%2Fabc%3Fsession_id%3DOpaqueRef%3Asecret?socket=${socketPath}`;
    const source = await NbdSource.open({ uri });
    expect(source.description).toContain('session_id%3D***');
    expect(source.description).not.toContain('secret');
    await source.close();
    const err = await NbdSource.open({ uri: uri.replace('abc', 'nope') }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'ERR_NOT_FOUND' });
    expect(String((err as Error).message) + JSON.stringify((err as unknown as { context: unknown }).context)).not.toContain('secret');
  });
});
