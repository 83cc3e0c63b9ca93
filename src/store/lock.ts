import { lstat, open, readFile, unlink, readdir, rename, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CairnError, systemErrorCode } from '../core/errors.js';
import { translateWriteError } from './write-error.js';
import { RepositoryAccess } from './repository-access.js';

/** What a lock file holds: who holds it, since when, for what. */
export interface LockInfo {
  /** 0 when the lock file does not say (not written by Cairn). */
  pid: number;
  /** Empty when the lock file does not say. */
  host: string;
  /** 0 when the lock file does not say: GC then takes the holder as the oldest writer there can be. */
  startedMs: number;
  /** Empty when the lock file does not say. */
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

/** A lock file's content, each field checked (a lock file is written by whoever can write the repository). */
function parseLockInfo(text: string): LockInfo | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const base = v.base as Record<string, unknown> | undefined;
  return {
    pid: typeof v.pid === 'number' && Number.isSafeInteger(v.pid) && v.pid > 0 ? v.pid : 0,
    host: typeof v.host === 'string' ? v.host : '',
    startedMs: typeof v.startedMs === 'number' && Number.isFinite(v.startedMs) && v.startedMs > 0 ? v.startedMs : 0,
    purpose: typeof v.purpose === 'string' ? v.purpose : '',
    ...(base && typeof base.vm === 'string' && typeof base.point === 'string' ? { base: { vm: base.vm, point: base.point } } : {}),
  };
}

async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    return parseLockInfo(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** True when `pid` names no running process on this host. */
export function isProcessGone(pid: number): boolean {
  return !isProcessAlive(pid);
}

/**
 * A lock whose holder died on this host (kill -9, power loss of a process) is stale and may be
 * taken. One that names no pid or host cannot be proven dead: it stays held.
 */
export function isStale(info: LockInfo | undefined): boolean {
  if (info === undefined) return true;
  return info.pid > 0 && info.host === hostname() && !isProcessAlive(info.pid);
}

/** `who is running since when`, with what the lock file does not say named as unknown. */
export function describeHolder(holder: LockInfo): string {
  const what = holder.purpose !== '' ? holder.purpose : 'another operation (its lock names no purpose)';
  const pid = holder.pid > 0 ? `pid ${holder.pid}` : 'unknown pid';
  const host = holder.host !== '' ? holder.host : 'an unknown host';
  const since = holder.startedMs > 0 ? `since ${new Date(holder.startedMs).toISOString()}` : 'since an unknown time';
  return `${what} is already running (${pid} on ${host}, ${since})`;
}

/** Temp files of `update`: `<name>.lock.tmp-<pid>@<host>` (older releases: `.tmp-<pid>`, this host's). */
const TEMP_PATTERN = /\.lock\.tmp-(\d+)(?:@(.*))?$/;

/**
 * Exclusive lock files under `locks/` (created with O_EXCL). A lock left by a dead process on this
 * host is broken and taken over; one held by a live process refuses with ERR_LOCKED naming the holder.
 * Lock files of running backups double as the list of running writers that GC consults.
 */
export class LockDirectory {
  constructor(
    private readonly dir: string,
    private readonly access: RepositoryAccess = new RepositoryAccess(undefined),
  ) {}

  async acquire(name: string, purpose: string, onStale?: (info: LockInfo | undefined) => void): Promise<HeldLock> {
    await this.access.mkdir(this.dir).catch((err: unknown) => {
      throw translateWriteError(err, this.dir);
    });
    // A symlinked locks/ would have lock files written wherever it points.
    if (!(await lstat(this.dir)).isDirectory()) {
      throw new CairnError('ERR_FORMAT_INVALID', `${this.dir} is damaged: it is not a directory (a symbolic link?)`, { file: this.dir });
    }
    await this.removeStaleTemps();
    const path = join(this.dir, `${name}.lock`);
    const info: LockInfo = { pid: process.pid, host: hostname(), startedMs: Date.now(), purpose };
    for (let attempt = 0; attempt < 3; attempt++) {
      let handle: FileHandle | undefined;
      try {
        handle = await open(path, 'wx', this.access.fileMode('mutable'));
      } catch (err) {
        if (systemErrorCode(err) !== 'EEXIST') throw translateWriteError(err, path);
      }
      if (handle) {
        await this.writeLockFile(handle, path, info);
        return {
          info,
          update: (extra) => this.rewrite(path, Object.assign(info, extra)),
          release: () => unlink(path).catch(() => undefined),
        };
      }
      const holder = await readLock(path);
      // A lock file that is still being written reads as garbage for a moment: only a dead pid is stale.
      if (holder !== undefined && !isStale(holder)) {
        throw new CairnError(
          'ERR_LOCKED',
          `${purpose} refused: ${describeHolder(holder)}; wait for it to finish, or if that process is gone from another host, remove ${path}`,
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
    throw new CairnError('ERR_LOCKED', `${purpose} refused: could not take lock ${name} (remove ${path} if no Cairn process holds it)`, {
      lock: name,
    });
  }

  /** Fills a just-created lock file; on failure (a full filesystem) the lock is given up again. */
  private async writeLockFile(handle: FileHandle, path: string, info: LockInfo): Promise<void> {
    try {
      await this.access.setFileMode(handle, 'mutable');
      await handle.writeFile(JSON.stringify(info));
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw translateWriteError(err, path);
    }
    await handle.close();
  }

  /** Temp file, then rename over the lock: readers see the old content or the new, never a part. */
  private async rewrite(path: string, info: LockInfo): Promise<void> {
    const temp = `${path}.tmp-${process.pid}@${hostname()}`;
    try {
      const handle = await open(temp, 'w', this.access.fileMode('mutable'));
      try {
        await this.access.setFileMode(handle, 'mutable');
        await handle.writeFile(JSON.stringify(info));
      } finally {
        await handle.close();
      }
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw translateWriteError(err, path);
    }
  }

  /** Removes temp files of `update` left by processes of this host that are gone. */
  async removeStaleTemps(): Promise<number> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    let removed = 0;
    for (const name of names) {
      const match = TEMP_PATTERN.exec(name);
      if (!match) continue;
      const host = match[2] ?? hostname();
      if (host !== hostname() || !isProcessGone(Number(match[1]))) continue;
      if (
        await unlink(join(this.dir, name)).then(
          () => true,
          () => false,
        )
      )
        removed++;
    }
    return removed;
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
