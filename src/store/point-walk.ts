import type { DiskIndex } from './disk-index.js';
import type { PointManifest } from './manifest.js';
import type { Repository } from './repository.js';

export interface WalkedDisk {
  manifest: PointManifest;
  disk: string;
  index: DiskIndex;
}

export interface PointFilter {
  vm?: string;
  /** A point id or `latest`. */
  point?: string;
  disk?: string;
}

/** Manifests of every point the filter covers, in VM then time order. */
export async function* walkPoints(repo: Repository, filter: PointFilter = {}): AsyncIterable<PointManifest> {
  const vms = filter.vm !== undefined ? [filter.vm] : await repo.listVms();
  for (const vm of vms) {
    const ids = filter.point !== undefined ? [await repo.resolvePoint(vm, filter.point)] : await repo.listPointIds(vm);
    for (const id of ids) yield await repo.readManifest(vm, id);
  }
}

/** Every disk index the filter covers (indexes are checked against their manifest digest). */
export async function* walkDisks(repo: Repository, filter: PointFilter = {}): AsyncIterable<WalkedDisk> {
  for await (const manifest of walkPoints(repo, filter)) {
    for (const entry of manifest.disks) {
      if (filter.disk !== undefined && entry.name !== filter.disk) continue;
      yield { manifest, disk: entry.name, index: await repo.readDiskIndex(manifest, entry.name) };
    }
  }
}
