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
  exited: Promise<number | null>;
  kill: (signal?: NodeJS.Signals) => Promise<void>;
}

const live = new Set<Child>();

export function spawnChild(cmd: string, args: string[], opts: { cwd?: string } = {}): Child {
  const proc = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
  proc.stdout?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.once('error', (e) => {
      err += String(e);
      resolve(-1);
    });
  });
  const child: Child = {
    proc,
    stderr: () => err,
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
