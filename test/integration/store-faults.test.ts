import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, runCairn, runJson, startCairn, waitFor } from '../helpers/cairn-cli.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;

/** Digests of the non-zero 64 KiB slices of `data`, computed here (not by Cairn). */
function chunkDigests(data: Buffer): string[] {
  const digests: string[] = [];
  for (let at = 0; at < data.length; at += CHUNK)
    digests.push(
      createHash('sha256')
        .update(data.subarray(at, at + CHUNK))
        .digest('hex'),
    );
  return digests;
}

async function chunkFiles(repo: string): Promise<string[]> {
  const names: string[] = [];
  for (const prefix of await readdir(join(repo, 'chunks'))) {
    for (const name of await readdir(join(repo, 'chunks', prefix))) if (/^[0-9a-f]{64}$/.test(name)) names.push(name);
  }
  return names.sort();
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

/** A pid that named a process a moment ago and names none now. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await exited(child);
  return child.pid!;
}

describe('store faults: full filesystems, locks, bad repository paths', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  const mounts: string[] = [];
  const children: ChildProcess[] = [];
  beforeEach(async () => {
    dir = await makeTempDir();
  });
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
    for (const mnt of mounts.splice(0)) execFileSync('umount', ['-l', mnt]);
    await dir.cleanup();
  });

  async function smallFilesystem(size: string): Promise<string> {
    const mnt = join(dir.path, `small-${mounts.length}`);
    execFileSync('mkdir', ['-p', mnt]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt]);
    mounts.push(mnt);
    return mnt;
  }

  function pipedBackup(repo: string, vm: string): ChildProcess {
    const child = startCairn(['backup', '--repo', repo, '--vm', vm, '--disk', 'sda=-', '--json']);
    child.stdin!.on('error', () => undefined);
    const err: Buffer[] = [];
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    Object.assign(child, { stderrText: () => Buffer.concat(err).toString() });
    children.push(child);
    return child;
  }

  it('a backup that fills the filesystem gives its chunks back at once; a concurrent backup sharing them stays whole', async () => {
    const mnt = await smallFilesystem('12m');
    const repo = join(mnt, 'repo');
    expect((await runCairn(['init', '--repo', repo, '--chunk-size', '64KiB'])).code).toBe(0);
    const emptyFree = (await statfs(mnt)).bavail * (await statfs(mnt)).bsize;

    // The failing backup creates the shared chunks first; the other one then reuses them while
    // both run, and goes on with chunks of its own.
    const shared = randomBytes(MiB);
    const own = randomBytes(2 * MiB);
    const failing = pipedBackup(repo, 'fills');
    failing.stdin!.write(shared);
    const sharedDigests = chunkDigests(shared);
    await waitFor(async () => {
      const present = new Set(await chunkFiles(repo));
      return sharedDigests.every((d) => present.has(d)) || undefined;
    }, 'every shared chunk written by the first backup');
    const other = pipedBackup(repo, 'other');
    other.stdin!.write(Buffer.concat([shared, own]));
    const ownDigests = chunkDigests(own);
    await waitFor(async () => {
      const present = new Set(await chunkFiles(repo));
      return ownDigests.every((d) => present.has(d)) || undefined;
    }, 'the second backup to reach its own chunks');

    // Now the first backup runs the filesystem full.
    failing.stdin!.end(randomBytes(16 * MiB));
    expect(await exited(failing)).toBe(6);
    expect((failing as unknown as { stderrText: () => string }).stderrText()).toMatch(/no space left/);

    // Without any gc: what is left are exactly the chunks the running backup uses.
    expect(await chunkFiles(repo)).toEqual([...new Set([...sharedDigests, ...ownDigests])].sort());
    const free = (await statfs(mnt)).bavail * (await statfs(mnt)).bsize;
    expect(free).toBeGreaterThan(emptyFree - 3 * MiB - 512 * KiB);

    other.stdin!.end();
    expect(await exited(other)).toBe(0);
    expect((await runCairn(['verify', '--repo', repo])).code).toBe(0);
    expect((await runCairn(['cat', '--repo', repo, 'cairn://other/latest/sda'])).stdout.equals(Buffer.concat([shared, own]))).toBe(true);
    expect((await runCairn(['ls', '--repo', repo, 'cairn://fills'])).code).toBe(3);
  });

  it('a full filesystem while updating the lock is exit 6 in one line, and leaves no temp file', async () => {
    const mnt = await smallFilesystem('3m');
    const repo = join(mnt, 'repo');
    expect((await runCairn(['init', '--repo', repo, '--chunk-size', '64KiB'])).code).toBe(0);
    const image = join(dir.path, 'a.raw');
    await writeFile(image, randomBytes(256 * KiB));
    expect((await runCairn(['backup', '--repo', repo, '--vm', 'v', '--disk', `sda=${image}`])).code).toBe(0);
    // Leave exactly one page free: the lock file takes it, the lock's update (naming its base) finds none.
    await writeFile(join(mnt, 'pad'), Buffer.alloc(4096, 1));
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(mnt, 'fill')}`, 'bs=4k'], { stdio: 'ignore' });
    } catch {
      // dd stops with ENOSPC: that is the point.
    }
    await rm(join(mnt, 'pad'));
    const result = await runCairn(['backup', '--repo', repo, '--vm', 'v', '--disk', `sda=${image}`, '--base', 'latest']);
    expect(result.code).toBe(6);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^cairn: no space left on the repository's filesystem/);
    expect(await readdir(join(repo, 'locks'))).toEqual([]);
    await rm(join(mnt, 'fill'));
    expect((await runCairn(['backup', '--repo', repo, '--vm', 'v', '--disk', `sda=${image}`, '--base', 'latest'])).code).toBe(0);
  });

  it('the next lock operation removes temp files of dead processes of this host, not those of others', async () => {
    const repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo])).code).toBe(0);
    const dead = await deadPid();
    const locks = join(repo, 'locks');
    await writeFile(join(locks, `backup-a.lock.tmp-${dead}`), '{}');
    await writeFile(join(locks, `backup-b.lock.tmp-${dead}@${hostname()}`), '{}');
    await writeFile(join(locks, `backup-c.lock.tmp-${dead}@another-host.example`), '{}');
    await writeFile(join(locks, `backup-d.lock.tmp-${process.pid}@${hostname()}`), '{}');
    expect((await runCairn(['gc', '--repo', repo])).code).toBe(0);
    expect((await readdir(locks)).sort()).toEqual([
      `backup-c.lock.tmp-${dead}@another-host.example`,
      `backup-d.lock.tmp-${process.pid}@${hostname()}`,
    ]);
  });

  it('a held lock names its holder and says how to proceed; one without a purpose or pid says so', async () => {
    const repo = join(dir.path, 'repo');
    expect((await runCairn(['init', '--repo', repo])).code).toBe(0);
    const image = join(dir.path, 'a.raw');
    await writeFile(image, randomBytes(64 * KiB));
    const lock = join(repo, 'locks', 'backup-z.lock');
    const startedMs = Date.parse('2026-01-02T03:04:05Z');
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), startedMs }));
    const refused = await runCairn(['backup', '--repo', repo, '--vm', 'z', '--disk', `sda=${image}`]);
    expect(refused.code).toBe(4);
    expect(refused.stderr).not.toContain('undefined');
    expect(refused.stderr).toContain(
      `backup of VM 'z' refused: another operation (its lock names no purpose) is already running (pid ${process.pid} on ${hostname()}, since 2026-01-02T03:04:05.000Z); wait for it to finish, or if that process is gone from another host, remove ${lock}`,
    );
    await writeFile(lock, '{}');
    const unknown = await runCairn(['backup', '--repo', repo, '--vm', 'z', '--disk', `sda=${image}`]);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).not.toContain('undefined');
    expect(unknown.stderr).toContain('(unknown pid on an unknown host, since an unknown time)');
    await rm(lock);
    expect((await runJson<{ point: string }>(['backup', '--repo', repo, '--vm', 'z', '--disk', `sda=${image}`])).point).toMatch(/Z$/);
  });

  it('--repo naming a plain file, and init on one, are one clear line with the documented exit code', async () => {
    const file = join(dir.path, 'plain');
    await writeFile(file, 'not a repository');
    for (const [args, code] of [
      [['ls', '--repo', file], 3],
      [['verify', '--repo', file], 3],
      [['ls', '--repo', join(file, 'below')], 3],
      [['init', '--repo', file], 2],
      [['init', '--repo', join(file, 'below')], 2],
    ] as const) {
      const result = await runCairn([...args]);
      expect(result.code, args.join(' ')).toBe(code);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(result.stderr, args.join(' ')).toMatch(/^cairn: .*(not a directory|no Cairn repository)/);
    }
    expect(await readFile(file, 'utf8')).toBe('not a repository');
  });
});
