import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach } from 'vitest';
import { Repository } from '../../src/store/repository.js';

export const CAIRN_BIN = fileURLToPath(new URL('../../bin/cairn', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs `bin/cairn` (the built CLI) and collects its output. `stdout` sends standard output to an open
 * file descriptor instead (a file on a full filesystem); `stdout` of the result is then empty.
 */
export function runCairn(
  args: string[],
  options: { input?: Buffer | string; env?: NodeJS.ProcessEnv; cwd?: string; stdout?: number } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CAIRN_BIN, ...args], {
      env: { ...process.env, CAIRN_LOG_LEVEL: 'warn', ...options.env },
      cwd: options.cwd,
      stdio: ['pipe', options.stdout ?? 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }));
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.input ?? '');
  });
}

/** Starts `bin/cairn` without waiting for it (for kill -9 and concurrency tests). */
export function startCairn(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [CAIRN_BIN, ...args], {
    env: { ...process.env, CAIRN_LOG_LEVEL: 'warn', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export async function runJson<T>(args: string[], options: Parameters<typeof runCairn>[1] = {}): Promise<T> {
  const result = await runCairn([...args, '--json'], options);
  if (result.code !== 0) throw new Error(`cairn ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout.toString()) as T;
}

export async function makeTempDir(prefix = 'cairn-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** Polls `check` until it returns a value or the deadline passes. */
export async function waitFor<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A fresh repository in a temp directory for each test of the calling describe block (vitest hooks
 * registered here); read `.repo` and `.dir` inside the tests.
 */
export function useTempRepository(chunkSize: number): { repo: Repository; dir: string } {
  const state = {} as { repo: Repository; dir: string };
  let cleanup: () => Promise<void> = async () => undefined;
  beforeEach(async () => {
    const temp = await makeTempDir();
    cleanup = temp.cleanup;
    state.dir = temp.path;
    state.repo = await Repository.init(join(temp.path, 'repo'), chunkSize);
  });
  afterEach(() => cleanup());
  return state;
}
