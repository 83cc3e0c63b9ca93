import { randomBytes } from 'node:crypto';
import { copyFileSync, openSync, closeSync, writeSync, readSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCairnError } from '../../src/core/errors.js';
import { Repository } from '../../src/store/repository.js';
import { makeTempDir, runCairn } from '../helpers/cairn-cli.js';
import { backupImage, expectBackupRefused, KiB, MiB, pointDigest, qemuRawDigest, sh } from '../helpers/image-backup.js';

// qcow2 images made by qemu-img and qemu-io, backed up through Cairn's qcow2 source and compared
// byte for byte with `qemu-img convert -O raw` of the same image (or chain).
const SIZE = 8 * MiB;

let dir: { path: string; cleanup: () => Promise<void> };
let raw: string;
let counter = 0;

/** A fresh 1 MiB-chunk repository. */
async function freshRepo(chunkSize = MiB): Promise<Repository> {
  return Repository.init(join(dir.path, `repo-${counter++}`), chunkSize);
}

const path = (name: string) => join(dir.path, name);

/** Random, text, zeros and a sparse tail: every kind of cluster a converter can write. */
function writeSampleRaw(file: string): void {
  const fd = openSync(file, 'w');
  writeSync(fd, randomBytes(MiB + 3 * KiB), 0, MiB + 3 * KiB, 0);
  writeSync(fd, Buffer.from('cairn qcow2 fixture line\n'.repeat(90_000)), 0, 2 * MiB, 2 * MiB);
  writeSync(fd, randomBytes(300 * KiB), 0, 300 * KiB, 5 * MiB + 7 * 512);
  closeSync(fd);
  truncateSync(file, SIZE);
}

async function expectSameAsQemu(image: string, options: Parameters<typeof backupImage>[3] = {}, chunkSize = MiB) {
  const repo = await freshRepo(chunkSize);
  const result = await backupImage(repo, 'vm', image, options);
  expect(await pointDigest(repo, 'vm', result.point, 'd')).toEqual(await qemuRawDigest(image, dir.path));
  return { repo, result };
}

/** Writes a big-endian u64 into a file (to damage tables). */
function pokeU64(file: string, offset: number, value: bigint): void {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(value);
  const fd = openSync(file, 'r+');
  writeSync(fd, buf, 0, 8, offset);
  closeSync(fd);
}

function peekU64(file: string, offset: number): bigint {
  const buf = Buffer.alloc(8);
  const fd = openSync(file, 'r');
  readSync(fd, buf, 0, 8, offset);
  closeSync(fd);
  return buf.readBigUInt64BE();
}

async function expectRefused(image: string, code: string, pattern: RegExp, options: Parameters<typeof backupImage>[3] = {}) {
  await expectBackupRefused(await freshRepo(), 'vm', image, code, pattern, options);
}

beforeAll(async () => {
  dir = await makeTempDir('cairn-qcow2-');
  raw = path('sample.raw');
  writeSampleRaw(raw);
});

afterAll(() => dir.cleanup());

describe('qcow2 images made by qemu-img', () => {
  for (const compat of ['0.10', '1.1']) {
    for (const cluster of ['512', '4k', '64k', '2M']) {
      it(`compat ${compat}, ${cluster} clusters`, async () => {
        const image = path(`plain-${compat}-${cluster}.qcow2`);
        sh('qemu-img', ['convert', '-O', 'qcow2', '-o', `compat=${compat},cluster_size=${cluster}`, raw, image]);
        const { result } = await expectSameAsQemu(image);
        expect(result.disks[0]!.size).toBe(SIZE);
      });
    }
  }

  for (const [compression, compat] of [
    ['zlib', '0.10'],
    ['zlib', '1.1'],
    ['zstd', '1.1'],
  ] as const) {
    for (const cluster of ['4k', '64k', '2M']) {
      it(`compressed with ${compression} (compat ${compat}), ${cluster} clusters`, async () => {
        const image = path(`comp-${compression}-${compat}-${cluster}.qcow2`);
        const typeOption = compat === '1.1' ? `,compression_type=${compression}` : '';
        sh('qemu-img', ['convert', '-c', '-O', 'qcow2', '-o', `compat=${compat},cluster_size=${cluster}${typeOption}`, raw, image]);
        const { result } = await expectSameAsQemu(image, {}, cluster === '2M' ? 64 * KiB : MiB);
        expect(result.origin?.format).toBe('qcow2');
        if (compression === 'zstd') expect(result.origin?.description).toMatch(/zstd/);
      });
    }
  }

  for (const cluster of ['64k', '2M']) {
    it(`extended L2 entries (subclusters), ${cluster} clusters, with qemu-io writes and zero writes`, async () => {
      const image = path(`ext-${cluster}.qcow2`);
      sh('qemu-img', ['convert', '-O', 'qcow2', '-o', `extended_l2=on,cluster_size=${cluster}`, raw, image]);
      const overlay = path(`ext-${cluster}-top.qcow2`);
      sh('qemu-img', ['create', '-f', 'qcow2', '-o', `extended_l2=on,cluster_size=${cluster}`, '-b', image, '-F', 'qcow2', overlay]);
      sh('qemu-io', ['-c', 'write -P 0x5a 4096 8192', '-c', 'write -z 2200k 96k', '-c', 'write -P 0x11 7000k 3k', overlay]);
      await expectSameAsQemu(image);
      await expectSameAsQemu(overlay);
    });
  }
});

describe('qcow2 backing chains', () => {
  let base: string;
  let mid: string;
  let top: string;

  beforeAll(() => {
    base = path('chain-0.qcow2');
    mid = path('chain-1.qcow2');
    top = path('chain-2.qcow2');
    sh('qemu-img', ['convert', '-O', 'qcow2', raw, base]);
    sh('qemu-img', ['create', '-f', 'qcow2', '-b', 'chain-0.qcow2', '-F', 'qcow2', mid]);
    sh('qemu-io', ['-c', 'write -P 0x21 512k 128k', '-c', 'write -z 2M 1M', '-c', 'write -P 0x22 6M 4k', mid]);
    sh('qemu-img', ['create', '-f', 'qcow2', '-b', 'chain-1.qcow2', '-F', 'qcow2', top]);
    sh('qemu-io', ['-c', 'write -P 0x31 2100k 64k', '-c', 'write -z 5M 64k', '-c', 'write -P 0x32 8388096 512', top]);
  });

  it('reads a chain of three as one flattened disk', async () => {
    const { result } = await expectSameAsQemu(top);
    expect(result.origin?.parent).toBe('chain-1.qcow2');
  });

  it('reads an overlay over a raw backing file', async () => {
    const overlay = path('over-raw.qcow2');
    sh('qemu-img', ['create', '-f', 'qcow2', '-b', raw, '-F', 'raw', overlay]);
    sh('qemu-io', ['-c', 'write -P 0x41 1M 200k', '-c', 'write -z 3M 64k', overlay]);
    await expectSameAsQemu(overlay);
  });

  it('--base latest with overlays (OpenNebula increments): only the overlay clusters are read', async () => {
    const repo = await freshRepo();
    const full = await backupImage(repo, 'one', base);
    expect(await pointDigest(repo, 'one', full.point, 'd')).toEqual(await qemuRawDigest(base, dir.path));
    const first = await backupImage(repo, 'one', mid, { base: 'latest' });
    expect(first.parent).toBe(full.point);
    expect(await pointDigest(repo, 'one', first.point, 'd')).toEqual(await qemuRawDigest(mid, dir.path));
    // The overlay holds 3 clusters of data (zero clusters are not read): its tables plus those.
    expect(first.bytesRead).toBeLessThan(statSync(mid).size);
    expect(first.bytesRead).toBeLessThan(600 * KiB);
    const second = await backupImage(repo, 'one', top, { base: 'latest' });
    expect(await pointDigest(repo, 'one', second.point, 'd')).toEqual(await qemuRawDigest(top, dir.path));
    expect(second.bytesRead).toBeLessThan(statSync(top).size);
    // The earlier points still read as they were.
    expect(await pointDigest(repo, 'one', full.point, 'd')).toEqual(await qemuRawDigest(base, dir.path));
  });

  it('an increment whose backing file is gone still applies onto the base point', async () => {
    const repo = await freshRepo();
    await backupImage(repo, 'gone', base);
    const orphanDir = path('orphan');
    sh('mkdir', ['-p', orphanDir]);
    const orphan = join(orphanDir, 'disk.0.1');
    copyFileSync(mid, orphan);
    sh('qemu-img', ['rebase', '-u', '-b', 'disk.0.0', '-F', 'qcow2', orphan]);
    const inc = await backupImage(repo, 'gone', orphan, { base: 'latest' });
    expect(await pointDigest(repo, 'gone', inc.point, 'd')).toEqual(await qemuRawDigest(mid, dir.path));
    // Without a base the chain must be read, and the missing backing file is named.
    await expectRefused(orphan, 'ERR_SOURCE', /backing file .*disk\.0\.0 does not exist/);
  });

  it('refuses a backing chain that loops', async () => {
    const a = path('loop-a.qcow2');
    const b = path('loop-b.qcow2');
    sh('qemu-img', ['create', '-f', 'qcow2', a, '8M']);
    sh('qemu-img', ['create', '-f', 'qcow2', '-b', 'loop-a.qcow2', '-F', 'qcow2', b]);
    sh('qemu-img', ['rebase', '-u', '-b', 'loop-b.qcow2', '-F', 'qcow2', a]);
    await expectRefused(b, 'ERR_FORMAT_INVALID', /loops/);
  });
});

describe('qcow2 refusals and damage', () => {
  let good: string;
  let l1Offset: number;
  beforeAll(() => {
    good = path('good.qcow2');
    sh('qemu-img', ['convert', '-O', 'qcow2', raw, good]);
    l1Offset = Number(peekU64(good, 40));
  });

  const copy = (name: string) => {
    const file = path(name);
    copyFileSync(good, file);
    return file;
  };

  it('refuses an encrypted image', async () => {
    const image = path('luks.qcow2');
    sh('qemu-img', [
      'create',
      '-f',
      'qcow2',
      '--object',
      'secret,id=s0,data=cairn',
      '-o',
      'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10',
      image,
      '4M',
    ]);
    await expectRefused(image, 'ERR_UNSUPPORTED', /encrypted \(LUKS\)/);
  });

  it('refuses an external data file', async () => {
    const image = path('external.qcow2');
    sh('qemu-img', ['create', '-f', 'qcow2', '-o', `data_file=${path('external.data')}`, image, '4M']);
    await expectRefused(image, 'ERR_UNSUPPORTED', /external data file/);
  });

  it('refuses unknown incompatible features', async () => {
    const image = copy('unknown-feature.qcow2');
    pokeU64(image, 72, peekU64(image, 72) | (1n << 9n));
    await expectRefused(image, 'ERR_UNSUPPORTED', /unknown incompatible feature bits 0x200/);
  });

  it('fails cleanly on a truncated image and leaves no point', async () => {
    const image = copy('truncated.qcow2');
    truncateSync(image, Math.floor(statSync(image).size * 0.6));
    await expectRefused(image, 'ERR_FORMAT_INVALID', /outside the .*-byte file/);
  });

  it('fails cleanly when an L2 table offset points past the end of the file', async () => {
    const image = copy('l2-past-end.qcow2');
    pokeU64(image, l1Offset, (1n << 63n) | BigInt(1024 * 1024 * 1024 * 1024));
    await expectRefused(image, 'ERR_FORMAT_INVALID', /L2 table .* outside/);
  });

  it('fails cleanly on an L2 offset beyond 2^53 and on a virtual size beyond the limit', async () => {
    const far = copy('l2-far.qcow2');
    pokeU64(far, l1Offset, 0x00fffffffffffe00n);
    await expectRefused(far, 'ERR_FORMAT_INVALID', /beyond 2\^53/);
    const huge = copy('huge.qcow2');
    pokeU64(huge, 24, 1n << 50n);
    await expectRefused(huge, 'ERR_FORMAT_INVALID', /L1 table of \d+ entries cannot map/);
  });

  it('an L1 entry that loops back onto the L1 table itself reads as qemu-img reads it, or fails cleanly', async () => {
    const image = copy('l1-loop.qcow2');
    pokeU64(image, l1Offset, BigInt(l1Offset));
    const repo = await freshRepo();
    const outcome = await backupImage(repo, 'vm', image).then(
      (result) => result,
      (err: unknown) => err as Error,
    );
    if (outcome instanceof Error) expect(isCairnError(outcome), String(outcome)).toBe(true);
    else expect(await pointDigest(repo, 'vm', outcome.point, 'd')).toEqual(await qemuRawDigest(image, dir.path));
  });

  it('refuses a qcow2 on standard input (it needs random access)', async () => {
    const repo = await freshRepo();
    const failure = await backupImage(repo, 'vm', '-', { stdin: Readable.from([Buffer.from('QFI\xfb\0\0\0\x03', 'latin1')]) }).catch(
      (e: unknown) => e,
    );
    expect((failure as { code?: string }).code).toBe('ERR_UNSUPPORTED');
    expect((failure as Error).message).toMatch(/qcow2 image, which needs random access/);
  });

  it('--format raw keeps the image bytes as they are', async () => {
    const repo = await freshRepo();
    const result = await backupImage(repo, 'vm', good, { format: 'raw' });
    const { fileDigest } = await import('../helpers/image-backup.js');
    expect(await pointDigest(repo, 'vm', result.point, 'd')).toEqual(await fileDigest(good));
    expect(result.origin).toBeUndefined();
  });
});

describe('cairn backup / stat with a qcow2 (CLI)', () => {
  it('detects the format, records the origin in the point and shows it in stat', async () => {
    const repoDir = path('cli-repo');
    expect((await runCairn(['init', '--repo', repoDir])).code).toBe(0);
    const image = path('cli.qcow2');
    sh('qemu-img', ['convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', raw, image]);
    const backup = await runCairn(['backup', '--repo', repoDir, '--vm', 'web', '--disk', `vda=${image}`, '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    const stat = await runCairn(['stat', '--repo', repoDir, 'cairn://web/latest/vda', '--json']);
    const info = JSON.parse(stat.stdout.toString()) as { origin: { format: string; description: string } };
    expect(info.origin.format).toBe('qcow2');
    expect(info.origin.description).toMatch(/qcow2 v3 .*zstd compression/);
    const text = await runCairn(['stat', '--repo', repoDir, 'cairn://web/latest/vda']);
    expect(text.stdout.toString()).toMatch(/format: +qcow2 v3/);
    const manifest = JSON.parse(sh('sh', ['-c', `cat ${repoDir}/vms/web/*/manifest.json`])) as { version: number };
    expect(manifest.version).toBe(2);
    const cat = await runCairn(['cat', '--repo', repoDir, 'cairn://web/latest/vda']);
    const out = path('cli-out.raw');
    writeFileSync(out, cat.stdout);
    const { fileDigest } = await import('../helpers/image-backup.js');
    expect(await fileDigest(out)).toEqual(await qemuRawDigest(image, dir.path));
    const bad = await runCairn(['backup', '--repo', repoDir, '--vm', 'web', '--disk', `vda=${image}`, '--format', 'qcow3']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--format must be one of raw, qcow2, vhd, rbd-diff, rbd-export/);
  });
});
