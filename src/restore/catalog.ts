import type { BlockReader, ChangeMap } from '../core/block-reader.js';
import type { Catalog, PointInfo, RepositorySpace } from '../core/catalog.js';
import { CairnError } from '../core/errors.js';
import { ChunkCache } from '../util/cache.js';
import type { DiskIndex } from '../store/disk-index.js';
import type { PointManifest } from '../store/manifest.js';
import { Repository } from '../store/repository.js';
import { DiskReader } from './disk-reader.js';
import { indexChangeMap } from './change-map.js';

export interface CatalogOptions {
  /** Bytes of decompressed chunks kept in memory, shared by every reader of this catalog. */
  cacheBytes?: number;
}

export const DEFAULT_CACHE_BYTES = 128 * 1024 * 1024;
/** Decoded indexes kept in memory (immutable once published, so caching them is always safe). */
const MAX_CACHED_INDEXES = 64;

export function pointInfoOf(manifest: PointManifest): PointInfo {
  return {
    vm: manifest.vm,
    id: manifest.id,
    createdMs: manifest.createdMs,
    ...(manifest.parent !== undefined ? { parent: manifest.parent } : {}),
    source: manifest.source,
    hasConfig: manifest.config !== undefined,
    disks: manifest.disks.map((d) => ({ name: d.name, size: d.size })),
  };
}

/** The Catalog over a local repository: what NBD, FUSE and the CLI read restore points through. */
export class RepositoryCatalog implements Catalog {
  readonly cache: ChunkCache;
  private readonly indexes = new Map<string, Promise<DiskIndex>>();

  constructor(
    readonly repo: Repository,
    options: CatalogOptions = {},
  ) {
    this.cache = new ChunkCache(options.cacheBytes ?? DEFAULT_CACHE_BYTES);
  }

  async listVms(): Promise<string[]> {
    return this.repo.listVms();
  }

  async listPoints(vm: string): Promise<PointInfo[]> {
    const ids = await this.repo.listPointIds(vm);
    if (ids.length === 0) throw new CairnError('ERR_NOT_FOUND', `VM '${vm}' has no restore points`, { vm });
    const points: PointInfo[] = [];
    for (const id of ids) {
      try {
        points.push(pointInfoOf(await this.repo.readManifest(vm, id)));
      } catch (err) {
        // A point removed while we list it is simply gone.
        if (!(err instanceof CairnError && err.code === 'ERR_NOT_FOUND')) throw err;
      }
    }
    return points;
  }

  async manifest(vm: string, point: string): Promise<PointManifest> {
    return this.repo.readManifest(vm, await this.repo.resolvePoint(vm, point));
  }

  async getPoint(vm: string, point: string): Promise<PointInfo> {
    return pointInfoOf(await this.manifest(vm, point));
  }

  async diskIndex(vm: string, point: string, disk: string): Promise<{ manifest: PointManifest; index: DiskIndex }> {
    const manifest = await this.manifest(vm, point);
    // The index digest is part of the key: a point id reused after `rm` can never hit a stale entry.
    const entry = manifest.disks.find((d) => d.name === disk);
    const key = `${vm}/${manifest.id}/${disk}/${entry?.indexSha256 ?? ''}`;
    let pending = this.indexes.get(key);
    if (!pending) {
      pending = this.repo.readDiskIndex(manifest, disk);
      pending.catch(() => this.indexes.delete(key));
      this.indexes.set(key, pending);
      if (this.indexes.size > MAX_CACHED_INDEXES) this.indexes.delete(this.indexes.keys().next().value!);
    }
    return { manifest, index: await pending };
  }

  async openDisk(vm: string, point: string, disk: string): Promise<BlockReader> {
    const { manifest, index } = await this.diskIndex(vm, point, disk);
    return new DiskReader(index, this.repo.chunks, this.cache, `${vm}/${manifest.id}/${disk}`);
  }

  async readConfig(vm: string, point: string): Promise<Buffer | undefined> {
    return this.repo.readConfigBlob(await this.manifest(vm, point));
  }

  async changesSince(vm: string, point: string, disk: string, sincePoint: string): Promise<ChangeMap> {
    const current = await this.diskIndex(vm, point, disk);
    const older = await this.diskIndex(vm, sincePoint, disk);
    return indexChangeMap(current.index, older.index);
  }

  async space(): Promise<RepositorySpace> {
    const fs = await this.repo.filesystemSpace();
    return { ...fs, usedBytes: fs.totalBytes - fs.freeBytes };
  }
}

export async function openRepositoryCatalog(root: string, options: CatalogOptions = {}): Promise<RepositoryCatalog> {
  return new RepositoryCatalog(await Repository.open(root), options);
}
