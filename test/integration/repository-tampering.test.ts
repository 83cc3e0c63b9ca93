import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CAIRN_BIN, makeTempDir, runCairn, runJson } from '../helpers/cairn-cli.js';

/** The manifest as the test edits it: loosely typed on purpose, a tamperer writes what it likes. */
interface LooseManifest {
  [field: string]: unknown;
  config?: unknown;
  disks: Record<string, unknown>[];
}

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Runs the CLI under GNU time: exit code, output and peak RSS in KiB (the memory bound is part of the contract). */
function runMeasured(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string; maxRssKiB: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', 'MAXRSS=%M', process.execPath, CAIRN_BIN, ...args], {
      env: { ...process.env, CAIRN_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    // A reader that streams /dev/zero never ends on its own: the deadline is part of the check.
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString();
      const rss = /MAXRSS=(\d+)/.exec(stderr);
      resolve({
        code,
        stdout: Buffer.concat(out),
        stderr: stderr.replace(/MAXRSS=\d+\n?/, '').replace(/^Command exited with non-zero status \d+\n/m, ''),
        maxRssKiB: Number(rss?.[1] ?? -1),
      });
    });
  });
}

describe('a tampered repository cannot make readers leave it or exhaust memory', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let repo: string;
  let pointDir: string;
  let point: string;
  let image: Buffer;
  const manifestPath = () => join(pointDir, 'manifest.json');
  const readManifest = async () => JSON.parse(await readFile(manifestPath(), 'utf8')) as LooseManifest;
  const writeManifest = (m: unknown) => writeFile(manifestPath(), JSON.stringify(m));

  beforeEach(async () => {
    dir = await makeTempDir();
    repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo, '--chunk-size', '64KiB'])).code).toBe(0);
    image = randomBytes(MiB);
    await writeFile(join(dir.path, 'x.raw'), image);
    await writeFile(join(dir.path, 'x.conf'), 'memory: 512\n');
    const result = await runJson<{ point: string }>([
      'backup',
      '--repo',
      repo,
      '--vm',
      'x',
      '--disk',
      `sda=${join(dir.path, 'x.raw')}`,
      '--config',
      join(dir.path, 'x.conf'),
    ]);
    point = result.point;
    pointDir = join(repo, 'vms', 'x', point);
  });
  afterEach(() => dir.cleanup());

  /** Every case ends the same way: exit 5, one line naming the point's manifest or file, no outside bytes. */
  function expectDamage(result: { code: number | null; stderr: string; stdout: Buffer }, names: string): void {
    expect(result.code).toBe(5);
    expect(result.stderr).toContain(`x/${point}/${names}`);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  }

  it('config.file pointing outside the repository is refused, and verify names the point', async () => {
    const secretDir = join(dir.path, 'outside');
    await mkdir(secretDir);
    const secret = Buffer.from('root:$6$secret-hash:19000:0:99999:7:::\n');
    await writeFile(join(secretDir, 'secret.txt'), secret, { mode: 0o600 });
    const manifest = await readManifest();
    manifest.config = { file: relative(pointDir, join(secretDir, 'secret.txt')), size: secret.length, sha256: sha256(secret) };
    await writeManifest(manifest);

    const config = await runCairn(['config', '--repo', repo, 'cairn://x/latest']);
    expectDamage(config, 'manifest.json');
    expect(config.stdout.includes(secret)).toBe(false);
    const verify = await runCairn(['verify', '--repo', repo]);
    expect(verify.code).toBe(5);
    expect(verify.stdout.toString()).toContain(`DAMAGED point x/${point}`);
    expect(verify.stdout.toString()).not.toMatch(/^OK/m);
  });

  it('an index named outside the point directory is refused before it is read', async () => {
    const copy = join(dir.path, 'copied.cidx');
    await copyFile(join(pointDir, 'sda.cidx'), copy);
    const manifest = await readManifest();
    manifest.disks[0]!.index = relative(pointDir, copy);
    await writeManifest(manifest);
    const cat = await runCairn(['cat', '--repo', repo, 'cairn://x/latest/sda']);
    expectDamage(cat, 'manifest.json');
    expect(cat.stdout.length).toBe(0);
    for (const command of [
      ['ls', 'cairn://x'],
      ['stat', 'cairn://x/latest/sda'],
      ['gc', '--grace-seconds', '0'],
    ]) {
      expect((await runCairn([...command, '--repo', repo])).code, command.join(' ')).toBe(5);
    }
    // GC refused before deleting anything: the image's chunks are all still there.
    const chunkFiles = (await readdir(join(repo, 'chunks'), { recursive: true })).filter((n) => /[0-9a-f]{64}$/.test(n));
    expect(chunkFiles.length).toBe(MiB / (64 * 1024));
  });

  it('index = ../../../../dev/zero ends at once with bounded memory', async () => {
    const manifest = await readManifest();
    manifest.disks[0]!.index = relative(pointDir, '/dev/zero');
    await writeManifest(manifest);
    const cat = await runMeasured(['cat', '--repo', repo, 'cairn://x/latest/sda']);
    expectDamage(cat, 'manifest.json');
    expect(cat.maxRssKiB).toBeGreaterThan(0);
    expect(cat.maxRssKiB).toBeLessThan(300 * 1024);
  });

  it('a symlinked index, a FIFO as index and a symlinked point directory are refused, not followed', async () => {
    const copy = join(dir.path, 'copied.cidx');
    await copyFile(join(pointDir, 'sda.cidx'), copy);
    await rm(join(pointDir, 'sda.cidx'), { force: true });
    await symlink(copy, join(pointDir, 'sda.cidx'));
    const cat = await runCairn(['cat', '--repo', repo, 'cairn://x/latest/sda']);
    expectDamage(cat, 'sda.cidx');
    expect(cat.stderr).toMatch(/symbolic link/);
    expect(cat.stdout.length).toBe(0);

    await rm(join(pointDir, 'sda.cidx'));
    execFileSync('mkfifo', [join(pointDir, 'sda.cidx')]);
    const fifo = await runMeasured(['cat', '--repo', repo, 'cairn://x/latest/sda']);
    expectDamage(fifo, 'sda.cidx');
    expect(fifo.stderr).toMatch(/not a regular file/);

    // The whole point directory swapped for a symlink to a copy elsewhere: refused as well.
    const elsewhere = join(dir.path, 'elsewhere');
    await rm(join(pointDir, 'sda.cidx'));
    await copyFile(copy, join(pointDir, 'sda.cidx'));
    execFileSync('cp', ['-a', pointDir, elsewhere]);
    await rm(pointDir, { recursive: true, force: true });
    await symlink(elsewhere, pointDir);
    const viaLink = await runCairn(['cat', '--repo', repo, 'cairn://x/latest/sda']);
    expect(viaLink.code).toBe(5);
    expect(viaLink.stdout.length).toBe(0);
  });

  it('a huge declared disk size is refused before anything is allocated', async () => {
    const manifest = await readManifest();
    manifest.disks[0]!.size = 2 ** 52;
    await writeManifest(manifest);
    const cat = await runMeasured(['cat', '--repo', repo, 'cairn://x/latest/sda']);
    expectDamage(cat, 'manifest.json');
    expect(cat.maxRssKiB).toBeLessThan(300 * 1024);
    // An index file far larger than its disk size allows is refused by its size alone (sparse: no disk space).
    manifest.disks[0]!.size = MiB;
    await writeManifest(manifest);
    await chmod(join(pointDir, 'sda.cidx'), 0o644);
    execFileSync('truncate', ['-s', '1536M', join(pointDir, 'sda.cidx')]);
    const big = await runMeasured(['cat', '--repo', repo, 'cairn://x/latest/sda']);
    expectDamage(big, 'sda.cidx');
    expect(big.maxRssKiB).toBeLessThan(300 * 1024);
  });

  it('manifest fields that do not describe the point it lies in are damage', async () => {
    const original = await readManifest();
    const cases: [string, (m: LooseManifest) => void][] = [
      ['vm', (m) => (m.vm = 'other')],
      ['id', (m) => (m.id = '20000101T000000Z')],
      ['disk name', (m) => (m.disks[0]!.name = '../sda')],
      ['negative size', (m) => (m.disks[0]!.size = -1)],
      ['chunk size', (m) => (m.chunkSize = 4096)],
      ['disk count', (m) => (m.disks = Array.from({ length: 2000 }, (_, i) => ({ ...m.disks[0]!, name: `d${i}`, index: `d${i}.cidx` })))],
    ];
    for (const [what, tamper] of cases) {
      const manifest = structuredClone(original);
      tamper(manifest);
      await writeManifest(manifest);
      const ls = await runCairn(['ls', '--repo', repo, `cairn://x/${point}`]);
      expect(ls.code, what).toBe(5);
      expect(ls.stderr, what).toContain(`manifest x/${point}/manifest.json is damaged`);
    }
    await writeManifest(original);
    expect((await runCairn(['cat', '--repo', repo, 'cairn://x/latest/sda'])).stdout.equals(image)).toBe(true);
  });

  it('a symlinked VM or chunk directory makes no backup, rm or gc write or delete outside the repository', async () => {
    const elsewhere = join(dir.path, 'elsewhere-vm');
    execFileSync('cp', ['-a', join(repo, 'vms', 'x'), elsewhere]);
    await rm(join(repo, 'vms', 'x'), { recursive: true, force: true });
    await symlink(elsewhere, join(repo, 'vms', 'x'));
    const removed = await runCairn(['rm', '--repo', repo, `cairn://x/${point}`]);
    expect(removed.code).toBe(5);
    expect(await readdir(elsewhere)).toEqual([point]);
    const backup = await runCairn(['backup', '--repo', repo, '--vm', 'x', '--disk', `sda=${join(dir.path, 'x.raw')}`]);
    expect(backup.code).toBe(5);
    expect(await readdir(elsewhere)).toEqual([point]);

    // A chunk prefix directory pointing elsewhere: gc neither deletes there nor renames there.
    const prefix = (await readdir(join(repo, 'chunks'))).find((name) => /^[0-9a-f]{2}$/.test(name))!;
    const outsideChunks = join(dir.path, 'elsewhere-chunks');
    execFileSync('cp', ['-a', join(repo, 'chunks', prefix), outsideChunks]);
    const victim = `${'f'.repeat(64)}`;
    await writeFile(join(outsideChunks, victim), 'not a chunk');
    await writeFile(join(outsideChunks, '.tmp-old'), 'not a temp file of ours');
    await rm(join(repo, 'chunks', prefix), { recursive: true });
    await symlink(outsideChunks, join(repo, 'chunks', prefix));
    await rm(join(repo, 'vms', 'x'));
    expect((await runCairn(['gc', '--repo', repo, '--grace-seconds', '0'])).code).toBe(0);
    expect((await readdir(outsideChunks)).sort()).toContain(victim);
    expect(await readdir(outsideChunks)).toContain('.tmp-old');
  });
});
