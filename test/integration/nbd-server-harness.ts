import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CAIRN = join(ROOT, 'bin', 'cairn');
const RUNNER = join(ROOT, 'bench', 'lib', 'nbd-serve-runner.mjs');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; never rejects on a non-zero exit (tests check `code`). */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const options = {
    timeout: opts.timeoutMs ?? 60_000,
    maxBuffer: 64 * 1024 * 1024,
    encoding: 'utf8' as const,
    env: opts.env ?? process.env,
  };
  return new Promise((resolve, reject) => {
    execFile(cmd, args, options, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code === 'string') return reject(err); // ENOENT: a missing peer fails
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

export async function cairn(args: string[]): Promise<RunResult> {
  const result = await run(process.execPath, [CAIRN, ...args]);
  if (result.code !== 0) throw new Error(`cairn ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result;
}

/** Whether `cairn serve` is registered in the CLI; until it is, the command module runs through the runner. */
export async function serveIsRegistered(): Promise<boolean> {
  return (await run(process.execPath, [CAIRN, 'serve', '--help'])).code === 0;
}

export interface ServeProcess {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

export async function startServe(args: string[]): Promise<ServeProcess> {
  const entry = (await serveIsRegistered()) ? CAIRN : RUNNER;
  const child = spawn(process.execPath, [entry, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => stderr, exited };
}

/** Polls until `probe` succeeds or the deadline passes. */
export async function waitFor(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export function nbdUri(socket: string, exportName: string): string {
  return `nbd+unix:///${exportName}?socket=${socket}`;
}
