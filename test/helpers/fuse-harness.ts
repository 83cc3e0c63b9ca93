// Test harness for the FUSE tree: real repositories made by the backup code, a mount in this
// process, and every access to the mount from child processes (cmp, dd, mount -o loop). This
// process must never touch the mount itself: its event loop serves the FUSE requests, and a blocking
// call (or a libuv thread-pool job waiting on the mount) would deadlock the filesystem.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Repository } from '../../src/store/repository.js';
import { runBackup } from '../../src/ingest/backup.js';
import { FileSource } from '../../src/ingest/file-source.js';
import { RepositoryCatalog } from '../../src/restore/catalog.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program without blocking this process's event loop; never rejects on a non-zero exit. */
export function sh(cmd: string, args: string[], options: { timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') {
        reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
        return;
      }
      resolve({ code: err ? Number((err as { code: number }).code) : 0, stdout, stderr });
    });
  });
}

export async function shOk(cmd: string, args: string[]): Promise<string> {
  const result = await sh(cmd, args);
  if (result.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

export const TEST_CHUNK_SIZE = 256 * 1024;

export async function makeRepository(root: string, chunkSize = TEST_CHUNK_SIZE): Promise<Repository> {
  return Repository.init(root, chunkSize);
}

/** One restore point of `vm` holding `disks` (name → image file). */
export async function backup(repo: Repository, vm: string, disks: Record<string, string>, config?: Buffer): Promise<string> {
  const sources = await Promise.all(Object.entries(disks).map(async ([name, path]) => ({ name, source: await FileSource.open(path) })));
  try {
    const result = await runBackup({ repo, vm, disks: sources, ...(config ? { config } : {}) });
    return result.point;
  } finally {
    await Promise.all(sources.map((d) => d.source.close()));
  }
}

export function catalogOf(repo: Repository, cacheBytes = 32 * 1024 * 1024): RepositoryCatalog {
  return new RepositoryCatalog(repo, { cacheBytes });
}

/** The file holding the chunk that covers `offset` of a disk, for damaging it on purpose. */
export async function chunkFileAt(catalog: RepositoryCatalog, vm: string, point: string, disk: string, offset: number): Promise<string> {
  const { index } = await catalog.diskIndex(vm, point, disk);
  const digest = index.digests.get(Math.floor(offset / index.chunkSize));
  if (digest === undefined) throw new Error(`offset ${offset} of ${disk} is a hole`);
  return catalog.repo.chunks.chunkPath(digest);
}

export async function isMounted(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => line.split(' ')[4] === dir);
}

/** Polls `check` until it returns true or the deadline passes (then throws naming `what`). */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a program and collects its output; the caller kills it by PID. */
export function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess & { output: () => string } {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return Object.assign(child, { output: () => output });
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

export const repoRoot = (dir: string): string => join(dir, 'repo');
