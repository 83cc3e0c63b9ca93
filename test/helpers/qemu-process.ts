// Child processes for integration tests: spawn, collect stderr for messages, kill by PID when done,
// and poll for readiness with a deadline (never fixed sleeps).
import { spawn, type ChildProcess, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface Child {
  proc: ChildProcess;
  stderr: () => string;
  /** Total characters of stdout+stderr so far, and the text after such a mark (kept: last 1 MiB). */
  outputMark: () => number;
  outputSince: (mark: number) => string;
  exited: Promise<number | null>;
  kill: (signal?: NodeJS.Signals) => Promise<void>;
}

const live = new Set<Child>();

export function spawnChild(cmd: string, args: string[], opts: { cwd?: string } = {}): Child {
  const proc = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let total = 0;
  const keep = 1024 * 1024;
  const onData = (d: Buffer) => {
    const text = d.toString();
    total += text.length;
    err = (err + text).slice(-keep);
  };
  proc.stderr?.on('data', onData);
  proc.stdout?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.once('error', (e) => {
      err += String(e);
      resolve(-1);
    });
  });
  const child: Child = {
    proc,
    stderr: () => err.slice(-8000),
    outputMark: () => total,
    outputSince: (mark: number) => err.slice(Math.max(0, err.length - (total - mark))),
    exited,
    kill: async (signal = 'SIGKILL') => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
        try {
          process.kill(proc.pid, signal);
        } catch {
          /* already gone */
        }
      }
      await exited;
      live.delete(child);
    },
  };
  live.add(child);
  return child;
}

/** Kills every child this helper started and that is still alive (for afterEach). */
export async function killAllChildren(): Promise<void> {
  await Promise.all([...live].map((c) => c.kill()));
}

export async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

/** Polls until a Unix socket accepts connections (then closes the probe), or throws at the deadline. */
export async function waitForUnixSocket(path: string, child?: Child, deadlineMs = 20_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (child && child.proc.exitCode !== null) throw new Error(`process exited before ${path} was ready: ${child.stderr()}`);
    if (fs.existsSync(path)) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.createConnection(path);
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
      if (ok) return;
    }
    if (Date.now() > until) throw new Error(`socket ${path} not ready in ${deadlineMs} ms: ${child?.stderr() ?? ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
