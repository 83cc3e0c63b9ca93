import type { Repository } from './repository.js';
import { walkDisks } from './point-walk.js';
import { isHoleSlot } from './disk-index.js';

/** The figures a datastore monitor reports. */
export interface RepositoryUsage {
  vms: number;
  points: number;
  disks: number;
  /** Sum of the virtual sizes of every disk of every point. */
  logicalBytes: number;
  /** Sum over every point of the bytes that are not holes (what a copy without dedup would store). */
  dataBytes: number;
  /** Bytes of the distinct chunks referenced (before compression). */
  uniqueBytes: number;
  chunks: number;
  /** Bytes the chunk files take (after compression). */
  storedBytes: number;
  /** dataBytes / uniqueBytes. */
  dedupRatio: number;
  /** uniqueBytes / storedBytes. */
  compressionRatio: number;
  /** logicalBytes / storedBytes: how much smaller the repository is than plain copies of every point. */
  totalRatio: number;
  filesystem: { totalBytes: number; freeBytes: number; usedBytes: number };
}

export async function repositoryUsage(repo: Repository): Promise<RepositoryUsage> {
  const unique = new Map<string, number>();
  const vms = new Set<string>();
  const points = new Set<string>();
  let disks = 0;
  let logicalBytes = 0;
  let dataBytes = 0;
  for await (const { manifest, index } of walkDisks(repo)) {
    vms.add(manifest.vm);
    points.add(`${manifest.vm}/${manifest.id}`);
    disks++;
    logicalBytes += index.diskSize;
    for (let i = 0; i < index.digests.length; i++) {
      if (isHoleSlot(index, i)) continue;
      const length = Math.min(index.chunkSize, index.diskSize - i * index.chunkSize);
      dataBytes += length;
      const digest = index.digests.get(i);
      if (digest !== undefined) unique.set(digest, length);
    }
    // A patch chunk holds the changed bytes of one slot; its length is where its last patch ends.
    for (const patches of index.patches?.values() ?? []) {
      for (const patch of patches) {
        if (patch.digest !== undefined) unique.set(patch.digest, Math.max(unique.get(patch.digest) ?? 0, patch.chunkOffset + patch.length));
      }
    }
  }
  let uniqueBytes = 0;
  for (const length of unique.values()) uniqueBytes += length;
  let storedBytes = 0;
  let chunks = 0;
  for await (const chunk of repo.chunks.listChunks()) {
    storedBytes += chunk.size;
    chunks++;
  }
  const fs = await repo.filesystemSpace();
  const ratio = (a: number, b: number) => (b > 0 ? a / b : 1);
  return {
    vms: vms.size,
    points: points.size,
    disks,
    logicalBytes,
    dataBytes,
    uniqueBytes,
    chunks,
    storedBytes,
    dedupRatio: ratio(dataBytes, uniqueBytes),
    compressionRatio: ratio(uniqueBytes, storedBytes),
    totalRatio: ratio(logicalBytes, storedBytes),
    filesystem: { ...fs, usedBytes: fs.totalBytes - fs.freeBytes },
  };
}
