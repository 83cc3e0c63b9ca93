import { readFileSync, writeFileSync, truncateSync, statSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCairnError } from '../../src/core/errors.js';
import { Repository } from '../../src/store/repository.js';
import { makeTempDir, runCairn } from '../helpers/cairn-cli.js';
import { startCephCluster, type CephCluster } from '../helpers/ceph-cluster.js';
import { backupImage, expectBackupRefused, fileDigest, MiB, pointDigest } from '../helpers/image-backup.js';

// A real single-node Ceph (memstore OSD, loopback, auth none): images written through qemu-io's rbd
// driver, snapshots, resizes, `rbd export-diff` and `rbd export --export-format 2` streams backed
// up into one repository; every point compared with `rbd export` of the same snapshot.
let ceph: CephCluster;
let dir: { path: string; cleanup: () => Promise<void> };
let counter = 0;
const path = (name: string) => join(dir.path, name);
const image = (name: string) => `${ceph.pool}/${name}`;

async function qemuIo(img: string, ...commands: string[]): Promise<void> {
  await ceph.run('qemu-io', ['-f', 'raw', ...commands.flatMap((c) => ['-c', c]), `rbd:${image(img)}:conf=${ceph.conf}`]);
}

/** `rbd export` of a snapshot (or the head): the oracle. */
async function rbdExportDigest(spec: string): Promise<{ sha256: string; size: number }> {
  const out = path(`export-${counter++}.raw`);
  await ceph.run('rbd', ['export', '--no-progress', spec, out]);
  return fileDigest(out);
}

async function exportDiff(spec: string, fromSnap?: string): Promise<string> {
  const out = path(`diff-${counter++}.rbd`);
  await ceph.run('rbd', ['export-diff', '--no-progress', ...(fromSnap ? ['--from-snap', fromSnap] : []), spec, out]);
  return out;
}

async function exportV2(spec: string): Promise<string> {
  const out = path(`export-${counter++}.rbd2`);
  await ceph.run('rbd', ['export', '--no-progress', '--export-format', '2', spec, out]);
  return out;
}

const expectRefused = expectBackupRefused;

beforeAll(async () => {
  dir = await makeTempDir('cairn-rbd-');
  ceph = await startCephCluster();
}, 120_000);

afterAll(async () => {
  await ceph?.stop();
  await dir?.cleanup();
});

describe('rbd export-diff chains from a real Ceph', () => {
  let repo: Repository;
  let d1: string;
  let d12: string;
  let d23: string;

  beforeAll(async () => {
    repo = await Repository.init(path('repo'), MiB);
    await ceph.run('rbd', ['create', '--size', '40M', image('vm1')]);
    await qemuIo('vm1', 'write -P 0xa1 0 3M', 'write -P 0xa2 9M 64k', 'write -P 0xa3 20M 5k');
    await ceph.run('rbd', ['snap', 'create', `${image('vm1')}@s1`]);
    await qemuIo('vm1', 'write -P 0xb1 1M 4k', 'write -z 9M 64k', 'write -P 0xb2 30M 1M');
    await ceph.run('rbd', ['resize', '--size', '48M', image('vm1')]);
    await qemuIo('vm1', 'write -P 0xb3 44M 2M');
    await ceph.run('rbd', ['snap', 'create', `${image('vm1')}@s2`]);
    await ceph.run('rbd', ['resize', '--allow-shrink', '--size', '24M', image('vm1')]);
    await ceph.run('rbd', ['resize', '--size', '32M', image('vm1')]);
    await qemuIo('vm1', 'write -P 0xc1 2M 8k', 'write -P 0xc2 28M 128k');
    await ceph.run('rbd', ['snap', 'create', `${image('vm1')}@s3`]);
    d1 = await exportDiff(`${image('vm1')}@s1`);
    d12 = await exportDiff(`${image('vm1')}@s2`, 's1');
    d23 = await exportDiff(`${image('vm1')}@s3`, 's2');
  });

  it('a full diff, then diffs with --from-snap (grow, shrink, zero writes) make points equal to rbd export of each snapshot', async () => {
    const p1 = await backupImage(repo, 'vm1', d1);
    expect(p1.origin).toMatchObject({ format: 'rbd-diff', toSnap: 's1' });
    expect(p1.origin?.fromSnap).toBeUndefined();
    expect(await pointDigest(repo, 'vm1', p1.point, 'd')).toEqual(await rbdExportDigest(`${image('vm1')}@s1`));
    // From standard input, as `rbd export-diff … - | cairn backup` would give it; --base is implied.
    const p2 = await backupImage(repo, 'vm1', '-', { stdinFile: d12 });
    expect(p2.parent).toBe(p1.point);
    expect(p2.origin).toMatchObject({ fromSnap: 's1', toSnap: 's2' });
    expect(await pointDigest(repo, 'vm1', p2.point, 'd')).toEqual(await rbdExportDigest(`${image('vm1')}@s2`));
    expect(p2.bytesRead).toBe(statSync(d12).size);
    const p3 = await backupImage(repo, 'vm1', d23, { base: 'latest' });
    expect(await pointDigest(repo, 'vm1', p3.point, 'd')).toEqual(await rbdExportDigest(`${image('vm1')}@s3`));
    expect((await pointDigest(repo, 'vm1', p3.point, 'd')).size).toBe(32 * MiB);
    // The earlier points are untouched.
    expect(await pointDigest(repo, 'vm1', p1.point, 'd')).toEqual(await rbdExportDigest(`${image('vm1')}@s1`));
  });

  it('refuses a diff onto the wrong base, naming both snapshots, and leaves no point', async () => {
    const other = await Repository.init(path('repo-wrong'), MiB);
    await backupImage(other, 'vm1', d1);
    await expectRefused(
      other,
      'vm1',
      d23,
      'ERR_INVALID_ARGUMENT',
      /diff from snapshot 's2', but base point \d+T\d+Z was made up to snapshot 's1'/,
      {
        base: 'latest',
      },
    );
    await expectRefused(other, 'nobase', d12, 'ERR_NOT_FOUND', /diff from snapshot 's1': it needs a base point made up to 's1'/);
  });

  it('cairn stat shows the snapshot names', async () => {
    const repoDir = path('cli-repo');
    expect((await runCairn(['init', '--repo', repoDir])).code).toBe(0);
    expect((await runCairn(['backup', '--repo', repoDir, '--vm', 'c', '--disk', `vda=${d1}`])).code).toBe(0);
    const inc = await runCairn(['backup', '--repo', repoDir, '--vm', 'c', '--disk', 'vda=-'], { input: readFileSync(d12) });
    expect(inc.code, inc.stderr).toBe(0);
    const text = (await runCairn(['stat', '--repo', repoDir, 'cairn://c/latest/vda'])).stdout.toString();
    expect(text).toMatch(/snapshots: from s1 to s2/);
    const json = JSON.parse((await runCairn(['stat', '--repo', repoDir, 'cairn://c/latest/vda', '--json'])).stdout.toString()) as {
      origin: { fromSnap: string; toSnap: string; format: string };
    };
    expect(json.origin).toMatchObject({ format: 'rbd-diff', fromSnap: 's1', toSnap: 's2' });
  });

  it('rbd export --export-format 2 of an image with snapshots merges its diffs', async () => {
    const file = await exportV2(image('vm1'));
    const fresh = await Repository.init(path('repo-v2'), MiB);
    const point = await backupImage(fresh, 'vm1', file);
    expect(point.origin?.format).toBe('rbd-export');
    expect(await pointDigest(fresh, 'vm1', point.point, 'd')).toEqual(await rbdExportDigest(image('vm1')));
    // The v2 diffs inside it are real v2 diff streams: cut the s1→s2 one out and apply it alone.
    const bytes = readFileSync(file);
    const banner = Buffer.from('rbd diff v2\n');
    const starts: number[] = [];
    for (let at = bytes.indexOf(banner); at >= 0; at = bytes.indexOf(banner, at + 1)) starts.push(at);
    expect(starts.length).toBe(4);
    const v2diff = path('s1-s2.v2');
    writeFileSync(v2diff, bytes.subarray(starts[1]!, starts[2]!));
    const chain = await Repository.init(path('repo-v2-chain'), MiB);
    await backupImage(chain, 'vm1', d1);
    const applied = await backupImage(chain, 'vm1', v2diff, { base: 'latest' });
    expect(applied.origin?.description).toMatch(/^rbd diff v2 from snapshot 's1' to snapshot 's2'/);
    expect(await pointDigest(chain, 'vm1', applied.point, 'd')).toEqual(await rbdExportDigest(`${image('vm1')}@s2`));
  });

  it('an export v2 of an image without snapshots streams from standard input', async () => {
    await ceph.run('rbd', ['create', '--size', '12M', image('flat')]);
    await qemuIo('flat', 'write -P 0x42 1M 2M', 'write -P 0x43 11M 512k');
    const file = await exportV2(image('flat'));
    const fresh = await Repository.init(path('repo-flat'), MiB);
    const point = await backupImage(fresh, 'flat', '-', { stdinFile: file });
    expect(await pointDigest(fresh, 'flat', point.point, 'd')).toEqual(await rbdExportDigest(image('flat')));
  });

  it('truncated and bit-flipped streams fail cleanly and leave no point', async () => {
    const fresh = await Repository.init(path('repo-faults'), MiB);
    const size = statSync(d1).size;
    // (Cut inside its banner, a file no longer says it is a diff: it would be read as a raw disk.)
    for (const cut of [12, 20, 40, 60, 1000, size - 1]) {
      const file = path(`cut-${cut}.rbd`);
      copyFileSync(d1, file);
      truncateSync(file, cut);
      await expectRefused(fresh, 'faults', file, 'ERR_SOURCE', /truncated/);
    }
    // Flip bytes of the record headers: the tag, a length, an offset.
    const header = readFileSync(d1);
    // (v1 has no checksum: a flipped name, size or data byte cannot be noticed, and a flipped banner makes
    // a raw file, so those are not flipped.)
    for (const at of [12, 13, 19, 28, 36, 40]) {
      const file = path(`flip-${at}.rbd`);
      const damaged = Buffer.from(header);
      damaged[at] = damaged[at]! ^ 0x80;
      writeFileSync(file, damaged);
      const outcome = await backupImage(fresh, 'flips', file).then(
        () => 'stored',
        (err: unknown) => (isCairnError(err) ? err.code : String(err)),
      );
      expect(['ERR_FORMAT_INVALID', 'ERR_SOURCE', 'ERR_UNSUPPORTED']).toContain(outcome);
    }
    expect(await fresh.listPointIds('flips')).toEqual([]);
  });
});
