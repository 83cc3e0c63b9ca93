import { rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log/index.js';
import { walkDisks } from './point-walk.js';
import { chunkUses } from './disk-index.js';
import type { Repository } from './repository.js';
import { isProcessGone } from './lock.js';
import { CairnError } from '../core/errors.js';

export interface GcOptions {
  /** Chunks touched less than this long before the oldest running backup started are kept anyway. */
  graceMs?: number;
  dryRun?: boolean;
  logger?: Logger;
  /** Called between the mark and the sweep phase (tests use it to start a writer in between). */
  afterMark?: () => Promise<void>;
}

export interface GcResult {
  referencedChunks: number;
  removedChunks: number;
  removedBytes: number;
  keptRecentChunks: number;
  removedLeftovers: number;
  cutoffMs: number;
}

export const DEFAULT_GC_GRACE_MS = 5 * 60_000;

/**
 * Mark and sweep. Mark: every chunk that a published index references. Sweep: an unreferenced chunk
 * is deleted only if its mtime is older than the cutoff = (earliest of GC start and every running
 * backup's start) − grace. Writers touch every existing chunk they reuse, except those of their base
 * point, which they name in their lock before reading it: GC marks the base points of running
 * backups as referenced (and refuses to sweep if one was removed meanwhile). The sweep renames a victim aside and re-checks its mtime before
 * deleting it, which closes the window between the check and the delete.
 */
export async function collectGarbage(repo: Repository, options: GcOptions = {}): Promise<GcResult> {
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const lock = await repo.locks.acquire('gc', 'garbage collection');
  try {
    const restored = await repo.chunks.restoreAsideChunks();
    if (restored > 0) options.logger?.warn({ restored }, 'restored chunks an interrupted GC had set aside');
    const startMs = Date.now();
    const writersAtStart = await repo.runningWriters();
    const referenced = new Set<string>();
    // A damaged or unreadable index throws here, before anything is deleted: GC never guesses.
    for await (const { index } of walkDisks(repo)) {
      for (const { digest } of chunkUses(index)) referenced.add(digest);
    }
    await options.afterMark?.();
    const writersNow = await repo.runningWriters();
    // Running backups reference their base point's chunks without touching them: keep them all.
    for (const writer of writersNow) {
      if (writer.base) await markBasePoint(repo, writer.base, referenced);
    }
    const oldestWriterMs = Math.min(startMs, ...writersAtStart.map((w) => w.startedMs), ...writersNow.map((w) => w.startedMs));
    const cutoffMs = oldestWriterMs - graceMs;

    const result: GcResult = {
      referencedChunks: referenced.size,
      removedChunks: 0,
      removedBytes: 0,
      keptRecentChunks: 0,
      removedLeftovers: 0,
      cutoffMs,
    };
    for await (const chunk of repo.chunks.listChunks()) {
      if (referenced.has(chunk.digest)) continue;
      if (chunk.mtimeMs >= cutoffMs) {
        result.keptRecentChunks++;
        continue;
      }
      if (options.dryRun) {
        result.removedChunks++;
        result.removedBytes += chunk.size;
        continue;
      }
      const aside = join(dirname(chunk.path), `.gc-${basename(chunk.path)}`);
      try {
        await rename(chunk.path, aside);
      } catch {
        continue; // gone already
      }
      const info = await stat(aside);
      if (info.mtimeMs >= cutoffMs) {
        // A writer touched it between our check and the rename: put it back.
        await rename(aside, chunk.path);
        result.keptRecentChunks++;
        continue;
      }
      await unlink(aside);
      result.removedChunks++;
      result.removedBytes += info.size;
    }
    if (!options.dryRun) result.removedLeftovers = await removeLeftovers(repo, cutoffMs, options.logger);
    return result;
  } finally {
    await lock.release();
  }
}

async function markBasePoint(repo: Repository, base: { vm: string; point: string }, referenced: Set<string>): Promise<void> {
  try {
    for await (const { index } of walkDisks(repo, { vm: base.vm, point: base.point })) {
      for (const { digest } of chunkUses(index)) referenced.add(digest);
    }
  } catch (err) {
    if (err instanceof CairnError && err.code === 'ERR_NOT_FOUND') {
      throw new CairnError(
        'ERR_LOCKED',
        `a running backup of VM '${base.vm}' uses point ${base.point} as its base, which was removed meanwhile; run gc again once that backup has ended`,
        { vm: base.vm, point: base.point },
      );
    }
    throw err;
  }
}

/** Drafts of backups whose process is gone, half-deleted points and temp chunk files of dead writers. */
async function removeLeftovers(repo: Repository, cutoffMs: number, logger?: Logger): Promise<number> {
  let removed = 0;
  for (const path of await repo.listLeftovers()) {
    const pid = Number(/^\.(?:tmp-point|trash-\d+T\d+Z)-(\d+)/.exec(basename(path))?.[1]);
    if (Number.isInteger(pid) && !isProcessGone(pid)) continue;
    logger?.info({ path }, 'removing leftover of an interrupted backup or removal');
    await rm(path, { recursive: true, force: true });
    removed++;
  }
  for await (const path of repo.chunks.listStaleTempFiles(cutoffMs)) {
    await unlink(path).catch(() => undefined);
    removed++;
  }
  return removed;
}
