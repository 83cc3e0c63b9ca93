import { open, readFile, unlink, readdir, mkdir, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CairnError, systemErrorCode } from '../core/errors.js';

/** What a lock file holds: who holds it, since when, for what. */
export interface LockInfo {
  pid: number;
  host: string;
  startedMs: number;
  purpose: string;
  /** For a backup: the point it takes unchanged data from, which GC must keep whole while it runs. */
  base?: { vm: string; point: string };
}

export interface HeldLock {
  readonly info: LockInfo;
  /** Replaces the lock's content atomically (the lock stays held throughout). */
  update(extra: Partial<LockInfo>): Promise<void>;
  release(): Promise<void>;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return systemErrorCode(err) === 'EPERM';
  }
}

async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockInfo;
  } catch {
    return undefined;
  }
}

/** True when `pid` names no running process on this host. */
export function isProcessGone(pid: number): boolean {
  return !isProcessAlive(pid);
}

/** A lock whose holder died on this host (kill -9, power loss of a process) is stale and may be taken. */
export function isStale(info: LockInfo | undefined): boolean {
  return info === undefined || (info.host === hostname() && !isProcessAlive(info.pid));
}

/**
 * Exclusive lock files under `locks/` (created with O_EXCL). A lock left by a dead process on this
 * host is broken and taken over; one held by a live process refuses with ERR_LOCKED naming the holder.
 * Lock files of running backups double as the list of running writers that GC consults.
 */
export class LockDirectory {
  constructor(private readonly dir: string) {}

  async acquire(name: string, purpose: string, onStale?: (info: LockInfo | undefined) => void): Promise<HeldLock> {
    await mkdir(this.dir, { recursive: true });
    const path = join(this.dir, `${name}.lock`);
    const info: LockInfo = { pid: process.pid, host: hostname(), startedMs: Date.now(), purpose };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const handle = await open(path, 'wx', 0o644);
        try {
          await handle.writeFile(JSON.stringify(info));
          await handle.sync();
        } finally {
          await handle.close();
        }
        return {
          info,
          update: async (extra) => {
            Object.assign(info, extra);
            const temp = `${path}.tmp-${process.pid}`;
            await writeFile(temp, JSON.stringify(info));
            await rename(temp, path);
          },
          release: () => unlink(path).catch(() => undefined),
        };
      } catch (err) {
        if (systemErrorCode(err) !== 'EEXIST') throw err;
      }
      const holder = await readLock(path);
      // A lock file that is still being written reads as garbage for a moment: only a dead pid is stale.
      if (holder !== undefined && !isStale(holder)) {
        throw new CairnError(
          'ERR_LOCKED',
          `${purpose} refused: ${holder.purpose} is already running (pid ${holder.pid} on ${holder.host}, since ${new Date(holder.startedMs).toISOString()})`,
          { lock: name, holder },
        );
      }
      if (holder === undefined && attempt === 0) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      onStale?.(holder);
      await unlink(path).catch(() => undefined);
    }
    throw new CairnError('ERR_LOCKED', `${purpose} refused: could not take lock ${name}`, { lock: name });
  }

  /** Live holders of locks whose names start with `prefix`. */
  async holders(prefix: string): Promise<LockInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (systemErrorCode(err) === 'ENOENT') return [];
      throw err;
    }
    const result: LockInfo[] = [];
    for (const name of names) {
      if (!name.startsWith(prefix) || !name.endsWith('.lock')) continue;
      const info = await readLock(join(this.dir, name));
      if (info && !isStale(info)) result.push(info);
      // A lock being created right now has no content yet; count it as a writer that started now.
      else if (!info) result.push({ pid: 0, host: hostname(), startedMs: Date.now(), purpose: 'starting' });
    }
    return result;
  }
}
