import type { Logger } from '../log/index.js';
import { CairnError } from '../core/errors.js';
import type { ChangedBlocks } from '../core/changed-blocks.js';
import { assertBitmapCovers } from '../formats/cbt-bitmap.js';
import type { Repository } from '../store/repository.js';
import type { HeldLock } from '../store/lock.js';
import type { PointManifest } from '../store/manifest.js';
import { nextPointId } from '../store/manifest.js';
import type { DiskSource } from './disk-source.js';
import { writeDisk, type BaseDisk, type DiskWriteStats } from './point-writer.js';

export interface BackupDisk {
  name: string;
  source: DiskSource;
  changedBlocks?: ChangedBlocks;
}

export interface BackupRequest {
  repo: Repository;
  vm: string;
  disks: BackupDisk[];
  /** `latest` or a point id; absent for a full backup. */
  base?: string;
  config?: Buffer;
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (progress: { disk: string; bytesDone: number; bytesTotal: number | undefined }) => void;
}

export interface BackupDiskResult extends DiskWriteStats {
  name: string;
  size: number;
}

export interface BackupResult {
  vm: string;
  point: string;
  parent?: string;
  disks: BackupDiskResult[];
}

async function resolveBase(request: BackupRequest, lock: HeldLock): Promise<PointManifest | undefined> {
  const { repo, vm } = request;
  // A source that holds only changes (an rbd diff from a snapshot) applies onto the latest point by default.
  const base = request.base ?? (request.disks.some((disk) => disk.source.needsBase) ? 'latest' : undefined);
  if (base === undefined) return undefined;
  const ids = await repo.listPointIds(vm);
  if (base === 'latest' && ids.length === 0) {
    if (request.disks.some((disk) => disk.changedBlocks)) {
      throw new CairnError('ERR_NOT_FOUND', `VM '${vm}' has no restore point to apply a changed-block bitmap to; run a full backup first`, {
        vm,
      });
    }
    // A source that needs a base says so itself, naming what it needs (checkBase).
    if (!request.disks.some((disk) => disk.source.needsBase))
      request.logger?.warn({ vm }, `VM '${vm}' has no restore point yet: taking a full backup`);
    return undefined;
  }
  const id = await repo.resolvePoint(vm, base);
  // Announce the base before reading it: from now on GC keeps all of its chunks (see store/gc.ts).
  await lock.update({ base: { vm, point: id } });
  return repo.readManifest(vm, id);
}

async function baseDiskFor(request: BackupRequest, base: PointManifest | undefined, disk: BackupDisk): Promise<BaseDisk | undefined> {
  if (!base || !base.disks.some((d) => d.name === disk.name)) {
    if (disk.changedBlocks) {
      throw new CairnError('ERR_NOT_FOUND', `base point has no disk '${disk.name}' to apply its changed-block bitmap to`, {
        disk: disk.name,
      });
    }
    return undefined;
  }
  const index = await request.repo.readDiskIndex(base, disk.name);
  if (index.chunkSize !== request.repo.chunkSize) {
    throw new CairnError('ERR_FORMAT_INVALID', `base disk '${disk.name}' uses another chunk size`, { disk: disk.name });
  }
  return { size: index.diskSize, digests: index.digests, patches: index.patches };
}

/**
 * Backs up the given disks of one VM into a new restore point. Holds the VM's backup lock for the
 * whole run; the point becomes visible only once every chunk is durable and the manifest is in place.
 */
export async function runBackup(request: BackupRequest): Promise<BackupResult> {
  const { repo, vm } = request;
  if (request.disks.length === 0) throw new CairnError('ERR_INVALID_ARGUMENT', 'a backup needs at least one disk');
  const lock = await repo.lockVmForBackup(vm, (holder) =>
    request.logger?.warn({ vm, holder }, `taking over the backup lock of VM '${vm}' left by a process that is gone`),
  );
  try {
    const base = await resolveBase(request, lock);
    const draft = await repo.createDraft(vm);
    const chunks = repo.startChunkWrites(lock);
    try {
      const results: BackupDiskResult[] = [];
      for (const disk of request.disks) {
        const baseDisk = await baseDiskFor(request, base, disk);
        if (disk.source.checkBase) {
          const recorded = baseDisk && base ? base.disks.find((d) => d.name === disk.name) : undefined;
          disk.source.checkBase(recorded && base ? { point: base.id, ...(recorded.origin ? { origin: recorded.origin } : {}) } : undefined);
        }
        if (disk.changedBlocks && disk.source.size !== undefined)
          assertBitmapCovers(disk.changedBlocks, Math.min(disk.source.size, baseDisk?.size ?? 0), disk.name);
        request.logger?.debug({ disk: disk.name, source: disk.source.description }, 'backing up disk');
        const { index, stats } = await writeDisk({
          source: disk.source,
          store: chunks,
          chunkSize: repo.chunkSize,
          ...(baseDisk ? { base: baseDisk } : {}),
          plan: {
            chunkSize: repo.chunkSize,
            hasBase: baseDisk !== undefined,
            ...(baseDisk ? { baseSize: baseDisk.size } : {}),
            ...(disk.changedBlocks ? { changedBlocks: disk.changedBlocks } : {}),
          },
          ...(request.signal ? { signal: request.signal } : {}),
          onProgress: (bytesDone) => request.onProgress?.({ disk: disk.name, bytesDone, bytesTotal: disk.source.size }),
        });
        await draft.addDisk(disk.name, index, {
          bytesRead: stats.bytesRead,
          bytesStored: stats.bytesStored,
          dataChunks: stats.dataChunks,
          ...(disk.source.origin ? { origin: disk.source.origin } : {}),
        });
        results.push({ name: disk.name, size: index.diskSize, ...stats });
      }
      if (request.config) await draft.setConfig(request.config);
      // Chunks must be durable before the manifest that references them is.
      await chunks.syncNewChunks();
      const ids = await repo.listPointIds(vm);
      const now = Date.now();
      const manifest = await draft.publish({
        id: nextPointId(now, ids[ids.length - 1]),
        createdMs: now,
        ...(base ? { parent: base.id } : {}),
        source: request.disks.map((d) => `${d.name}=${d.source.description}`).join(', '),
        chunkSize: repo.chunkSize,
      });
      chunks.keep();
      return { vm, point: manifest.id, ...(base ? { parent: base.id } : {}), disks: results };
    } catch (err) {
      await draft.abort();
      // A failed backup gives back the space of the chunks it created (a full filesystem must not
      // stay full until a GC), still under its lock; a point that became visible keeps them.
      if (!draft.visible) {
        const removed = await chunks.discard().catch((cleanupErr: unknown) => {
          request.logger?.warn({ err: cleanupErr }, 'could not remove the chunks of the failed backup; gc will');
          return 0;
        });
        if (removed > 0) request.logger?.debug({ removed }, 'removed the chunks the failed backup created');
      }
      throw err;
    }
  } finally {
    await lock.release();
  }
}
