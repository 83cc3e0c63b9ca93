// A broken or hostile NBD server never corrupts the repository: EIO replies, stalls and dropped
// connections come from real nbdkit (error and delay filters, killing it); replies that contradict the
// export size and short reads come from the MISBEHAVING in-test server (no real server sends them).
// Each failure must fail the backup with a clear message, leave no partial point, keep the base intact.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NbdSource } from '../../src/ingest/nbd-source.js';
import { NBD_CMD, encodeOffsetDataHeader } from '../../src/nbd/protocol/index.js';
import type { Repository } from '../../src/store/repository.js';
import { nbdcopyToFile, startNbdkit } from '../helpers/qemu-nbd-peers.js';
import { killAllChildren } from '../helpers/qemu-process.js';
import { backupOne, initRepo, readPoint, RecordingSource } from '../helpers/qemu-pull-backup.js';
import { DONE, startFakeServer, type FakeServer } from '../unit/nbd/client/misbehaving-server.js';

const MiB = 1024 * 1024;

describe('NBD pull faults', () => {
  let dir: string;
  let repoDir: string;
  let repo: Repository;
  let fake: FakeServer | undefined;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pull-faults-'));
    repoDir = path.join(dir, 'repo');
    repo = await initRepo(repoDir);
  });
  afterEach(async () => {
    await killAllChildren();
    await fake?.close();
    fake = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A first, healthy point of vm/d from nbdkit pattern (whose bytes are known). */
  async function basePoint(): Promise<{ point: string; bytes: Buffer }> {
    const peer = await startNbdkit(dir, ['pattern', '8M']);
    const expected = path.join(dir, 'base.raw');
    await nbdcopyToFile(peer.uri, expected);
    const r = await backupOne(repo, 'vm', 'd', await NbdSource.open({ uri: peer.uri }));
    await peer.child.kill();
    return { point: r.point, bytes: fs.readFileSync(expected) };
  }

  async function expectRepositoryUnchanged(base: { point: string; bytes: Buffer } | undefined): Promise<void> {
    expect(await repo.listPointIds('vm')).toEqual(base ? [base.point] : []);
    expect(await repo.listLeftovers()).toEqual([]);
    if (base) expect((await readPoint(repoDir, 'vm', base.point, 'd')).equals(base.bytes)).toBe(true);
  }

  it('an NBD error reply (nbdkit error filter, EIO) in the middle of a pull', async () => {
    const base = await basePoint();
    const trigger = path.join(dir, 'fail-now');
    const peer = await startNbdkit(
      dir,
      ['pattern', '8M', 'error-pread=EIO', 'error-pread-rate=100%', `error-pread-file=${trigger}`],
      ['error'],
    );
    const src = new RecordingSource(await NbdSource.open({ uri: peer.uri, readAheadBytes: 256 * 1024 }), async () => {
      fs.writeFileSync(trigger, '');
    });
    await expect(backupOne(repo, 'vm', 'd', src, { base: 'latest' })).rejects.toMatchObject({
      code: 'ERR_NBD_REMOTE',
      message: expect.stringMatching(/failed NBD_CMD_READ at offset \d+.*NBD_EIO/),
    });
    await expectRepositoryUnchanged(base);
  });

  it('a server that stalls (nbdkit delay filter) times out', async () => {
    const base = await basePoint();
    const peer = await startNbdkit(dir, ['pattern', '8M', 'delay-read=30'], ['delay']);
    const started = Date.now();
    const src = await NbdSource.open({ uri: peer.uri, requestTimeoutMs: 400 });
    await expect(backupOne(repo, 'vm', 'd', src, { base: 'latest' })).rejects.toMatchObject({
      code: 'ERR_TIMEOUT',
      message: expect.stringMatching(/stalled: no reply for 400 ms/),
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    await expectRepositoryUnchanged(base);
  });

  it('a dropped connection (nbdkit killed mid-pull)', async () => {
    const base = await basePoint();
    const peer = await startNbdkit(dir, ['pattern', '8M']);
    const src = new RecordingSource(await NbdSource.open({ uri: peer.uri, readAheadBytes: 256 * 1024 }), async () => {
      await peer.child.kill();
    });
    await expect(backupOne(repo, 'vm', 'd', src, { base: 'latest' })).rejects.toMatchObject({
      code: 'ERR_IO',
      message: expect.stringMatching(/dropped the connection/),
    });
    await expectRepositoryUnchanged(base);
  });

  it('a server that is gone before the handshake', async () => {
    await expect(NbdSource.open({ uri: `nbd+unix:///x?socket=${path.join(dir, 'nobody.sock')}` })).rejects.toMatchObject({
      code: 'ERR_IO',
      message: expect.stringMatching(/cannot connect to NBD server unix:/),
    });
  });

  it('a block-status reply that contradicts the export size (misbehaving server)', async () => {
    const base = await basePoint();
    fake = await startFakeServer({
      disk: Buffer.alloc(8 * MiB, 1),
      // Claims the export goes on past its advertised size.
      status: (req) => [{ length: 8 * MiB - req.offset + 64 * 1024, flags: 0 }],
    });
    await expect(backupOne(repo, 'vm', 'd', await NbdSource.open({ uri: fake.uri }), { base: 'latest' })).rejects.toMatchObject({
      code: 'ERR_NBD_PROTOCOL',
      message: expect.stringMatching(/past the export size 8388608/),
    });
    await expectRepositoryUnchanged(base);
  });

  it('a short structured read (misbehaving server)', async () => {
    const base = await basePoint();
    const disk = Buffer.alloc(8 * MiB, 2);
    fake = await startFakeServer({
      disk,
      onRequest: (req, sock) => {
        if (req.type !== NBD_CMD.NBD_CMD_READ || req.offset < 4 * MiB) return false;
        sock.write(encodeOffsetDataHeader(req.cookie, DONE, req.offset, req.length / 2));
        sock.write(disk.subarray(req.offset, req.offset + req.length / 2));
        return true;
      },
    });
    await expect(backupOne(repo, 'vm', 'd', await NbdSource.open({ uri: fake.uri }), { base: 'latest' })).rejects.toMatchObject({
      code: 'ERR_NBD_PROTOCOL',
      message: expect.stringMatching(/short read/),
    });
    await expectRepositoryUnchanged(base);
  });

  it('a first backup that fails leaves no point at all', async () => {
    const peer = await startNbdkit(dir, ['pattern', '8M', 'error-pread=EIO', 'error-pread-rate=100%'], ['error']);
    await expect(backupOne(repo, 'vm', 'd', await NbdSource.open({ uri: peer.uri }))).rejects.toMatchObject({ code: 'ERR_NBD_REMOTE' });
    await expectRepositoryUnchanged(undefined);
  });
});
