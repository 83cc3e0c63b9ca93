// Pull backups from NBD servers that are not a running VM: qemu-nbd exporting a qcow2 persistent
// bitmap (-B), and nbdkit (memory, sparse-random) for a server that is not QEMU, including Xen-style
// changed-block bitmaps, several connections and a bandwidth cap.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseChangedBlockBitmap, XEN_CBT_BLOCK_SIZE } from '../../src/formats/cbt-bitmap.js';
import { NbdSource } from '../../src/ingest/nbd-source.js';
import { nbdcopyToFile, qemuIo, startNbdkit, startNbdkitTcp, startQemuNbd } from '../helpers/qemu-nbd-peers.js';
import { killAllChildren, run } from '../helpers/qemu-process.js';
import { backupOne, bytesByKind, dirtyRanges, initRepo, insideAny, readPoint, RecordingSource } from '../helpers/qemu-pull-backup.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('NBD pull from qemu-nbd and nbdkit', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pull-peers-'));
  });
  afterEach(async () => {
    await killAllChildren();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('qemu-nbd -B: full, then incremental with a persistent qcow2 bitmap', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await initRepo(repoDir);
    const image = path.join(dir, 'disk.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', image, '16M']);
    await qemuIo(image, 'qcow2', 'write -P 0x31 0 2M', 'write -P 0x32 8M 1M');
    const expected1 = path.join(dir, 'expected1.raw');
    await run('qemu-img', ['convert', '-O', 'raw', image, expected1]);

    let peer = await startQemuNbd(dir, image);
    // qemu-nbd advertises multi-conn on a read-only export but serves one client: extra connections are dropped.
    const full = await NbdSource.open({ uri: peer.uri, connections: 4 });
    const r1 = await backupOne(repo, 'vm', 'sda', full);
    expect((await readPoint(repoDir, 'vm', r1.point, 'sda')).equals(fs.readFileSync(expected1))).toBe(true);
    await peer.child.kill();

    await run('qemu-img', ['bitmap', '--add', image, 'b0']);
    await qemuIo(image, 'qcow2', 'write -P 0x33 1M 64k', 'write -z 8M 512k', 'write -P 0x34 12M 1M');
    const expected2 = path.join(dir, 'expected2.raw');
    await run('qemu-img', ['convert', '-O', 'raw', image, expected2]);

    peer = await startQemuNbd(dir, image, { bitmap: 'b0' });
    const dirty = await dirtyRanges(peer.uri, 'b0');
    await peer.child.kill();
    expect(dirty.reduce((n, [s, e]) => n + e - s, 0)).toBe(64 * KiB + 512 * KiB + MiB);
    peer = await startQemuNbd(dir, image, { bitmap: 'b0' });
    const inc = new RecordingSource(await NbdSource.open({ uri: peer.uri, bitmap: 'b0', bitmapMode: 'reuse' }));
    const r2 = await backupOne(repo, 'vm', 'sda', inc, { base: 'latest' });
    expect((await readPoint(repoDir, 'vm', r2.point, 'sda')).equals(fs.readFileSync(expected2))).toBe(true);
    expect(inc.bytesRead).toBe(64 * KiB + 512 * KiB + MiB);
    for (const e of inc.extentsSeen.filter((x) => x.kind !== 'unchanged')) expect(insideAny(e.offset, e.length, dirty)).toBe(true);
  });

  it('--bitmap-mode new reads the whole disk even with a bitmap named', async () => {
    const repo = await initRepo(path.join(dir, 'repo'));
    const image = path.join(dir, 'disk.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', image, '4M']);
    await run('qemu-img', ['bitmap', '--add', image, 'b0']);
    await qemuIo(image, 'qcow2', 'write -P 0x44 0 1M');
    const peer = await startQemuNbd(dir, image, { bitmap: 'b0' });
    const src = new RecordingSource(await NbdSource.open({ uri: peer.uri, bitmap: 'b0', bitmapMode: 'new' }));
    await backupOne(repo, 'vm', 'sda', src);
    expect(bytesByKind(src.extentsSeen)).toEqual({ data: MiB, zero: 3 * MiB, unchanged: 0 });
  });

  it('nbdkit memory over several connections matches nbdcopy', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await initRepo(repoDir);
    const peer = await startNbdkit(dir, ['memory', '16M']);
    await qemuIo(peer.uri, 'raw', 'write -P 0x41 1M 3M', 'write -P 0x42 10M 64k');
    const expected = path.join(dir, 'expected.raw');
    await nbdcopyToFile(peer.uri, expected);
    const source = await NbdSource.open({ uri: peer.uri, connections: 4, readAheadBytes: 2 * MiB });
    expect(source.connectionCount).toBe(4);
    const rec = new RecordingSource(source);
    const r = await backupOne(repo, 'vm', 'disk0', rec);
    expect((await readPoint(repoDir, 'vm', r.point, 'disk0')).equals(fs.readFileSync(expected))).toBe(true);
    expect(rec.bytesRead).toBe(3 * MiB + 64 * KiB);
  });

  it('nbdkit sparse-random: holes are recorded, never read', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await initRepo(repoDir, 64 * KiB);
    const peer = await startNbdkit(dir, ['sparse-random', '32M', 'seed=7', 'percent=10']);
    const expected = path.join(dir, 'expected.raw');
    await nbdcopyToFile(peer.uri, expected);
    const rec = new RecordingSource(await NbdSource.open({ uri: peer.uri }));
    const r = await backupOne(repo, 'vm', 'disk0', rec);
    expect((await readPoint(repoDir, 'vm', r.point, 'disk0')).equals(fs.readFileSync(expected))).toBe(true);
    const kinds = bytesByKind(rec.extentsSeen);
    expect(kinds.zero).toBeGreaterThan(16 * MiB);
    expect(rec.bytesRead).toBe(kinds.data);
  });

  it('Xen CBT: reads only the blocks the changed-block bitmap marks', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await initRepo(repoDir);
    const peer = await startNbdkit(dir, ['memory', '8M']);
    await qemuIo(peer.uri, 'raw', 'write -P 0x51 0 8M');
    const r1 = await backupOne(repo, 'xvm', 'xvda', await NbdSource.open({ uri: peer.uri }));

    // Change blocks 3, 17 and 100 (64 KiB each); 17 is zeroed. Bit n is in byte n/8 from the LSB.
    await qemuIo(
      peer.uri,
      'raw',
      `write -P 0x52 ${3 * XEN_CBT_BLOCK_SIZE} 64k`,
      `write -z ${17 * XEN_CBT_BLOCK_SIZE} 64k`,
      `write -P 0x53 ${100 * XEN_CBT_BLOCK_SIZE} 64k`,
    );
    const bits = Buffer.alloc((8 * MiB) / XEN_CBT_BLOCK_SIZE / 8);
    for (const n of [3, 17, 100]) bits[n >> 3]! |= 1 << (n & 7);
    const cbtFile = path.join(dir, 'cbt.b64');
    fs.writeFileSync(cbtFile, bits.toString('base64'));
    const changedBlocks = parseChangedBlockBitmap(fs.readFileSync(cbtFile));
    const expected = path.join(dir, 'expected.raw');
    await nbdcopyToFile(peer.uri, expected);

    const rec = new RecordingSource(await NbdSource.open({ uri: peer.uri }));
    const r2 = await backupOne(repo, 'xvm', 'xvda', rec, { base: 'latest', changedBlocks });
    expect(r2.parent).toBe(r1.point);
    expect((await readPoint(repoDir, 'xvm', r2.point, 'xvda')).equals(fs.readFileSync(expected))).toBe(true);
    const changed = [3, 17, 100].map((n) => [n * XEN_CBT_BLOCK_SIZE, (n + 1) * XEN_CBT_BLOCK_SIZE] as [number, number]);
    for (const e of rec.extentsSeen.filter((x) => x.kind !== 'unchanged')) expect(insideAny(e.offset, e.length, changed)).toBe(true);
    // The zeroed block is known from base:allocation, so only two blocks were read.
    expect(rec.bytesRead).toBe(2 * XEN_CBT_BLOCK_SIZE);
  });

  it('nbd://HOST:PORT/ over TCP', async () => {
    const repoDir = path.join(dir, 'repo');
    const repo = await initRepo(repoDir);
    const peer = await startNbdkitTcp(['memory', '4M']);
    await qemuIo(peer.uri, 'raw', 'write -P 0x71 512k 1M');
    const expected = path.join(dir, 'expected.raw');
    await nbdcopyToFile(peer.uri, expected);
    const source = await NbdSource.open({ uri: peer.uri });
    expect(source.description).toBe(`nbd nbd://127.0.0.1:${peer.port}/`);
    const r = await backupOne(repo, 'vm', 'd', source);
    expect((await readPoint(repoDir, 'vm', r.point, 'd')).equals(fs.readFileSync(expected))).toBe(true);
  });

  it('--bwlimit caps the read rate', async () => {
    const repo = await initRepo(path.join(dir, 'repo'));
    const peer = await startNbdkit(dir, ['memory', '16M']);
    await qemuIo(peer.uri, 'raw', 'write -P 0x61 0 16M');
    const started = Date.now();
    await backupOne(repo, 'vm', 'd', await NbdSource.open({ uri: peer.uri, bwlimitBytesPerSec: 8 * MiB }));
    // One second of burst, then 8 MiB more at 8 MiB/s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});
