import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile, open, chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { makeTempDir, runCairn, runJson, startCairn, waitFor } from '../helpers/cairn-cli.js';

const MiB = 1024 * 1024;

async function countChunkFiles(repo: string): Promise<number> {
  let count = 0;
  for (const prefix of await readdir(join(repo, 'chunks'))) {
    count += (await readdir(join(repo, 'chunks', prefix))).filter((n) => /^[0-9a-f]{64}$/.test(n)).length;
  }
  return count;
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

describe('safety: crashes, corruption, concurrency, GC, full disks', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let repo: string;
  const children: ChildProcess[] = [];
  const cairn = (...args: string[]) => runCairn([...args, '--repo', repo]);
  beforeEach(async () => {
    dir = await makeTempDir();
    repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo, '--chunk-size', '64KiB'])).code).toBe(0);
  });
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
    await dir.cleanup();
  });

  /** A backup fed through stdin, so the test decides when it progresses and when it ends. */
  function pipedBackup(vm: string, extra: string[] = []): ChildProcess {
    const child = startCairn(['backup', '--repo', repo, '--vm', vm, '--disk', 'sda=-', '--json', ...extra]);
    // Writing to a backup the test killed fails with EPIPE; that is expected, not an error.
    child.stdin!.on('error', () => undefined);
    children.push(child);
    return child;
  }

  it('kill -9 in the middle of a backup leaves no partial point and every earlier point verifiable', async () => {
    const image = join(dir.path, 'a.raw');
    await writeFile(image, randomBytes(4 * MiB));
    const first = await runJson<{ point: string }>(['backup', '--repo', repo, '--vm', 'vm', '--disk', `sda=${image}`]);
    const before = await countChunkFiles(repo);

    const child = pipedBackup('vm');
    child.stdin!.write(randomBytes(2 * MiB));
    await waitFor(async () => (await countChunkFiles(repo)) > before + 8 || undefined, 'the killed backup to write chunks');
    child.kill('SIGKILL');
    await exited(child);

    const points = await runJson<{ point: string }[]>(['ls', '--repo', repo, 'cairn://vm']);
    expect(points.map((p) => p.point)).toEqual([first.point]);
    expect((await cairn('verify')).code).toBe(0);
    // The dead backup's lock is stale: the next backup takes it over and succeeds.
    const next = await runCairn(['backup', '--repo', repo, '--vm', 'vm', '--disk', `sda=${image}`]);
    expect(next.code).toBe(0);
    // GC removes the dead draft and its orphaned chunks (grace 0 for the test), keeps everything referenced.
    const gc = await runJson<{ removedChunks: number; removedLeftovers: number }>(['gc', '--repo', repo, '--grace-seconds', '0']);
    expect(gc.removedChunks).toBeGreaterThan(8);
    expect(gc.removedLeftovers).toBeGreaterThanOrEqual(1);
    expect((await cairn('verify')).code).toBe(0);
  });

  it('a corrupted chunk is reported by cat and verify, and other points still read', async () => {
    const a = join(dir.path, 'a.raw');
    const b = join(dir.path, 'b.raw');
    await writeFile(a, randomBytes(MiB));
    await writeFile(b, randomBytes(MiB));
    const pa = await runJson<{ point: string }>(['backup', '--repo', repo, '--vm', 'one', '--disk', `sda=${a}`]);
    await runJson(['backup', '--repo', repo, '--vm', 'two', '--disk', `sda=${b}`]);
    // Flip one byte in the chunk that holds offset 128 KiB of VM one.
    const index = await readFile(join(repo, 'vms', 'one', pa.point, 'sda.cidx'));
    const digest = index.subarray(32 + 2 * 32, 32 + 3 * 32).toString('hex');
    const chunkPath = join(repo, 'chunks', digest.slice(0, 2), digest);
    await chmod(chunkPath, 0o644);
    const file = await readFile(chunkPath);
    file[file.length - 100]! ^= 0xff;
    await writeFile(chunkPath, file);

    const cat = await cairn('cat', 'cairn://one/latest/sda');
    expect(cat.code).toBe(5);
    expect(cat.stderr).toContain(digest);
    const verify = await cairn('verify');
    expect(verify.code).toBe(5);
    expect(verify.stdout.toString()).toContain(`DAMAGED one/${pa.point}/sda: chunk ${digest} at offset(s) 131072`);
    const report = JSON.parse((await cairn('verify', '--json')).stdout.toString()) as { disks: { vm: string; ok: boolean }[] };
    expect(report.disks.map((d) => [d.vm, d.ok])).toEqual([
      ['one', false],
      ['two', true],
    ]);
    expect((await cairn('verify', 'cairn://two')).code).toBe(0);
    expect((await cairn('cat', 'cairn://two/latest/sda')).stdout.equals(await readFile(b))).toBe(true);
  });

  it('refuses a second backup of the same VM while one runs; other VMs go on in parallel', async () => {
    const child = pipedBackup('busy');
    child.stdin!.write(randomBytes(MiB));
    await waitFor(async () => (await readdir(join(repo, 'locks'))).some((n) => n === 'backup-busy.lock') || undefined, 'the lock');
    const image = join(dir.path, 'x.raw');
    await writeFile(image, randomBytes(MiB));
    const refused = await cairn('backup', '--vm', 'busy', '--disk', `sda=${image}`);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/backup of VM 'busy' refused: backup of VM 'busy' is already running \(pid \d+/);
    expect((await cairn('backup', '--vm', 'other', '--disk', `sda=${image}`)).code).toBe(0);
    child.stdin!.end(randomBytes(MiB));
    expect(await exited(child)).toBe(0);
    expect((await cairn('cat', 'cairn://busy/latest/sda')).stdout.length).toBe(2 * MiB);
  });

  it('GC running while a backup adds chunks keeps them; the backup completes and verifies', async () => {
    const old = join(dir.path, 'old.raw');
    await writeFile(old, randomBytes(MiB));
    await runJson(['backup', '--repo', repo, '--vm', 'gone', '--disk', `sda=${old}`]);
    expect((await cairn('rm', 'cairn://gone/latest')).code).toBe(0);

    const child = pipedBackup('live');
    const data = randomBytes(2 * MiB);
    child.stdin!.write(data.subarray(0, MiB));
    const before = await countChunkFiles(repo);
    await waitFor(async () => (await countChunkFiles(repo)) >= before + 8 || undefined, 'the running backup to write chunks');
    const gc = await runJson<{ removedChunks: number; keptRecentChunks: number }>(['gc', '--repo', repo, '--grace-seconds', '0']);
    // The removed point's 16 chunks go; the running backup's unreferenced chunks stay.
    expect(gc.removedChunks).toBe(16);
    expect(gc.keptRecentChunks).toBeGreaterThanOrEqual(8);
    child.stdin!.end(data.subarray(MiB));
    expect(await exited(child)).toBe(0);
    expect((await cairn('verify')).code).toBe(0);
    expect((await cairn('cat', 'cairn://live/latest/sda')).stdout.equals(data)).toBe(true);
  });

  it('prune keeps what the rules select and reports the rest', async () => {
    const image = join(dir.path, 'p.raw');
    await writeFile(image, randomBytes(256 * 1024));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await runJson<{ point: string }>(['backup', '--repo', repo, '--vm', 'p', '--disk', `sda=${image}`])).point);
    const dry = await runJson<{ points: { point: string; keep: boolean }[] }>([
      'prune',
      '--repo',
      repo,
      'p',
      '--keep-last',
      '1',
      '--dry-run',
    ]);
    expect(dry.points.filter((p) => p.keep).map((p) => p.point)).toEqual([ids[2]]);
    expect((await runJson<unknown[]>(['ls', '--repo', repo, 'cairn://p'])).length).toBe(3);
    await runJson(['prune', '--repo', repo, 'p', '--keep-last', '1']);
    expect((await runJson<{ point: string }[]>(['ls', '--repo', repo, 'cairn://p'])).map((p) => p.point)).toEqual([ids[2]]);
    expect((await cairn('prune', 'p')).stderr).toMatch(/at least one --keep/);
  });

  it('a full filesystem fails the backup cleanly and keeps earlier points', async () => {
    const mnt = join(dir.path, 'small');
    execFileSync('mkdir', ['-p', mnt]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', mnt]);
    try {
      const small = join(mnt, 'repo');
      expect((await runCairn(['init', '--repo', small, '--chunk-size', '64KiB'])).code).toBe(0);
      const a = join(dir.path, 'a.raw');
      await writeFile(a, randomBytes(2 * MiB));
      expect((await runCairn(['backup', '--repo', small, '--vm', 'v', '--disk', `sda=${a}`])).code).toBe(0);
      const big = join(dir.path, 'big.raw');
      await writeFile(big, randomBytes(8 * MiB));
      const full = await runCairn(['backup', '--repo', small, '--vm', 'v', '--disk', `sda=${big}`]);
      expect(full.code).toBe(6);
      expect(full.stderr).toMatch(/no space left/);
      expect((await runJson<unknown[]>(['ls', '--repo', small, 'cairn://v'])).length).toBe(1);
      expect((await runCairn(['verify', '--repo', small])).code).toBe(0);
      expect((await runCairn(['cat', '--repo', small, 'cairn://v/latest/sda'])).stdout.equals(await readFile(a))).toBe(true);
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  });

  it('backs up and restores a block device (loop device)', async () => {
    const backing = join(dir.path, 'loop.img');
    const content = randomBytes(3 * MiB);
    await writeFile(backing, content);
    const loop = execFileSync('losetup', ['--find', '--show', backing]).toString().trim();
    try {
      const result = await runJson<{ disks: { size: number }[] }>(['backup', '--repo', repo, '--vm', 'blk', '--disk', `sda=${loop}`]);
      expect(result.disks[0]!.size).toBe(3 * MiB);
      const handle = await open(loop, 'r+');
      await handle.write(Buffer.alloc(3 * MiB, 0x55), 0, 3 * MiB, 0);
      await handle.close();
      expect((await cairn('restore', 'cairn://blk/latest/sda', loop)).code).toBe(2);
      expect((await cairn('restore', 'cairn://blk/latest/sda', loop, '--force')).code).toBe(0);
      const back = await open(loop, 'r');
      const buf = Buffer.alloc(3 * MiB);
      await back.read(buf, 0, buf.length, 0);
      await back.close();
      expect(buf.equals(content)).toBe(true);
      expect((await stat(loop)).isBlockDevice()).toBe(true);
    } finally {
      execFileSync('losetup', ['-d', loop]);
    }
    // A device smaller than the disk is refused before anything is written.
    const smallBacking = join(dir.path, 'small.img');
    await writeFile(smallBacking, Buffer.alloc(2 * MiB, 0x11));
    const small = execFileSync('losetup', ['--find', '--show', smallBacking]).toString().trim();
    try {
      const refused = await cairn('restore', 'cairn://blk/latest/sda', small, '--force');
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`destination ${small} holds ${2 * MiB} bytes, less than the disk's ${3 * MiB}`);
    } finally {
      execFileSync('losetup', ['-d', small]);
    }
    expect((await readFile(smallBacking)).equals(Buffer.alloc(2 * MiB, 0x11))).toBe(true);
  });
});
